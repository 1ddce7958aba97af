"""Studies: the runs of an experiment, the two drivers that train them, grouping and tables.

Two drivers:

* **vectorized** — a list of :class:`Run` (losses × seeds × sweep points of traced
  hyperparameters) that the mixture trainer trains as one `jit(vmap(scan(step)))` program
  (:func:`runs_from_config`, :func:`summarize`, :func:`format_table`);
* **sequential** — a list of :class:`SequentialRun` (any config per run), each trained in turn
  by the image trainer with the evaluators of its ``config.evals``
  (:func:`run_sequential`, :func:`write_study`); the stability and small-variance studies.

Results are aggregated per group (the runs that differ only in their seed) as mean ± s.e. in
``summary.json``; the printed and Markdown tables give 95 % intervals from :mod:`lsgan_jax.stats`
(Student t for means over seeds, Wilson for rates).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections
import numpy as np

from lsgan_jax.errors import ConfigError, NonFiniteError

# Config fields that may differ between the runs of one vectorized program (they are traced
# hyperparameters), mapped to their `Hparams` field. `loss` and `seed` may differ too.
TRACED_FIELDS = {
    "optim_g.lr": "lr_g",
    "optim_d.lr": "lr_d",
    "coding.a": "a",
    "coding.b": "b",
    "coding.c": "c",
    "ema_decay": "ema_decay",
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a vectorized study: a loss, a seed and traced hyperparameter overrides."""

    index: int
    loss: str
    seed: int
    overrides: tuple[tuple[str, float], ...] = ()

    @property
    def group(self) -> str:
        """The runs that differ only in their seed share a group (the rows of the table)."""
        extra = ",".join(f"{k}={v:g}" for k, v in self.overrides)
        return f"{self.loss}[{extra}]" if extra else self.loss

    @property
    def name(self) -> str:
        return f"{self.group}/seed{self.seed}"


def group_name(loss: str, overrides: dict[str, float] | Sequence[tuple[str, float]] = ()) -> str:
    """The group label of runs with this loss and traced overrides, e.g. ``lsgan[coding.a=-1]``."""
    return Run(0, loss, 0, tuple(sorted(dict(overrides).items()))).group


def seed_list(config: ml_collections.ConfigDict) -> list[int]:
    """The seeds of a study: ``config.seeds`` is a count (``range(seeds)``) or a tuple of seeds."""
    seeds = config.seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int | tuple | list):
        raise ConfigError(f"seeds={seeds!r}: give a count (e.g. 3) or a tuple of seeds.")
    return list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]


def runs_from_config(
    config: ml_collections.ConfigDict, points: list[dict] | None = None
) -> list[Run]:
    """The runs of a study: for each sweep point, each loss, each seed.

    Args:
      config: the base config; `config.losses` and `config.seeds` (a count or a tuple of seeds).
      points: optional sweep points, dicts of config-path -> value. A point may set `losses`
        (a tuple), `seed` (one seed) and the traced fields in `TRACED_FIELDS`; anything else
        changes the compiled program and is a `ConfigError` here (run such sweeps sequentially).
    """
    runs = []
    for point in points or [{}]:
        point = dict(point)
        losses = tuple(point.pop("losses", config.losses))
        seeds = [int(point.pop("seed"))] if "seed" in point else seed_list(config)
        bad = sorted(set(point) - set(TRACED_FIELDS))
        if bad:
            raise ConfigError(
                f"Sweep field(s) {bad} change the compiled program and cannot be vectorized; "
                f"vectorizable fields are {sorted(TRACED_FIELDS)} plus 'losses' and 'seed'. "
                "Run this sweep with --mode=sequential or --mode=commands."
            )
        overrides = tuple(sorted((k, float(v)) for k, v in point.items()))
        runs.extend(Run(0, loss, s, overrides) for loss in losses for s in seeds)
    return [dataclasses.replace(r, index=i) for i, r in enumerate(runs)]


def run_value(config: ml_collections.ConfigDict, run: Run, path: str) -> float:
    overrides = dict(run.overrides)
    if path in overrides:
        return overrides[path]
    node = config
    for part in path.split("."):
        node = node[part]
    return float(node)


def _mean_se(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), se


def _aggregate(rows: list[dict], key: str) -> dict:
    out = {}
    for value in dict.fromkeys(row[key] for row in rows):
        sel = [row for row in rows if row[key] == value]
        agg = {"num_runs": len(sel)}
        for metric in (
            "modes_covered",
            "high_quality",
            "reverse_kl",
            "reverse_kl_all",
            "all_modes",
        ):
            if metric in sel[0]:
                m, se = _mean_se([row[metric] for row in sel])
                agg[metric] = {"mean": m, "se": se}
        agg["fraction_all_modes"] = agg.get("all_modes", {}).get("mean")
        out[value] = agg
    return out


def summarize(
    runs: list[Run],
    final: dict[str, np.ndarray],
    config: ml_collections.ConfigDict,
    extra: dict | None = None,
) -> dict:
    """Per-run rows; mean ± standard error per group (loss + swept values) and per loss.

    Each row has the run's loss, coding (a, b, c; for `lsgan`), learning rates, seed and the
    final mixture metrics; `fraction_all_modes` is the share of runs that cover every mode.
    """
    rows = []
    for r in runs:
        row = {"run": r.name, "group": r.group, "loss": r.loss, "seed": r.seed}
        if r.loss == "lsgan":
            row["coding"] = {k: run_value(config, r, f"coding.{k}") for k in "abc"}
        row["lr_g"] = run_value(config, r, "optim_g.lr")
        row["lr_d"] = run_value(config, r, "optim_d.lr")
        row.update({k: float(v[r.index]) for k, v in final.items()})
        rows.append(row)
    out = {
        "runs": rows,
        "per_group": _aggregate(rows, "group"),
        "per_loss": _aggregate(rows, "loss"),
    }
    if extra:
        out.update(extra)
    return out


def mean_interval(
    values: Sequence[float | None], bounds: tuple[float, float] | None = None
) -> tuple[float, tuple[float, float] | None]:
    """The mean of the finite values and its 95 % Student-t interval
    (:func:`lsgan_jax.stats.t_interval`; None with fewer than two values).

    `bounds`: the range the quantity can take (FD >= 0, a fraction in [0, 1]); the interval is
    cut to it. With few seeds the t interval can reach past it, and its part outside holds no
    possible value, so the cut interval covers the mean whenever the uncut one does.
    """
    from lsgan_jax import stats  # noqa: PLC0415

    v = [float(x) for x in values if x is not None and np.isfinite(x)]
    if not v:
        return float("nan"), None
    if len(v) < 2:
        return float(np.mean(v)), None
    lo, hi = stats.t_interval(v)
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return float(np.mean(v)), (lo, hi)


def rate_interval(successes: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of a rate (:func:`lsgan_jax.stats.wilson_interval`)."""
    from lsgan_jax import stats  # noqa: PLC0415

    return stats.wilson_interval(int(successes), int(n))


def fmt_mean_ci(
    values: Sequence[float | None],
    digits: int = 2,
    scale: float = 1.0,
    bounds: tuple[float, float] | None = None,
) -> str:
    """``"mean [low, high]"`` (95 % t interval over seeds, cut to `bounds`, see
    :func:`mean_interval`); ``n/a`` without finite values."""
    mean, ci = mean_interval(values, bounds)
    if not np.isfinite(mean):
        return "n/a"
    if ci is None:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]"


def fmt_rate_ci(successes: int, n: int) -> str:
    """``"k/n [low, high]"`` with the 95 % Wilson interval of the rate."""
    if n == 0:
        return "n/a"
    lo, hi = rate_interval(successes, n)
    return f"{successes}/{n} [{lo:.2f}, {hi:.2f}]"


def format_table(summary: dict, num_modes: int) -> str:
    """The printed results table: per group, the mean over seeds with its 95 % t interval cut
    to the quantity's range (modes, high-quality %, reverse KL) and the runs covering all modes
    with their 95 % Wilson interval (:mod:`lsgan_jax.stats`)."""
    rows_of: dict[str, list[dict]] = {}
    for row in summary["runs"]:
        rows_of.setdefault(row["group"], []).append(row)
    width = max(10, *(len(g) for g in summary["per_group"]))
    lines = [
        f"{'loss':<{width}} {'runs':>4} {'modes (max ' + str(num_modes) + ')':>20} "
        f"{'high quality %':>20} {'reverse KL':>22} {'all modes':>18}",
    ]
    for group, agg in summary["per_group"].items():
        rows = rows_of.get(group, [])
        modes = fmt_mean_ci([r["modes_covered"] for r in rows], bounds=(0.0, float(num_modes)))
        hq = fmt_mean_ci([r["high_quality"] for r in rows], 1, 100.0, (0.0, 1.0))
        rkl = fmt_mean_ci([r["reverse_kl"] for r in rows], 3, bounds=(0.0, math.inf))
        every = fmt_rate_ci(sum(int(bool(r.get("all_modes"))) for r in rows), len(rows))
        lines.append(
            f"{group:<{width}} {agg['num_runs']:>4} {modes:>20} {hq:>20} {rkl:>22} {every:>18}"
        )
    lines.append("[low, high]: 95 % intervals over seeds (Student t for means, Wilson for rates).")
    return "\n".join(lines)


# ---- sequential studies ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SequentialRun:
    """One run of a sequential study.

    Attributes:
      group: The runs that differ only in their seed share a group (a table row, a grid).
      labels: Columns copied into the run's row (e.g. ``{"setting": ...}``).
      config: The run's full image config (its ``evals`` name its evaluators).
      workdir: The run's own directory (logs, checkpoints; a rerun resumes there).
    """

    group: str
    labels: dict[str, Any]
    config: ml_collections.ConfigDict
    workdir: str


@dataclasses.dataclass
class SequentialResult:
    """What :func:`run_sequential` collected.

    Attributes:
      rows: One dict per run: its labels, ``seed``, ``diverged``, ``final`` and ``best`` (the first
        evaluator's metrics, without its prefix), ``class_hist`` (when that evaluator has one),
        ``steps_per_s``, ``seconds``, ``workdir``.
      samples: group -> the newest evaluated samples of each run (arrays in [−1, 1]; None when
        it never reached an evaluation), for the sample grids.
      protocols: group -> evaluator name -> its protocol (how the numbers were measured).
      preempted: The trainer's ``{"preempted_at": step}`` when SIGTERM stopped the study.
    """

    rows: list[dict] = dataclasses.field(default_factory=list)
    samples: dict[str, list[np.ndarray | None]] = dataclasses.field(default_factory=dict)
    protocols: dict[str, dict[str, dict]] = dataclasses.field(default_factory=dict)
    preempted: dict | None = None


def _strip(metrics: dict, prefix: str, key: str | None = None) -> dict:
    return {
        k.split("/", 1)[1]: (v[key] if key else v)
        for k, v in metrics.items()
        if k.startswith(prefix + "/")
    }


def run_sequential(
    runs: Sequence[SequentialRun],
    *,
    train: Callable[..., dict],
    make_evaluators: Callable[[ml_collections.ConfigDict], dict | None] | None = None,
    num_grid_samples: int = 16,
) -> SequentialResult:
    """Trains each run in turn with the evaluators of its ``config.evals``; collects the rows.

    A run that stops with non-finite values (:class:`~lsgan_jax.errors.NonFiniteError`) is
    recorded as ``diverged`` and the study goes on; SIGTERM stops the study (rerunning resumes
    every finished or interrupted run from its own checkpoint). Runs without an evaluator that
    keeps samples get :class:`~lsgan_jax.evaluators.samples.LastSamples` (``num_grid_samples``
    images of a fixed latent batch), so every grid is drawn from the generated arrays.

    Args:
      runs: The runs, in order.
      train: ``train(config, workdir, evaluators=...) -> summary`` (the image trainer).
      make_evaluators: ``config -> {name: evaluator} | None`` (default: the registry's).
      num_grid_samples: Samples kept per run for runs without a sample-keeping evaluator.
    """
    from lsgan_jax import evaluators as evaluators_lib  # noqa: PLC0415
    from lsgan_jax.evaluators.samples import LastSamples  # noqa: PLC0415

    make_evaluators = make_evaluators or evaluators_lib.make_evaluators
    result = SequentialResult()
    for run in runs:
        evaluators = dict(make_evaluators(run.config) or {})
        primary = next(iter(evaluators), None)
        keeper = next((e for e in evaluators.values() if hasattr(e, "last_samples")), None)
        if keeper is None:
            keeper = LastSamples.from_config(run.config, num_grid_samples)
            evaluators["samples"] = keeper
        t0, diverged, summary = time.perf_counter(), False, {}
        try:
            summary = train(run.config, run.workdir, evaluators=evaluators)
        except NonFiniteError as err:
            diverged = True
            print(f"{run.workdir}: stopped, {str(err).splitlines()[0]}")
        if "preempted_at" in summary:
            result.preempted = summary
            return result
        ev = evaluators.get(primary) if primary else None
        last = getattr(ev, "last", None)
        row = {
            **run.labels,
            "seed": int(run.config.seed),
            "diverged": diverged,
            "final": _strip(summary.get("final", {}), primary) if primary else {},
            "best": _strip(summary.get("best", {}), primary, "value") if primary else {},
            "class_hist": last.as_dict()["class_hist"] if last is not None else None,
            "steps_per_s": summary.get("steps_per_s"),
            "seconds": round(time.perf_counter() - t0, 1),
            "workdir": run.workdir,
        }
        result.rows.append(row)
        result.samples.setdefault(run.group, []).append(keeper.last_samples)
        for name, e in evaluators.items():
            if hasattr(e, "protocol"):
                result.protocols.setdefault(run.group, {})[name] = e.protocol()
        brief = {m: round(row["final"][m], 3) for m in ("fd", "class_coverage", "collapsed")
                 if m in row["final"]}  # fmt: skip
        print(f"{run.group} seed {row['seed']}: {row['seconds']} s {brief}")
    return result


def write_study(workdir: str, summary: dict, markdown: str, footer: str = "") -> dict:
    """Writes ``summary.json`` and ``table.md`` (the table, then ``footer``) and prints them."""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    with open(os.path.join(workdir, "table.md"), "w") as f:
        f.write(f"{markdown}\n\n{footer}\n" if footer else f"{markdown}\n")
    print(markdown)
    if footer:
        print(footer)
    n, secs = len(summary.get("runs", [])), summary.get("seconds", 0.0)
    print(f"{n} runs in {secs:.0f} s. Wrote {os.path.join(workdir, 'summary.json')}, table.md.")
    return summary
