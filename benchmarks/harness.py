"""Benchmark harness: the measurement context, interleaved timing, the CPU meter, result rows.

The timing method (warm-up, interleaved repeats with rotating order, medians, foreign CPU share)
and the keys of a row are described in :mod:`benchmarks.run`.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

# Minimum ratio (ours / reference) asked for by the issue, per row name.
TARGETS = {
    "mixture_official[scan]": 2.5,
    "mixture_vectorized_vs_sequential": 1.0,
    "dcgan64[auto]": 1.0,
    "dcgan28_digits[auto]": 1.0,
    "pipeline": 0.95,
}


# ---------------------------------------------------------------------------------------------
# Context, timing, rows.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Context:
    """What every case needs: timing settings, the reference backend and the measured peak."""

    suite: str = "cpu"
    repeats: int = 5
    target_s: float = 1.5
    bf16: bool = False
    reference: bool = True
    torch_threads: int | None = None
    forced_repeats: bool = False
    forced_target_s: bool = False
    data_dir: str | None = None
    verbose: bool = True
    peak: dict[str, float] = dataclasses.field(default_factory=dict)
    torch_ref: Any = None  # the benchmarks.torch_reference module, when torch imports
    torch_device: Any = None

    @property
    def compute_dtype(self):
        return jnp.bfloat16 if self.bf16 else jnp.float32

    @property
    def dtype_name(self) -> str:
        return "bfloat16" if self.bf16 else "float32"

    def timing(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """`interleave` settings: a case's own `repeats`/`target_s` unless given on the CLI."""
        repeats = self.repeats if self.forced_repeats else cfg.get("repeats", self.repeats)
        target_s = self.target_s if self.forced_target_s else cfg.get("target_s", self.target_s)
        return {"repeats": repeats, "target_s": target_s, "log": self.log}

    def log(self, msg: str) -> None:
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)

    def amp_dtype(self):
        if not self.bf16 or self.torch_ref is None:
            return None
        import torch  # noqa: PLC0415

        return torch.bfloat16


def block(tree: Any) -> None:
    jax.block_until_ready(tree)


def copy_tree(tree: Any) -> Any:
    return jax.tree.map(jnp.copy, tree)


class CpuMeter:
    """Share of the machine's CPU time used by OTHER processes during a measurement.

    `(busy jiffies of all CPUs from /proc/stat - this process's CPU time) / (wall · ncpu)`:
    0 on an idle machine, ~1 when other jobs keep every core busy. None where /proc is missing.
    """

    def __init__(self):
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._ncpu = os.cpu_count() or 1

    def _busy(self) -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / self._tick

    def start(self) -> tuple:
        t = os.times()
        return (time.perf_counter(), self._busy(), t.user + t.system)

    def foreign_share(self, start: tuple) -> float | None:
        wall0, busy0, own0 = start
        wall, busy = time.perf_counter() - wall0, self._busy()
        t = os.times()
        if busy is None or busy0 is None or wall <= 0:
            return None
        other = (busy - busy0) - (t.user + t.system - own0)
        return min(max(other / (wall * self._ncpu), 0.0), 1.0)


def interleave(
    variants: dict[str, Callable[[], float]],
    *,
    repeats: int,
    target_s: float,
    log: Callable[[str], None] = lambda m: None,
) -> tuple[dict[str, list[float]], dict[str, int], dict[str, list[float]]]:
    """Times each variant in turn, `repeats` times, after a warm-up.

    Returns (units/s per repeat, calls per measurement, foreign CPU share per measurement — see
    `CpuMeter`) for each variant.

    Each variant is a callable that does one chunk of work, waits for it and returns the number
    of units done (steps, run-steps, GFLOP). Warm-up: one call (compilation), then, when
    `target_s > 0`, one timed call that sets how many calls make a measurement of about `target_s`
    seconds (at least one); with `target_s == 0` a measurement is one call.
    The order of the variants rotates each repeat, so no variant always runs after another.
    """
    names = list(variants)
    calls: dict[str, int] = {}
    for name in names:
        t0 = time.perf_counter()
        variants[name]()
        t1 = time.perf_counter()
        dt = 0.0
        calls[name] = 1
        if target_s > 0:
            variants[name]()
            dt = time.perf_counter() - t1
            calls[name] = max(1, math.ceil(target_s / max(dt, 1e-9)))
        log(
            f"  warm-up {name}: first call {t1 - t0:.2f} s, next {dt:.3f} s -> {calls[name]} call(s)"
        )
    rates: dict[str, list[float]] = {name: [] for name in names}
    shares: dict[str, list[float]] = {name: [] for name in names}
    meter = CpuMeter()
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            units = 0.0
            mark = meter.start()
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                units += variants[name]()
            rates[name].append(units / (time.perf_counter() - t0))
            share = meter.foreign_share(mark)
            if share is not None:
                shares[name].append(share)
    return rates, calls, shares


def _median(xs: list[float] | None) -> float | None:
    return float(statistics.median(xs)) if xs else None


def make_row(
    name: str,
    *,
    unit: str,
    ours: list[float],
    reference: list[float] | None,
    ctx: Context,
    config: dict[str, Any],
    flops_per_unit: float | None = None,
    images_per_unit: int | None = None,
    shares: tuple[list[float] | None, list[float] | None] = (None, None),
) -> dict[str, Any]:
    """One result row (see the module docstring for the keys); `shares`: foreign CPU shares of
    the ours / reference measurements."""
    ours_ps, ref_ps = _median(ours), _median(reference)
    row: dict[str, Any] = {
        "name": name,
        "unit": unit,
        "ours_per_s": ours_ps,
        "reference_per_s": ref_ps,
        "ratio": (ours_ps / ref_ps) if ours_ps and ref_ps else None,
        "repeats": len(ours),
        "ours_range": [min(ours), max(ours)],
        "reference_range": [min(reference), max(reference)] if reference else None,
        "config": config,
    }
    if reference:
        # Best repeats: on a shared machine the least-disturbed measurement of each side.
        row["ratio_of_best"] = max(ours) / max(reference)
    for side, values in zip(("ours", "reference"), shares, strict=True):
        if values:
            row[f"foreign_cpu_{side}"] = round(float(statistics.median(values)), 3)
    if hasattr(os, "getloadavg"):
        row["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    if images_per_unit:
        row["images_per_s_ours"] = ours_ps * images_per_unit
        row["images_per_s_reference"] = ref_ps * images_per_unit if ref_ps else None
    if flops_per_unit:
        peak = ctx.peak.get(ctx.dtype_name)
        row["gflop_per_unit"] = flops_per_unit / 1e9
        row["gflops_ours"] = ours_ps * flops_per_unit / 1e9
        row["gflops_reference"] = ref_ps * flops_per_unit / 1e9 if ref_ps else None
        row["peak_gflops"] = peak
        row["mfu_ours"] = row["gflops_ours"] / peak if peak else None
        row["mfu_reference"] = row["gflops_reference"] / peak if peak and ref_ps else None
    set_target(row, TARGETS.get(name))
    return row


def set_target(row: dict[str, Any], target: float | None) -> None:
    """Adds `target` and `target_met` (ratio >= target) to a row."""
    if target is None:
        return
    row["target"] = target
    row["target_met"] = bool(row["ratio"] is not None and row["ratio"] >= target)


def environment(ctx: Context) -> dict[str, Any]:
    """Date, machine and versions (recorded in the matmul row)."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    env = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "suite": ctx.suite,
    }
    if ctx.torch_ref is not None:
        import torch  # noqa: PLC0415

        env["torch"] = torch.__version__
        env["torch_device"] = str(ctx.torch_device)
        env["torch_threads"] = ctx.torch_threads
    return env
