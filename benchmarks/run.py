r"""Speed benchmarks: lsgan_jax against a PyTorch eager reference, measured interleaved.

    python -m benchmarks.run --suite cpu                 # readable table (15-20 min on 2 cores)
    python -m benchmarks.run --suite cpu --json          # one JSON object per line
    python -m benchmarks.run --suite cpu --cases mixture_official,pipeline
    python -m benchmarks.run --suite gpu --bf16 --json   # on an accelerator (bigger batches)

Method. Every case builds "ours" (lsgan_jax: `make_train_step` + a runner) and a reference
(`benchmarks/torch_reference.py`, PyTorch eager, `torch.set_num_threads(os.cpu_count())`; for
`mixture_vectorized_vs_sequential` the reference is our own sequential runs, for `pipeline` our
loop fed by synthetic batches). Each variant is warmed up (JAX compilation and the first PyTorch
calls are excluded), then timed in turn inside ONE process, `repeats` times, the order rotated
each repeat, each measurement lasting about `target_s` seconds; a rate is the median over repeats.
On a machine shared with other jobs, only ratios measured this way are meaningful.

Each row: `name`, `unit`, `ours_per_s`, `reference_per_s`, `ratio` (= ours / reference),
`repeats`, `config`, the min-max spread of both rates, `ratio_of_best` (best repeat over best
repeat), `foreign_cpu_ours` / `foreign_cpu_reference` (median share of the machine's CPU time
that OTHER processes used during the measurements: 0 = undisturbed, 1 = every core taken),
`load_avg_1m_after` (the 1-minute load average when the row was made), and for model
cases the model FLOPs of one step, achieved GFLOP/s (`gflops_ours`, `gflops_reference`), the
matmul peak measured in the same run (`peak_gflops`, the best of a large JAX matmul in the compute
dtype) and `mfu_ours` = gflops_ours / peak; image cases add images/s.
Rows with a target from the issue carry `target` (minimum ratio) and `target_met`.

Model FLOPs: 2·(multiply-adds) of the matmuls and convolutions of one forward pass of G and D at
the step's batch, counted from the jaxpr of the sub-pixel form (no multiplies on the structural
zeros of a strided transpose conv; padding taps counted, as usual), and a step = 3·G + 8·D: G
forward + backward (3·G), D forward + backward on the real and the fake batch (2 · 3·D), and D
forward + input-gradient for the G loss (2·D). Both our step and the PyTorch reference run G
forward once per step (the D update and the G gradient share it).

`[subpixel]` / `[conv_transpose]` rows: every stride-2 transposed convolution -- G's deconvs and
the input gradients of D's stride-2 convs -- computed in the sub-pixel form or by XLA
(`deconv_impl` of both models; `lsgan_jax/models/layers.py`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
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
import ml_collections
import numpy as np
from flax import nnx

from lsgan_jax import models as models_lib
from lsgan_jax.models.layers import resolve_deconv_impl
from lsgan_jax.training import runners
from lsgan_jax.training.state import init_state, make_hparams, make_optimizer, unstack
from lsgan_jax.training.step import StepSpec, latent_pool_sampler, make_train_step

CASES = (
    "mixture_official",
    "mixture_vectorized_vs_sequential",
    "dcgan64",
    "dcgan28_digits",
    "lsun112",
    "pipeline",
)

# Minimum ratio (ours / reference) asked for by the issue, per row name.
TARGETS = {
    "mixture_official[scan]": 2.5,
    "mixture_vectorized_vs_sequential": 1.0,
    "dcgan64[auto]": 1.0,
    "dcgan28_digits[auto]": 1.0,
    "pipeline": 0.95,
}

# Model sizes of each case (the paper's); suites override batch sizes and a few widths.
MIXTURE_G = {}  # mixture_mlp_g defaults: z 256 -> 128 tanh -> 128 tanh -> 2
MIXTURE_D = {}  # mixture_mlp_d defaults: 2 -> 128 tanh -> 128 tanh -> 1
DCGAN64_G = dict(image_size=64, channels=3, base_features=64, latent_dim=100, kernel_size=5)
DCGAN64_D = dict(image_size=64, channels=3, base_features=64, kernel_size=5)
DIGIT_G = dict(image_size=28, channels=1, base_features=64, latent_dim=100, kernel_size=5)
DIGIT_D = dict(image_size=28, channels=1, hidden=500)
LSUN_G = dict(image_size=112, channels=3, base_features=64, latent_dim=1024, kernel_size=3)
LSUN_D = dict(image_size=112, channels=3, base_features=64, kernel_size=5)

IMPLS = ("subpixel", "conv_transpose")

SUITES: dict[str, dict[str, Any]] = {
    # 2 CPU cores: the official sizes except LSUN's batch (16 instead of 64: ~8 s per step at 64).
    "cpu": {
        "repeats": 5,
        "target_s": 1.5,
        "matmul_n": 2048,
        "mixture_official": dict(batch=512, scan_steps=200, no_scan_chunk=25),
        "mixture_vectorized_vs_sequential": dict(batch=512, scan_steps=100, runs=8),
        "dcgan64": dict(batch=32, repeats=3, target_s=0.0),
        "dcgan28_digits": dict(batch=64, repeats=3),
        "lsun112": dict(batch=16, repeats=3, target_s=0.0),
        "pipeline": dict(batch=64, chunk=50, target_s=3.0),
    },
    # One accelerator: larger batches, more runs; same models.
    "gpu": {
        "repeats": 10,
        "target_s": 1.0,
        "matmul_n": 8192,
        "mixture_official": dict(batch=512, scan_steps=500, no_scan_chunk=100),
        "mixture_vectorized_vs_sequential": dict(batch=512, scan_steps=500, runs=64),
        "dcgan64": dict(batch=256, chunk=5),
        "dcgan28_digits": dict(batch=256, chunk=10),
        "lsun112": dict(batch=64, chunk=2),
        "pipeline": dict(batch=256, chunk=100, target_s=3.0),
    },
    # Seconds, for tests of the harness (numbers mean nothing).
    "tiny": {
        "repeats": 1,
        "target_s": 0.0,
        "matmul_n": 128,
        "mixture_official": dict(
            batch=32,
            scan_steps=4,
            no_scan_chunk=2,
            ref_chunk=1,
            g_kwargs=dict(latent_dim=8, hidden=16),
            d_kwargs=dict(hidden=16),
        ),
        "mixture_vectorized_vs_sequential": dict(
            batch=32, scan_steps=4, runs=2, g_kwargs=dict(latent_dim=8, hidden=16), d_kwargs={}
        ),
        "dcgan64": dict(
            batch=2,
            g_kwargs=dict(image_size=16, base_features=4, latent_dim=8),
            d_kwargs=dict(image_size=16, base_features=4),
        ),
        "dcgan28_digits": dict(
            batch=2,
            g_kwargs=dict(base_features=4, latent_dim=8),
            d_kwargs=dict(hidden=16),
            impls=("subpixel",),
        ),
        "lsun112": dict(
            batch=2,
            g_kwargs=dict(image_size=32, base_features=4, latent_dim=8),
            d_kwargs=dict(image_size=32, base_features=4),
        ),
        "pipeline": dict(batch=8, chunk=2, tiny_model=True),
    },
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


def _block(tree: Any) -> None:
    jax.block_until_ready(tree)


def _copy(tree: Any) -> Any:
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


# ---------------------------------------------------------------------------------------------
# Model FLOPs from jaxprs.
# ---------------------------------------------------------------------------------------------


def _subjaxprs(params: dict[str, Any]):
    for value in params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(v, "eqns"):
                yield v
            elif hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):
                yield v.jaxpr


def jaxpr_flops(jaxpr: Any) -> float:
    """2 × multiply-adds of every `dot_general` and `conv_general_dilated` in a jaxpr."""
    total = 0.0
    for eqn in jaxpr.eqns:
        prim = eqn.primitive.name
        if prim == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval
            k = math.prod(lhs.shape[i] for i in lhs_contract)
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * k
        elif prim == "conv_general_dilated":
            rhs = eqn.invars[1].aval
            rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial)
            k = rhs.shape[rhs_spec[1]] * math.prod(rhs.shape[d] for d in rhs_spec[2:])
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * k
        mult = eqn.params.get("length", 1) if prim == "scan" else 1
        for sub in _subjaxprs(eqn.params):
            total += mult * jaxpr_flops(sub)
    return total


def forward_flops(model: nnx.Module, x: jax.Array) -> float:
    """Model FLOPs of `model(x, train=True)` (abstract trace; nothing runs)."""
    graphdef, st = nnx.split(model)

    def fwd(st, x):
        return nnx.merge(graphdef, st)(x, train=True)

    return jaxpr_flops(jax.make_jaxpr(fwd)(st, x).jaxpr)


def gan_step_flops(
    g_name: str, g_kwargs: dict, d_name: str, d_kwargs: dict, batch: int
) -> tuple[float, float, float]:
    """(G forward, D forward, step = 3·G + 8·D) model FLOPs at `batch` (sub-pixel deconvs)."""
    if "deconv_impl" in models_lib.accepted_kwargs(g_name):
        g_kwargs = {**g_kwargs, "deconv_impl": "subpixel"}
    g = nnx.eval_shape(lambda: models_lib.create(g_name, rngs=nnx.Rngs(0), **g_kwargs))
    d = nnx.eval_shape(lambda: models_lib.create(d_name, rngs=nnx.Rngs(0), **d_kwargs))
    g_fwd = forward_flops(g, jax.ShapeDtypeStruct((batch, g.latent_dim), jnp.float32))
    sample_shape = getattr(g, "image_shape", None) or (g.data_dim,)
    d_fwd = forward_flops(d, jax.ShapeDtypeStruct((batch, *sample_shape), jnp.float32))
    return g_fwd, d_fwd, 3 * g_fwd + 8 * d_fwd


# ---------------------------------------------------------------------------------------------
# Cases.
# ---------------------------------------------------------------------------------------------


def _matmul_variants(ctx: Context, n: int, dtype_name: str) -> dict[str, Callable[[], float]]:
    dt = jnp.dtype(dtype_name)
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(ka, (n, n), jnp.float32).astype(dt)
    b = jax.random.normal(kb, (n, n), jnp.float32).astype(dt)
    mm = jax.jit(lambda a, b: a @ b)
    gflop = 2.0 * n**3 / 1e9

    def ours() -> float:
        _block(mm(a, b))
        return gflop

    variants = {"ours": ours}
    if ctx.torch_ref is not None:
        import torch  # noqa: PLC0415

        tdt = torch.bfloat16 if dtype_name == "bfloat16" else torch.float32
        ref_mm = ctx.torch_ref.matmul_call(n, dtype=tdt, device=ctx.torch_device)

        def ref() -> float:
            ref_mm()
            ctx.torch_ref.sync(ctx.torch_device)
            return gflop

        variants["reference"] = ref
    return variants


def case_matmul(ctx: Context, n: int) -> list[dict]:
    """The machine's matmul peak in the compute dtype: JAX (ours) and torch.mm (reference).

    `peak_gflops` is the best JAX repeat (the other rows' utilisation is relative to it).
    """
    rows = []
    for dtype_name in ["float32"] + (["bfloat16"] if ctx.bf16 else []):
        variants = _matmul_variants(ctx, n, dtype_name)
        rates, calls, shares = interleave(
            variants, repeats=max(ctx.repeats, 3), target_s=ctx.target_s, log=ctx.log
        )
        ctx.peak[dtype_name] = max(rates["ours"])
        row = make_row(
            f"matmul_peak[{dtype_name}]",
            unit="GFLOP/s",
            ours=rates["ours"],
            reference=rates.get("reference"),
            shares=(shares.get("ours"), shares.get("reference")),
            ctx=ctx,
            config={"n": n, "dtype": dtype_name, "calls_per_repeat": calls},
        )
        row["peak_gflops"] = ctx.peak[dtype_name]
        row["env"] = environment(ctx)
        rows.append(row)
    return rows


def _mixture_setup(ctx: Context, cfg: dict, seeds: int):
    from experiments import mixture as mixture_exp  # noqa: PLC0415
    from lsgan_jax.training import build  # noqa: PLC0415

    c = mixture_exp.get_config("official")
    c.seeds = seeds
    c.losses = ("lsgan",)
    c.batch_size = cfg["batch"]
    g_kwargs = {**MIXTURE_G, **cfg.get("g_kwargs", {})}
    d_kwargs = {**MIXTURE_D, **cfg.get("d_kwargs", {})}
    if ctx.bf16:
        g_kwargs["dtype"] = d_kwargs["dtype"] = jnp.bfloat16
    c.model.g_kwargs, c.model.d_kwargs = g_kwargs, d_kwargs
    runs, spec, states, hps, mixture, _ = build.build_mixture(c)
    if ctx.bf16:
        spec = dataclasses.replace(spec, compute_dtype=jnp.bfloat16)
    flat_g = {k: v for k, v in g_kwargs.items() if k != "dtype"}
    flat_d = {k: v for k, v in d_kwargs.items() if k != "dtype"}
    flops = gan_step_flops(c.model.g, flat_g, c.model.d, flat_d, c.batch_size)[2]
    return c, spec, states, hps, mixture, flops


def case_mixture_official(ctx: Context, cfg: dict) -> list[dict]:
    """One official mixture run: scanned (K steps per call) and unscanned, vs PyTorch eager."""
    c, spec, states, hps, mixture, flops = _mixture_setup(ctx, cfg, seeds=1)
    step = make_train_step(spec)
    k, chunk = cfg["scan_steps"], cfg["no_scan_chunk"]
    scanned, plain = runners.single(step, scan_steps=k), runners.single(step)
    # Diagnostic, not the protocol: latents drawn from a fixed pool (`latent_pool_sampler`)
    # instead of fresh Threefry normals, to measure what the PRNG costs in the step.
    pool = jax.random.normal(jax.random.PRNGKey(5), (cfg.get("pool", 4096), spec.latent_dim))
    pooled = runners.single(
        make_train_step(dataclasses.replace(spec, sample_latents=latent_pool_sampler(pool))),
        scan_steps=k,
    )
    hp = unstack(hps, 0)
    box_scan, box_plain = [_copy(unstack(states, 0))], [_copy(unstack(states, 0))]
    box_pool = [_copy(unstack(states, 0))]

    def ours_pool() -> float:
        box_pool[0], metrics = pooled(box_pool[0], hp)
        _block((box_pool[0], metrics))
        return k

    def ours_scan() -> float:
        box_scan[0], metrics = scanned(box_scan[0], hp)
        _block((box_scan[0], metrics))
        return k

    def ours_plain() -> float:
        for _ in range(chunk):
            box_plain[0], metrics = plain(box_plain[0], None, hp)
        _block((box_plain[0], metrics))
        return chunk

    variants = {"scan": ours_scan, "no_scan": ours_plain, "latent_pool": ours_pool}
    g_kw = c.model.g_kwargs
    if ctx.torch_ref is not None:
        tr = ctx.torch_ref
        ref_step = tr.mixture_step(
            means=np.asarray(mixture.means),
            std=float(np.asarray(mixture.stds)[0]),
            batch=c.batch_size,
            latent_dim=g_kw.get("latent_dim", 256),
            g_hidden=g_kw.get("hidden", 128),
            d_hidden=c.model.d_kwargs.get("hidden", 128),
            lr_g=c.optim_g.lr,
            lr_d=c.optim_d.lr,
            b1=c.optim_d.b1,
            device=ctx.torch_device,
            amp_dtype=ctx.amp_dtype(),
        )
        variants["reference"] = _torch_call(ctx, ref_step, cfg.get("ref_chunk", 5))
    rates, calls, shares = interleave(variants, **ctx.timing(cfg))
    config = {
        "batch": c.batch_size,
        "runs": 1,
        "model": f"{c.model.g}{dict(g_kw)} / {c.model.d}{dict(c.model.d_kwargs)}",
        "update": spec.update,
        "dtype": ctx.dtype_name,
        "torch_threads": ctx.torch_threads,
        "calls_per_repeat": calls,
    }
    extra = {
        "scan": {"scan_steps": k},
        "no_scan": {"steps_dispatched_per_block": chunk},
        "latent_pool": {"scan_steps": k, "latents": f"pool of {pool.shape[0]} (diagnostic)"},
    }
    names = {"scan": "scan", "no_scan": "no_scan", "latent_pool": "scan,latent_pool"}
    rows = [
        make_row(
            f"mixture_official[{names[v]}]",
            unit="steps/s",
            ours=rates[v],
            reference=rates.get("reference"),
            shares=(shares.get(v), shares.get("reference")),
            ctx=ctx,
            config={**config, **extra[v]},
            flops_per_unit=flops,
        )
        for v in ("scan", "no_scan", "latent_pool")
    ]
    rows[0]["scan_speedup_vs_no_scan"] = rows[0]["ours_per_s"] / rows[1]["ours_per_s"]
    return rows


def case_mixture_vectorized(ctx: Context, cfg: dict) -> list[dict]:
    """R official runs as one vmapped program (ours) vs the same R runs one after another."""
    r = cfg["runs"]
    c, spec, states, hps, _, flops = _mixture_setup(ctx, cfg, seeds=r)
    step = make_train_step(spec)
    k = cfg["scan_steps"]
    vec = runners.vectorized(step, scan_steps=k)
    seq = runners.single(step, scan_steps=k)
    seq_states = [_copy(unstack(states, i)) for i in range(r)]
    seq_hps = [unstack(hps, i) for i in range(r)]
    box = [_copy(states)]

    def vectorized() -> float:
        box[0], metrics = vec(box[0], hps)
        _block((box[0], metrics))
        return r * k

    def sequential() -> float:
        out = []
        for i in range(r):
            seq_states[i], metrics = seq(seq_states[i], seq_hps[i])
            out.append(metrics)
        _block((seq_states, out))
        return r * k

    rates, calls, shares = interleave(
        {"vectorized": vectorized, "sequential": sequential}, **ctx.timing(cfg)
    )
    row = make_row(
        "mixture_vectorized_vs_sequential",
        unit="run-steps/s",
        ours=rates["vectorized"],
        reference=rates["sequential"],
        shares=(shares.get("vectorized"), shares.get("sequential")),
        ctx=ctx,
        config={
            "batch": c.batch_size,
            "runs": r,
            "scan_steps": k,
            "dtype": ctx.dtype_name,
            "reference": "the same runs, one runners.single(scan) call each, in turn",
            "calls_per_repeat": calls,
        },
        flops_per_unit=flops,
    )
    return [row]


def _adam_cfg(lr: float = 2e-4) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {"name": "adam", "lr": lr, "b1": 0.5, "b2": 0.999, "eps": 1e-8}
    )


def _jax_image_step(
    ctx: Context, g_name: str, g_kwargs: dict, d_name: str, d_kwargs: dict, batch: int, impl: str
) -> Callable[[int], float]:
    """Our image step (D then G, LSGAN 0-1-1, Adam 2e-4 β1 .5) on a fixed real batch on device."""
    key = jax.random.PRNGKey(0)
    dt = jnp.bfloat16 if ctx.bf16 else None
    g = models_lib.create(
        g_name,
        rngs=nnx.Rngs(params=jax.random.fold_in(key, 0)),
        deconv_impl=impl,
        dtype=dt,
        **g_kwargs,
    )
    d = models_lib.create(  # D's stride-2 conv input gradients are stride-2 transposed convs
        d_name,
        rngs=nnx.Rngs(params=jax.random.fold_in(key, 1)),
        deconv_impl=impl,
        dtype=dt,
        **d_kwargs,
    )
    g_tx, d_tx = make_optimizer(_adam_cfg()), make_optimizer(_adam_cfg())
    spec = StepSpec(
        g_graphdef=nnx.graphdef(g),
        d_graphdef=nnx.graphdef(d),
        g_tx=g_tx,
        d_tx=d_tx,
        batch_size=batch,
        latent_dim=g.latent_dim,
        latent_dist=g.latent_dist,
        loss_names=("lsgan",),
        update="alternating",
        compute_dtype=ctx.compute_dtype,
    )
    box = [init_state(g, d, g_tx, d_tx, jax.random.fold_in(key, 2))]
    hp = make_hparams(lr_g=2e-4, lr_d=2e-4)
    real = jax.random.uniform(jax.random.fold_in(key, 3), (batch, *g.image_shape), minval=-1.0)
    fn = runners.single(make_train_step(spec))
    del g, d

    def call(chunk: int) -> float:
        for _ in range(chunk):
            box[0], metrics = fn(box[0], {"image": real}, hp)
        _block((box[0], metrics))
        return chunk

    return call


def _torch_call(ctx: Context, step: Callable[[], None], chunk: int) -> Callable[[], float]:
    """`chunk` PyTorch steps, then a device sync.

    The thread count stays what `make_context` set for the whole process: switching
    `torch.set_num_threads` between timed variants was seen to slow the 2-thread runs of this
    PyTorch build several-fold afterwards (OpenMP team re-creation), so compare thread counts
    in separate processes (`--torch_threads`).
    """

    def call() -> float:
        for _ in range(chunk):
            step()
        ctx.torch_ref.sync(ctx.torch_device)
        return chunk

    return call


def _image_case(
    ctx: Context,
    cfg: dict,
    *,
    name: str,
    g_name: str,
    g_defaults: dict,
    d_name: str,
    d_defaults: dict,
    torch_models: Callable[[dict, dict], tuple[Any, Any]],
) -> list[dict]:
    batch, chunk = cfg["batch"], cfg.get("chunk", 1)
    g_kwargs = {**g_defaults, **cfg.get("g_kwargs", {})}
    d_kwargs = {**d_defaults, **cfg.get("d_kwargs", {})}
    g_fwd, d_fwd, flops = gan_step_flops(g_name, g_kwargs, d_name, d_kwargs, batch)
    ctx.log(
        f"  model FLOPs per image: G fwd {g_fwd / batch / 1e6:.1f} M, D fwd {d_fwd / batch / 1e6:.1f} M"
    )
    impls = tuple(cfg.get("impls", IMPLS))
    variants: dict[str, Callable[[], float]] = {}
    for impl in impls:
        call = _jax_image_step(ctx, g_name, g_kwargs, d_name, d_kwargs, batch, impl)
        variants[impl] = lambda call=call: call(chunk)
    if ctx.torch_ref is not None:
        g_t, d_t = torch_models(g_kwargs, d_kwargs)
        latent = g_kwargs["latent_dim"]
        shape = (g_kwargs["image_size"], g_kwargs["image_size"], g_kwargs["channels"])
        ref_step = ctx.torch_ref.image_step(
            g_t,
            d_t,
            batch=batch,
            latent_dim=latent,
            image_shape=shape,
            device=ctx.torch_device,
            amp_dtype=ctx.amp_dtype(),
        )
        variants["reference"] = _torch_call(ctx, ref_step, chunk)
    rates, calls, shares = interleave(variants, **ctx.timing(cfg))
    auto = resolve_deconv_impl("auto")
    rows = []
    for impl in impls:
        config = {
            "batch": batch,
            "deconv_impl": impl,
            "default_impl_here": auto,
            "g": f"{g_name}{g_kwargs}",
            "d": f"{d_name}{d_kwargs}",
            "dtype": ctx.dtype_name,
            "torch_threads": ctx.torch_threads,
            "steps_per_call": chunk,
            "calls_per_repeat": calls,
        }
        row = make_row(
            f"{name}[{impl}]",
            unit="steps/s",
            ours=rates[impl],
            reference=rates.get("reference"),
            shares=(shares.get(impl), shares.get("reference")),
            ctx=ctx,
            config=config,
            flops_per_unit=flops,
            images_per_unit=batch,
        )
        if impl == auto:
            set_target(row, TARGETS.get(f"{name}[auto]"))
        rows.append(row)
    return rows


def case_dcgan64(ctx: Context, cfg: dict) -> list[dict]:
    """DCGAN-64 LSGAN step (dcgan_g / dcgan_d, 64x64x3, z 100): both deconv forms vs PyTorch."""

    def torch_models(gk, dk):
        tr = ctx.torch_ref
        return tr.DCGANGenerator(**gk), tr.DCGANDiscriminator(**dk)

    return _image_case(
        ctx,
        cfg,
        name="dcgan64",
        g_name="dcgan_g",
        g_defaults=DCGAN64_G,
        d_name="dcgan_d",
        d_defaults=DCGAN64_D,
        torch_models=torch_models,
    )


def case_dcgan28_digits(ctx: Context, cfg: dict) -> list[dict]:
    """The TPAMI digits model (digit_g / digit_d, 28x28x1, z 100) vs PyTorch."""

    def torch_models(gk, dk):
        tr = ctx.torch_ref
        return tr.DCGANGenerator(**gk), tr.DigitDiscriminator(**dk)

    return _image_case(
        ctx,
        cfg,
        name="dcgan28_digits",
        g_name="digit_g",
        g_defaults=DIGIT_G,
        d_name="digit_d",
        d_defaults=DIGIT_D,
        torch_models=torch_models,
    )


def case_lsun112(ctx: Context, cfg: dict) -> list[dict]:
    """The ICCV 112x112 scene model (lsun_g / lsun_d, z 1024) vs PyTorch."""

    def torch_models(gk, dk):
        tr = ctx.torch_ref
        return tr.LSUNGenerator(**gk), tr.DCGANDiscriminator(**dk)

    return _image_case(
        ctx,
        cfg,
        name="lsun112",
        g_name="lsun_g",
        g_defaults=LSUN_G,
        d_name="lsun_d",
        d_defaults=LSUN_D,
        torch_models=torch_models,
    )


def case_pipeline(ctx: Context, cfg: dict) -> list[dict]:
    """The digits DCGAN train loop fed by `images.make_iterator("digits")` vs synthetic batches."""
    from experiments import digits as digits_exp  # noqa: PLC0415
    from lsgan_jax.data import images  # noqa: PLC0415
    from lsgan_jax.training import build  # noqa: PLC0415

    c = digits_exp.get_config("smoke" if cfg.get("tiny_model") else "default")
    c.batch_size = batch = cfg["batch"]
    chunk = cfg["chunk"]
    spec, state, hp = build.build_image(c, axis_name=None)
    fn = runners.single(make_train_step(spec))
    size, channels = c.data.image_size, c.model.g_kwargs["channels"]
    real_it = images.make_iterator(
        c.data.name, global_batch=batch, image_size=size, seed=0, data_dir=ctx.data_dir
    )
    synth_it = images.synthetic_batches(batch, size, channels, 10, seed=0)

    def loop_over(it, box):
        def call() -> float:
            for _ in range(chunk):
                b = next(it)
                box[0], metrics = fn(box[0], {"image": np.asarray(b["image"])}, hp)
            _block((box[0], metrics))
            return chunk

        return call

    variants = {
        "make_iterator": loop_over(real_it, [_copy(state)]),
        "synthetic": loop_over(synth_it, [state]),
    }
    rates, calls, shares = interleave(variants, **ctx.timing(cfg))
    g_fwd, d_fwd, flops = gan_step_flops(
        c.model.g, dict(c.model.g_kwargs), c.model.d, dict(c.model.d_kwargs), batch
    )
    row = make_row(
        "pipeline",
        unit="steps/s",
        ours=rates["make_iterator"],
        reference=rates["synthetic"],
        shares=(shares.get("make_iterator"), shares.get("synthetic")),
        ctx=ctx,
        config={
            "dataset": c.data.name,
            "image_size": size,
            "batch": batch,
            "model": f"{c.model.g}{dict(c.model.g_kwargs)} / {c.model.d}{dict(c.model.d_kwargs)}",
            "reference": "the same loop fed by images.synthetic_batches",
            "steps_per_call": chunk,
            "calls_per_repeat": calls,
            "num_threads": images.DEFAULT_NUM_THREADS,
        },
        flops_per_unit=flops,
        images_per_unit=batch,
    )
    return [row]


CASE_FNS: dict[str, Callable[[Context, dict], list[dict]]] = {
    "mixture_official": case_mixture_official,
    "mixture_vectorized_vs_sequential": case_mixture_vectorized,
    "dcgan64": case_dcgan64,
    "dcgan28_digits": case_dcgan28_digits,
    "lsun112": case_lsun112,
    "pipeline": case_pipeline,
}


# ---------------------------------------------------------------------------------------------
# Driver.
# ---------------------------------------------------------------------------------------------


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


def make_context(
    suite: str = "cpu",
    *,
    repeats: int | None = None,
    target_s: float | None = None,
    bf16: bool = False,
    reference: bool = True,
    torch_threads: int | None = None,
    data_dir: str | None = None,
    verbose: bool = True,
) -> Context:
    """A `Context` for `suite`, importing the PyTorch reference when asked and available."""
    if suite not in SUITES:
        raise ValueError(f"Unknown suite {suite!r}; choose one of {sorted(SUITES)}.")
    s = SUITES[suite]
    ctx = Context(
        suite=suite,
        repeats=repeats or s["repeats"],
        target_s=s["target_s"] if target_s is None else target_s,
        bf16=bf16,
        reference=reference,
        forced_repeats=repeats is not None,
        forced_target_s=target_s is not None,
        data_dir=data_dir,
        verbose=verbose,
    )
    if reference:
        try:
            from benchmarks import torch_reference  # noqa: PLC0415
        except ImportError as e:  # torch is the optional [bench] extra
            ctx.log(f"PyTorch reference unavailable ({e}); pip install -e '.[bench]'.")
        else:
            import torch  # noqa: PLC0415

            ctx.torch_threads = torch_reference.set_threads(torch_threads)
            if suite != "gpu":
                ctx.torch_ref, ctx.torch_device = torch_reference, torch.device("cpu")
            elif torch.cuda.is_available():
                ctx.torch_ref, ctx.torch_device = torch_reference, torch.device("cuda")
            else:
                ctx.log(
                    f"torch {torch.__version__} sees no CUDA device: the gpu suite runs without "
                    "the PyTorch reference (install a CUDA build of torch to compare)."
                )
    if suite == "gpu" and jax.default_backend() == "cpu":
        ctx.log("warning: --suite gpu but JAX runs on CPU; the numbers are CPU numbers.")
    return ctx


def run_cases(ctx: Context, cases: list[str] | tuple[str, ...] = CASES, emit=None) -> list[dict]:
    """Measures the matmul peak, then each case; `emit(row)` is called as rows come."""
    unknown = [c for c in cases if c not in CASE_FNS]
    if unknown:
        raise ValueError(f"Unknown case(s) {unknown}; choose from {list(CASES)}.")
    rows: list[dict] = []

    def out(new):
        for row in new:
            rows.append(row)
            if emit is not None:
                emit(row)

    suite = SUITES[ctx.suite]
    ctx.log(f"[{ctx.suite}] matmul peak (n={suite['matmul_n']})")
    out(case_matmul(ctx, suite["matmul_n"]))
    for case in cases:
        ctx.log(f"[{ctx.suite}] {case}")
        t0 = time.perf_counter()
        out(CASE_FNS[case](ctx, dict(suite[case])))
        ctx.log(f"  done in {time.perf_counter() - t0:.1f} s")
    return rows


def _fmt(x: Any, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}"


def format_table(rows: list[dict]) -> str:
    """Readable table of result rows.

    `ratio` is ours / reference (medians); `best/best` the ratio of the best repeats (on a shared
    machine, the least-disturbed measurement of each side); `MFU` is ours / the JAX matmul peak
    of the same run; `others` the % of the machine's CPU that other processes took during our /
    the reference's measurements (median); `target` the issue's minimum ratio and whether
    `ratio` meets it.
    """
    head = (
        f"{'case':<36} {'unit':<12} {'ours':>10} {'reference':>10} {'ratio':>7} "
        f"{'best/best':>9} {'GFLOP/s':>8} {'MFU':>6} {'others':>9} {'target':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        target = ""
        if "target" in r:
            target = f"{'ok' if r['target_met'] else 'MISS'} {r['target']:g}"
        mfu = r.get("mfu_ours")
        fo, fr = r.get("foreign_cpu_ours"), r.get("foreign_cpu_reference")
        others = f"{_pct(fo)}/{_pct(fr)}" if fo is not None or fr is not None else "-"
        lines.append(
            f"{r['name']:<36} {r['unit']:<12} {_fmt(r['ours_per_s'], '.4g'):>10} "
            f"{_fmt(r['reference_per_s'], '.4g'):>10} {_fmt(r['ratio'], '.2f'):>7} "
            f"{_fmt(r.get('ratio_of_best'), '.2f'):>9} "
            f"{_fmt(r.get('gflops_ours'), '.1f'):>8} "
            f"{'-' if mfu is None else format(100 * mfu, '.0f') + '%':>6} {others:>9} {target:>9}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--suite", default="cpu", choices=sorted(SUITES))
    parser.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per variant")
    parser.add_argument("--target_s", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute, float32 params")
    parser.add_argument("--no_reference", action="store_true", help="skip PyTorch")
    parser.add_argument("--torch_threads", type=int, default=None, help="default: os.cpu_count()")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir for the pipeline case")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    ctx = make_context(
        args.suite,
        repeats=args.repeats,
        target_s=args.target_s,
        bf16=args.bf16,
        reference=not args.no_reference,
        torch_threads=args.torch_threads,
        data_dir=args.data_dir,
        verbose=not args.quiet,
    )
    emit = (lambda row: print(json.dumps(row), flush=True)) if args.json else None
    rows = run_cases(ctx, cases, emit=emit)
    if not args.json:
        print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
