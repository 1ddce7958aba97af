"""Hyperparameter sweeps: define points, run them vectorized, sequentially, or as commands.

A sweep is an experiment module (``get_config(variant)``, ``main(config, workdir)``), a variant,
a list of points (dicts of config path → value) and a way to run them:

* ``vectorized`` — every point × loss × seed becomes one run of a single `jit(vmap(scan(step)))`
  program (the run axis sharded across devices). Only traced fields may vary between points
  (`lsgan_jax.studies.TRACED_FIELDS`, `losses`, `seed`); experiments whose ``main`` takes
  ``points`` (the 2-D mixture studies) support it.
* ``sequential`` — each point is a full run of the experiment's ``main(config, workdir)``, one
  after another in this process (any config field may vary).
* ``commands`` — write one shell command per point (``commands.sh``), for an external launcher
  (a TPU pod job, a Slurm array, ...); run them anywhere, then :func:`aggregate_workdir` (the
  CLI's ``aggregate`` command) reads their ``summary.json`` files.

Every point and override is checked against the experiment's config (unknown fields get the
closest real name) before anything runs or is printed. Results of every mode go to the sweep's
workdir: ``sweep.json``, ``sweep.csv`` (one column per swept field, then the metrics: mean,
s.e. and 95 % interval over seeds per group, from :mod:`lsgan_jax.stats`), ``sweep.png`` (the chosen metric per group with
its interval) and ``tb/<group>/`` (one TensorBoard run directory per group with shared tag names,
so the groups overlay). A group is a point × loss: the runs that differ only in their seed.

The library never imports ``experiments``: the caller passes the experiment module (the sweep
files in ``experiments/sweeps/`` import it; ``python -m experiments.sweep`` resolves names). The
point constructors mirror big_vision's ``hyper`` (``product``, ``zipit``, ``sweep``) and add
``random_search``.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import difflib
import inspect
import itertools
import json
import math
import os
import re
import shlex
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import ml_collections
import numpy as np

from lsgan_jax import studies
from lsgan_jax.errors import ConfigError

MODES = ("vectorized", "sequential", "commands")
MANIFEST = "sweep_manifest.json"
#: Point keys that are not swept columns: ``losses`` becomes the ``loss`` column, ``seed`` is
#: aggregated over.
_SPECIAL = ("losses", "seed")
#: Per-run metrics aggregated when present (the mixture metrics).
METRICS = ("modes_covered", "high_quality", "reverse_kl", "reverse_kl_all", "all_modes")


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
      experiment: The experiment module (``get_config(variant)``, ``main(config, workdir)``;
        ``main(..., points=...)`` for the vectorized mode), e.g. ``experiments.mixture``.
      variant: Its named config variant.
      points: List of {config path: value}.
      overrides: Config fields set for every point (e.g. a shorter ``num_steps``).
      metric: The per-run metric to tabulate and plot (per group: mean, s.e., 95 % interval).
      description: One line on what the sweep studies and where its protocol comes from.
      name: The sweep's name (its file in ``experiments/sweeps/``).
    """

    experiment: ModuleType
    variant: str
    points: list[dict]
    overrides: dict = dataclasses.field(default_factory=dict)
    metric: str = "modes_covered"
    description: str = ""
    name: str = ""

    @property
    def module_name(self) -> str:
        return self.experiment.__name__


def config_fields(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every field path of a config (``optim_g``, ``optim_g.lr``, ...)."""
    out = []
    for k, v in config.items():
        out.append(prefix + k)
        if isinstance(v, ml_collections.ConfigDict):
            out.extend(config_fields(v, prefix + k + "."))
    return out


def _unknown_field(path: str, config: ml_collections.ConfigDict, where: str) -> ConfigError:
    close = difflib.get_close_matches(path, config_fields(config), n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"{where}: {path!r} is not a config field.{hint}")


def _get(config: ml_collections.ConfigDict, path: str) -> Any:
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def has_path(config: ml_collections.ConfigDict, path: str) -> bool:
    *parents, leaf = path.split(".")
    node = config
    for p in parents:
        if not isinstance(node, ml_collections.ConfigDict) or p not in node:
            return False
        node = node[p]
    return isinstance(node, ml_collections.ConfigDict) and leaf in node


def set_path(
    config: ml_collections.ConfigDict, path: str, value: Any, where: str = "sweep field"
) -> None:
    """Sets ``config.a.b = value``; a path that names no field is a ConfigError (did-you-mean)."""
    if not has_path(config, path):
        raise _unknown_field(path, config, where)
    *parents, leaf = path.split(".")
    node = config
    for p in parents:
        node = node[p]
    with node.ignore_type():
        node[leaf] = value


def parse_value(config: ml_collections.ConfigDict, path: str, text: str) -> Any:
    """A command-line value for ``path``, typed like the field it replaces (as config flags do).

    Raises:
      ConfigError: unknown field (did-you-mean) or a value that does not parse as its type.
    """
    if not has_path(config, path):
        raise _unknown_field(path, config, "--config override")
    old = _get(config, path)
    try:
        if isinstance(old, bool):
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return low in ("true", "1")
        if isinstance(old, int):
            return int(text)
        if isinstance(old, float):
            return float(text)
        if isinstance(old, str):
            return text
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        kind = type(old).__name__
        raise ConfigError(f"--config.{path}={text!r} is not a valid {kind}.") from e


def point_overrides(point: dict, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """A point's fields as config overrides (a single ``seed`` becomes ``seeds=(seed,)`` in
    configs whose seeds are a ``seeds`` field)."""
    out = dict(point)
    if "seed" in out and not has_path(config, "seed") and has_path(config, "seeds"):
        out["seeds"] = (int(out.pop("seed")),)
    return out


def swept_fields(points: Sequence[dict]) -> list[str]:
    """The swept config paths, in order of first appearance (``losses``/``seed`` excluded)."""
    return [k for k in dict.fromkeys(k for p in points for k in p) if k not in _SPECIAL]


def base_config(sw: Sweep) -> ml_collections.ConfigDict:
    """The experiment's config for ``sw.variant`` with ``sw.overrides`` applied (checked)."""
    variants = tuple(getattr(sw.experiment, "VARIANTS", ()))
    if variants and sw.variant not in variants:
        close = difflib.get_close_matches(sw.variant, variants, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown variant {sw.variant!r} of {sw.module_name}.{hint} "
                          f"Choose one of {variants}.")  # fmt: skip
    config = sw.experiment.get_config(sw.variant)
    for path, value in sw.overrides.items():
        set_path(config, path, value, where="sweep override")
    return config


def validate(sw: Sweep, mode: str) -> ml_collections.ConfigDict:
    """Checks the mode, the variant, every override and every point field; returns the base config.

    Raises:
      ConfigError: with the closest field name for a typo, or what to change for a point that
        the mode cannot run.
    """
    if mode not in MODES:
        close = difflib.get_close_matches(mode, MODES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"mode={mode!r}.{hint} Choose one of {MODES}.")
    if not sw.points:
        raise ConfigError("The sweep has no points.")
    config = base_config(sw)
    for i, point in enumerate(sw.points):
        probe = ml_collections.ConfigDict(config.to_dict())
        if mode == "vectorized":  # a vectorized point may pin one seed (runs_from_config)
            point = {k: v for k, v in point.items() if k != "seed"}
        for path, value in point_overrides(point, config).items():
            set_path(probe, path, value, where=f"sweep point {i} ({point_name(point)})")
    if mode == "vectorized":
        if "points" not in inspect.signature(sw.experiment.main).parameters:
            raise ConfigError(
                f"{sw.module_name} has no vectorized driver (its main takes no points); use "
                "--mode=sequential or --mode=commands."
            )
        studies.runs_from_config(config, sw.points)
    return config


def point_name(point: dict) -> str:
    return ",".join(f"{k}={_fmt(v)}" for k, v in point.items()) or "base"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple | list):
        return "+".join(map(str, v))
    return str(v)


def _cli_value(v: Any) -> str:
    if isinstance(v, tuple | list):
        return "(" + ",".join(repr(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def commands(sw: Sweep, workdir: str, config: ml_collections.ConfigDict | None = None) -> list[str]:
    """One shell command per point (the experiment's own ``--config.field=value`` flags)."""
    config = config if config is not None else base_config(sw)
    out = []
    for i, point in enumerate(sw.points):
        args = ["python", "-m", sw.module_name, f"--variant={sw.variant}"]
        for path, value in {**sw.overrides, **point_overrides(point, config)}.items():
            args.append(f"--config.{path}={_cli_value(value)}")
        args.append(f"--workdir={_point_dir(workdir, i)}")
        out.append(" ".join(shlex.quote(a) for a in args))
    return out


def _point_dir(workdir: str, i: int) -> str:
    return os.path.join(workdir, f"point{i:03d}")


def _write_manifest(sw: Sweep, workdir: str, mode: str) -> None:
    manifest = {
        "name": sw.name,
        "experiment": sw.module_name,
        "variant": sw.variant,
        "mode": mode,
        "metric": sw.metric,
        "description": sw.description,
        "overrides": sw.overrides,
        "points": sw.points,
    }
    with open(os.path.join(workdir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2, default=list)


# ---- running -----------------------------------------------------------------------------------


def run(sw: Sweep, mode: str, workdir: str) -> dict:
    """Validates, runs the sweep in ``mode`` and aggregates it (commands: writes them); returns
    the aggregated result (commands: ``{"commands": [...]}``)."""
    config = validate(sw, mode)
    os.makedirs(workdir, exist_ok=True)
    _write_manifest(sw, workdir, mode)
    if mode == "commands":
        cmds = commands(sw, workdir, config)
        with open(os.path.join(workdir, "commands.sh"), "w") as f:
            f.write("\n".join(cmds) + "\n")
        print("\n".join(cmds))
        print(
            f"# {len(cmds)} commands (also in {os.path.join(workdir, 'commands.sh')}). When they "
            f"have run: python -m experiments.sweep aggregate {shlex.quote(workdir)}"
        )
        return {"commands": cmds}
    if mode == "vectorized":
        vec_dir = os.path.join(workdir, "vectorized")
        summary = sw.experiment.main(config, vec_dir, points=sw.points)
        if "preempted_at" in summary:
            return summary
        groups = _vectorized_groups(config, sw.points, summary["runs"], vec_dir)
    else:
        groups = []
        for i, point in enumerate(sw.points):
            cfg = ml_collections.ConfigDict(config.to_dict())
            for path, value in point_overrides(point, config).items():
                set_path(cfg, path, value)
            summary = sw.experiment.main(cfg, _point_dir(workdir, i))
            if "preempted_at" in summary:
                return summary
            groups.extend(_point_groups(point, summary, _point_dir(workdir, i)))
    return aggregate(groups, sw.points, workdir, mode=mode, metric=sw.metric,
                     description=sw.description)  # fmt: skip


@dataclasses.dataclass
class Group:
    """The runs of one point × loss (they differ only in their seed).

    Attributes:
      loss: The loss.
      values: The swept fields' values at this point.
      rows: The per-run rows (each with ``seed`` and the metrics).
      metrics_dir: Workdir whose ``metrics.jsonl`` holds this group's curves.
      prefix: The group's tag prefix in that file (None: every tag is this group's).
    """

    loss: str
    values: dict[str, Any]
    rows: list[dict]
    metrics_dir: str | None = None
    prefix: str | None = None

    @property
    def label(self) -> str:
        fields = ",".join(f"{k}={_fmt(v)}" for k, v in self.values.items())
        return f"{self.loss} {fields}" if fields else self.loss


def _values(point: dict) -> dict[str, Any]:
    return {k: v for k, v in point.items() if k not in _SPECIAL}


def _add(groups: list[Group], loss: str, values: dict, row: dict, mdir, prefix) -> None:
    for g in groups:
        if g.loss == loss and g.values == values:
            g.rows.append(row)
            return
    groups.append(Group(loss, values, [row], mdir, prefix))


def _vectorized_groups(config, points, rows, vec_dir) -> list[Group]:
    """Rows of a vectorized study, grouped by point × loss (via the runs' group labels)."""
    where = {}
    for point in points:
        traced = {k: float(v) for k, v in point.items() if k not in _SPECIAL}
        for loss in point.get("losses", config.losses):
            where[studies.group_name(loss, traced)] = (loss, _values(point))
    groups: list[Group] = []
    for row in rows:
        loss, values = where[row["group"]]
        _add(groups, loss, values, dict(row), vec_dir, row["group"])
    return groups


def _rows_of(summary: dict) -> list[dict]:
    """Per-run rows of an experiment summary: the study's ``runs``, or the single run's final
    evaluation (image experiments)."""
    if "runs" in summary:
        return [dict(r) for r in summary["runs"]]
    config = summary.get("config", {})
    row = {"loss": config.get("loss", "run"), "seed": config.get("seed", 0)}
    row.update({k: v for k, v in summary.get("final", {}).items() if k != "step"})
    return [row]


def _point_groups(point: dict, summary: dict, point_dir: str) -> list[Group]:
    groups: list[Group] = []
    for row in _rows_of(summary):
        prefix = row["loss"] if "runs" in summary else None
        _add(groups, row["loss"], _values(point), row, point_dir, prefix)
    return groups


def aggregate_workdir(workdir: str) -> dict:
    """Aggregates a ``--mode=commands`` workdir once its commands have run (any subset).

    Reads ``sweep_manifest.json`` and every ``pointNNN/summary.json``; points without a summary
    are listed and skipped.

    Raises:
      ConfigError: no manifest, or no point has finished.
    """
    path = os.path.join(workdir, MANIFEST)
    if not os.path.exists(path):
        raise ConfigError(
            f"{workdir} has no {MANIFEST}; give the --workdir of a sweep run with "
            "--mode=commands (or sequential)."
        )
    with open(path) as f:
        manifest = json.load(f)
    points = manifest["points"]
    groups, missing = [], []
    for i, point in enumerate(points):
        summary_path = os.path.join(_point_dir(workdir, i), "summary.json")
        if not os.path.exists(summary_path):
            missing.append(i)
            continue
        with open(summary_path) as f:
            summary = json.load(f)
        groups.extend(_point_groups(point, summary, _point_dir(workdir, i)))
    if not groups:
        raise ConfigError(f"No point of {workdir} has a summary.json yet; run commands.sh first.")
    if missing:
        print(f"Not finished (skipped): points {missing}.")
    out = aggregate(groups, points, workdir, mode=manifest["mode"], metric=manifest["metric"],
                    description=manifest.get("description", ""))  # fmt: skip
    out["missing_points"] = missing
    return out


# ---- aggregating --------------------------------------------------------------------------------


def _mean_interval(values: Sequence[float]) -> tuple[float, float, float, float]:
    """Mean, standard error and the 95 % Student-t interval of the mean
    (:func:`lsgan_jax.stats.t_interval`; the point itself for a single run)."""
    v = [float(x) for x in values if x is not None]
    mean, ci = studies.mean_interval(v)
    if ci is None:
        return mean, 0.0, mean, mean
    return mean, float(np.std(v, ddof=1) / np.sqrt(len(v))), ci[0], ci[1]


def aggregate(
    groups: list[Group],
    points: Sequence[dict],
    workdir: str,
    *,
    mode: str,
    metric: str,
    description: str = "",
) -> dict:
    """Per-group statistics of ``metric`` (and the mixture metrics present): JSON, CSV, a plot,
    TensorBoard run directories; prints the table.

    Returns:
      ``{"mode", "metric", "fields", "table", "runs"}``; each table entry has ``group``, ``loss``,
      one key per swept field, ``num_runs``, ``metric`` (mean), ``se``, ``ci95_low``,
      ``ci95_high`` (95 % Student t), the other metrics' means (and ``success_rate``: the share of
      runs covering every mode, with its 95 % Wilson interval, when the runs report
      ``all_modes``).
    """
    fields = swept_fields(points)
    rows = [r for g in groups for r in g.rows]
    if rows and metric not in rows[0]:
        known = sorted(k for k, v in rows[0].items() if isinstance(v, int | float))
        close = difflib.get_close_matches(metric, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"The runs report no metric {metric!r}.{hint} Known: {known}.")
    others = [m for m in METRICS if m != metric and rows and m in rows[0]]
    table = []
    for g in groups:
        mean, se, lo, hi = _mean_interval([r[metric] for r in g.rows])
        entry = {"group": g.label, "loss": g.loss, **{f: g.values.get(f) for f in fields}}
        entry.update({"num_runs": len(g.rows), metric: mean, "se": se,
                      "ci95_low": lo, "ci95_high": hi})  # fmt: skip
        for m in others:
            entry[m] = _mean_interval([r[m] for r in g.rows])[0]
        if "all_modes" in g.rows[0]:
            k = sum(int(bool(r["all_modes"])) for r in g.rows)
            entry["success_rate"] = k / len(g.rows)
            entry["success_ci95_low"], entry["success_ci95_high"] = studies.rate_interval(
                k, len(g.rows)
            )
        table.append(entry)
    result = {
        "mode": mode,
        "metric": metric,
        "description": description,
        "fields": fields,
        "table": table,
        "runs": [{"group": g.label, **r} for g in groups for r in g.rows],
    }
    with open(os.path.join(workdir, "sweep.json"), "w") as f:
        json.dump(result, f, indent=2, default=str)
    columns = [k for k in table[0] if k != "group"]
    with open(os.path.join(workdir, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows({k: _csv(v) for k, v in e.items()} for e in table)
    _plot(table, metric, description, os.path.join(workdir, "sweep.png"))
    write_tensorboard(groups, os.path.join(workdir, "tb"))
    _print(table, metric)
    return result


def _csv(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return _fmt(v)
    return v


def _print(table: list[dict], metric: str) -> None:
    width = max(24, *(len(e["group"]) for e in table))
    print(f"{'group':<{width}} {'runs':>4} {metric:>14} {'95% interval':>17} {'success':>8}")
    for e in table:
        ci = f"[{e['ci95_low']:.3f}, {e['ci95_high']:.3f}]"
        print(
            f"{e['group']:<{width}} {e['num_runs']:>4} {e[metric]:>14.3f} {ci:>17} "
            f"{e.get('success_rate', float('nan')):>8.2f}"
        )


def _plot(table: list[dict], metric: str, description: str, path: str) -> None:
    from lsgan_jax import viz  # noqa: PLC0415

    losses = list(dict.fromkeys(e["loss"] for e in table))
    palette = ("tab:green", "tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown")
    colors = [palette[losses.index(e["loss"]) % len(palette)] for e in table]
    viz.interval_plot(
        [e["group"] for e in table],
        [e[metric] for e in table],
        [(e["ci95_low"], e["ci95_high"]) for e in table],
        path,
        xlabel=f"{metric} (mean over seeds, 95 % interval)",
        title=description or None,
        colors=colors,
    )


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", label).strip("_") or "run"


def write_tensorboard(groups: Sequence[Group], tb_dir: str) -> list[str]:
    """One TensorBoard run directory per group, ``tb_dir/<group label>/``, with the group's curves
    under shared tag names (``d_loss``, ``eval/modes_covered``, ...), so groups overlay.

    The curves come from each group's ``metrics.jsonl`` (in a vectorized study they are tagged
    ``<group>/<name>``; the prefix is dropped). Rewritten from scratch at every aggregation.
    """
    import shutil  # noqa: PLC0415

    from lsgan_jax.training.metrics_log import read_metrics, summary_writer_class  # noqa: PLC0415

    SummaryWriter = summary_writer_class()  # noqa: N806

    if os.path.isdir(tb_dir):
        shutil.rmtree(tb_dir)
    cache: dict[str, list[dict]] = {}
    out = []
    for g in groups:
        if not g.metrics_dir or not os.path.exists(os.path.join(g.metrics_dir, "metrics.jsonl")):
            continue
        if g.metrics_dir not in cache:
            cache[g.metrics_dir] = read_metrics(g.metrics_dir)
        run_dir = os.path.join(tb_dir, _safe(g.label))
        writer = SummaryWriter(run_dir)
        pre = f"{g.prefix}/" if g.prefix else ""
        for line in cache[g.metrics_dir]:
            for key, value in line.items():
                if key == "step" or value is None or not key.startswith(pre):
                    continue
                writer.add_scalar(key[len(pre) :], value, int(line["step"]))
        writer.close()
        out.append(run_dir)
    return out
