"""Hyperparameter sweeps: define points, run them vectorized, sequentially, or as commands.

A sweep is a base experiment (module + variant), a list of points (dicts of config path → value)
and a way to run them:

* ``vectorized`` — every point × loss × seed becomes one run of a single `jit(vmap(scan(step)))`
  program (the run axis sharded across devices). Only traced fields may vary between points
  (`lsgan_jax.studies.TRACED_FIELDS`, `losses`, `seed`); the 2-D mixture studies support it.
* ``sequential`` — each point is a full run of the experiment's `main(config, workdir)`, one after
  another in this process (any config field may vary).
* ``commands`` — print one shell command per point, for an external launcher (a TPU pod job,
  Slurm array, ...); run them anywhere, then `aggregate` the workdirs.

Sweep files live in `experiments/sweeps/NAME.py` and define `get_sweep() -> Sweep`.

    python -m lsgan_jax.sweep codings_lr --mode=vectorized
    python -m lsgan_jax.sweep codings_lr --mode=sequential --workdir=/tmp/sw
    python -m lsgan_jax.sweep codings_lr --mode=commands

Results of every mode are aggregated into `sweep.json`, `sweep.csv` and `sweep.png` (the chosen
metric per group, mean ± s.e. over seeds). The point constructors mirror big_vision's `hyper`
(`product`, `zipit`, `sweep`) and add `random_search`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import itertools
import json
import math
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from lsgan_jax.errors import ConfigError

MODES = ("vectorized", "sequential", "commands")


# ---- point constructors ---------------------------------------------------------------------


def sweep(path: str, values: Sequence[Any]) -> list[dict]:
    """One field over a list of values: `sweep("optim_g.lr", [1e-4, 1e-3])`."""
    return [{path: v} for v in values]


def product(*axes: list[dict]) -> list[dict]:
    """Cartesian product of point lists (each from `sweep`, `zipit`, ... or a literal list)."""
    out = []
    for combo in itertools.product(*axes):
        point: dict = {}
        for p in combo:
            point.update(p)
        out.append(point)
    return out


def zipit(*axes: list[dict]) -> list[dict]:
    """Element-wise combination of equally long point lists."""
    lengths = {len(a) for a in axes}
    if len(lengths) > 1:
        raise ValueError(f"zipit needs equally long lists, got lengths {sorted(lengths)}.")
    return [
        dict(itertools.chain.from_iterable(p.items() for p in combo))
        for combo in zip(*axes, strict=True)
    ]


def random_search(space: dict[str, tuple], num_points: int, seed: int = 0) -> list[dict]:
    """Random points. `space[path]` is ("uniform", lo, hi), ("log_uniform", lo, hi) or
    ("choice", [values])."""
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(num_points):
        point = {}
        for path, spec in space.items():
            kind = spec[0]
            if kind == "uniform":
                point[path] = float(rng.uniform(spec[1], spec[2]))
            elif kind == "log_uniform":
                point[path] = float(math.exp(rng.uniform(math.log(spec[1]), math.log(spec[2]))))
            elif kind == "choice":
                point[path] = spec[1][int(rng.integers(len(spec[1])))]
            else:
                raise ValueError(f"{path}: unknown distribution {kind!r}")
        points.append(point)
    return points


# ---- sweep definition ------------------------------------------------------------------------


@dataclasses.dataclass
class Sweep:
    """A sweep over an experiment module.

    Attributes:
      module: experiment module, e.g. "experiments.mixture".
      variant: its named config variant.
      points: list of {config path: value}.
      overrides: config fields set for every point (e.g. a shorter num_steps).
      metric: the summary metric to tabulate and plot (per group, mean ± s.e.).
      description: one line on what the sweep studies and where its protocol comes from.
    """

    module: str
    variant: str
    points: list[dict]
    overrides: dict = dataclasses.field(default_factory=dict)
    metric: str = "modes_covered"
    description: str = ""


def load_sweep(name: str) -> Sweep:
    """Imports `experiments.sweeps.NAME` and returns its `get_sweep()`."""
    try:
        mod = importlib.import_module(f"experiments.sweeps.{name}")
    except ModuleNotFoundError as e:
        folder = os.path.join(os.path.dirname(__file__), "..", "experiments", "sweeps")
        found = (
            sorted(
                f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_")
            )
            if os.path.isdir(folder)
            else []
        )
        raise ConfigError(f"No sweep named {name!r}; available: {found}.") from e
    return mod.get_sweep()


def set_path(config: ml_collections.ConfigDict, path: str, value: Any) -> None:
    """Sets `config.a.b = value`; a path that names no field is a ConfigError."""
    *parents, leaf = path.split(".")
    node = config
    for p in parents:
        if p not in node:
            raise ConfigError(f"Sweep field {path!r}: {p!r} is not a config field.")
        node = node[p]
    if leaf not in node:
        raise ConfigError(f"Sweep field {path!r}: {leaf!r} is not a config field of {parents}.")
    with node.ignore_type():
        node[leaf] = value


def base_config(sw: Sweep) -> ml_collections.ConfigDict:
    mod = importlib.import_module(sw.module)
    config = mod.get_config(sw.variant)
    for path, value in sw.overrides.items():
        set_path(config, path, value)
    return config


def point_name(point: dict) -> str:
    return ",".join(f"{k}={_fmt(v)}" for k, v in point.items()) or "base"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return "+".join(map(str, v))
    return str(v)


def commands(sw: Sweep, workdir: str) -> list[str]:
    """One shell command per point."""
    out = []
    for i, point in enumerate(sw.points):
        args = ["python", "-m", sw.module, f"--variant={sw.variant}"]
        for path, value in {**sw.overrides, **point}.items():
            args.append(f"--config.{path}={_cli_value(value)}")
        args.append(f"--workdir={os.path.join(workdir, f'point{i:03d}')}")
        out.append(" ".join(shlex.quote(a) for a in args))
    return out


def _cli_value(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(repr(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


# ---- running and aggregating --------------------------------------------------------------------


def run(sw: Sweep, mode: str, workdir: str) -> dict:
    """Runs a sweep in `mode` and writes the aggregated table; returns it."""
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}; choose one of {MODES}.")
    os.makedirs(workdir, exist_ok=True)
    if mode == "commands":
        cmds = commands(sw, workdir)
        with open(os.path.join(workdir, "commands.sh"), "w") as f:
            f.write("\n".join(cmds) + "\n")
        print("\n".join(cmds))
        return {"commands": cmds}
    mod = importlib.import_module(sw.module)
    config = base_config(sw)
    if mode == "vectorized":
        summary = mod.main(config, os.path.join(workdir, "vectorized"), points=sw.points)
        rows = summary["runs"]
    else:
        rows = []
        for i, point in enumerate(sw.points):
            cfg = ml_collections.ConfigDict(config.to_dict())
            for path, value in point.items():
                if path not in ("seed",):
                    set_path(cfg, path, value)
            summary = mod.main(cfg, os.path.join(workdir, f"point{i:03d}"))
            for row in summary["runs"]:
                row = dict(row)
                row["group"] = _group(row["loss"], point)
                rows.append(row)
    return aggregate(rows, sw, workdir, mode)


def _group(loss: str, point: dict) -> str:
    extra = {k: v for k, v in point.items() if k not in ("seed", "losses")}
    if not extra:
        return loss
    return f"{loss}[" + ",".join(f"{k}={float(v):g}" for k, v in sorted(extra.items())) + "]"


def aggregate(rows: list[dict], sw: Sweep, workdir: str, mode: str) -> dict:
    """Mean ± s.e. of `sw.metric` (and the all-modes rate) per group; CSV, JSON and a plot."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    table = []
    for group, sel in groups.items():
        vals = np.asarray([r[sw.metric] for r in sel], np.float64)
        se = float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else 0.0
        entry = {"group": group, "num_runs": len(sel), sw.metric: float(vals.mean()), "se": se}
        if "all_modes" in sel[0]:
            entry["success_rate"] = float(np.mean([r["all_modes"] for r in sel]))
        table.append(entry)
    result = {
        "mode": mode,
        "metric": sw.metric,
        "description": sw.description,
        "table": table,
        "runs": rows,
    }
    with open(os.path.join(workdir, "sweep.json"), "w") as f:
        json.dump(result, f, indent=2, default=str)
    with open(os.path.join(workdir, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    _plot(table, sw.metric, os.path.join(workdir, "sweep.png"))
    print(f"{'group':<48} {'runs':>4} {sw.metric:>14} {'s.e.':>7} {'success':>8}")
    for e in table:
        print(
            f"{e['group']:<48} {e['num_runs']:>4} {e[sw.metric]:>14.3f} {e['se']:>7.3f} "
            f"{e.get('success_rate', float('nan')):>8.2f}"
        )
    return result


def _plot(table: list[dict], metric: str, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(table) + 2), 3.4))
    x = np.arange(len(table))
    ax.bar(
        x,
        [e[metric] for e in table],
        yerr=[e["se"] for e in table],
        capsize=3,
        color="tab:green",
        alpha=0.8,
    )
    ax.set_xticks(x, [e["group"] for e in table], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"{metric} (mean ± s.e.)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m lsgan_jax.sweep", description=__doc__.split("\n")[0]
    )
    parser.add_argument("name", help="sweep file experiments/sweeps/NAME.py")
    parser.add_argument("--mode", default="vectorized", choices=MODES)
    parser.add_argument("--workdir", default=None, help="default: workdirs/sweeps/NAME/MODE")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a base config field for every point (repeatable), e.g. --set num_steps=2000",
    )
    args = parser.parse_args(argv)
    try:
        sw = load_sweep(args.name)
        for item in args.set:
            path, _, value = item.partition("=")
            sw.overrides[path] = _parse(value)
        workdir = args.workdir or os.path.join("workdirs", "sweeps", args.name, args.mode)
        return run(sw, args.mode, workdir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from e


def _parse(value: str) -> Any:
    import ast  # noqa: PLC0415

    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


if __name__ == "__main__":
    main()
