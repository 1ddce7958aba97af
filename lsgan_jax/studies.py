"""Studies: the runs of an experiment (losses × seeds × sweep points), grouping and tables.

A study is a list of `Run`s. The mixture trainer trains them as one vectorized program; the
results are aggregated per group (the runs that differ only in their seed) as mean ± s.e.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from lsgan_jax.errors import ConfigError

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


def _seeds(config: ml_collections.ConfigDict) -> list[int]:
    seeds = config.seeds
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
        seeds = [int(point.pop("seed"))] if "seed" in point else _seeds(config)
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


def format_table(summary: dict, num_modes: int) -> str:
    """The printed results table (mean ± s.e. over seeds)."""
    lines = [
        f"{'loss':<10} {'runs':>4} {'modes (max ' + str(num_modes) + ')':>18} {'high quality %':>16} "
        f"{'reverse KL':>14} {'all modes':>9}",
    ]
    for loss, agg in summary["per_group"].items():
        mc, hq, rk = agg["modes_covered"], agg["high_quality"], agg["reverse_kl"]
        lines.append(
            f"{loss:<10} {agg['num_runs']:>4} {mc['mean']:>10.2f} ± {mc['se']:<5.2f} "
            f"{100 * hq['mean']:>8.1f} ± {100 * hq['se']:<5.1f} {rk['mean']:>7.3f} ± {rk['se']:<5.3f}"
            f" {agg['fraction_all_modes']:>9.2f}"
        )
    return "\n".join(lines)
