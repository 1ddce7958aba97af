"""Run a sweep of `experiments/sweeps/NAME.py`, or aggregate the workdir of one.

    python -m experiments.sweep --list
    python -m experiments.sweep codings_lr --mode=vectorized
    python -m experiments.sweep codings_lr --mode=sequential --workdir=/tmp/sw
    python -m experiments.sweep welfert_ring --config.seeds=20 --config.num_steps=39100
    python -m experiments.sweep codings_lr --mode=commands --workdir=/tmp/sw   # then run them
    python -m experiments.sweep aggregate /tmp/sw

`--config.field=value` sets a field of the sweep's experiment config for every point (the same
syntax and typing as `python -m experiments.NAME`); every override and point is checked, with
the closest field name for a typo, before anything runs or is printed. Outputs (default workdir
`workdirs/sweeps/NAME/MODE`): `sweep.json`, `sweep.csv`, `sweep.png`, `tb/<group>/` and each
mode's run directories; see `lsgan_jax.sweep`.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import pkgutil
import sys

from lsgan_jax import sweep as sweep_lib
from lsgan_jax.errors import ConfigError

CONFIG_PREFIX = "--config."


def available() -> list[str]:
    """Names of the sweep files in `experiments/sweeps/`."""
    from experiments import sweeps  # noqa: PLC0415

    return sorted(
        m.name for m in pkgutil.iter_modules(sweeps.__path__) if not m.name.startswith("_")
    )


def load_sweep(name: str) -> sweep_lib.Sweep:
    """`experiments.sweeps.NAME.get_sweep()`; an unknown name is a ConfigError (did-you-mean)."""
    names = available()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"No sweep named {name!r}.{hint} Available: {names}.")
    sw = importlib.import_module(f"experiments.sweeps.{name}").get_sweep()
    sw.name = sw.name or name
    return sw


def split_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Separates `--config.PATH=VALUE` flags (returned as (path, text)) from the other args."""
    rest, overrides = [], []
    for arg in argv:
        if arg.startswith(CONFIG_PREFIX):
            path, eq, text = arg[len(CONFIG_PREFIX) :].partition("=")
            if not eq:
                raise ConfigError(f"{arg}: write --config.{path}=VALUE.")
            overrides.append((path, text))
        else:
            rest.append(arg)
    return rest, overrides


def main(argv: list[str] | None = None) -> dict | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m experiments.sweep",
        description="Run a sweep of experiments/sweeps/NAME.py (or: aggregate WORKDIR).",
    )
    parser.add_argument("name", nargs="?", help="sweep name, or 'aggregate'")
    parser.add_argument("target", nargs="?", help="with 'aggregate': the sweep's workdir")
    parser.add_argument("--mode", default="vectorized", help=f"one of {sweep_lib.MODES}")
    parser.add_argument("--workdir", default=None, help="default: workdirs/sweeps/NAME/MODE")
    parser.add_argument("--list", action="store_true", help="list the sweeps and exit")
    try:
        rest, raw = split_overrides(argv)
        args = parser.parse_args(rest)
        if args.list or not args.name:
            for name in available():
                sw = load_sweep(name)
                print(f"{name:<16} {sw.module_name} --variant={sw.variant}: {sw.description}")
            return None
        if args.name == "aggregate":
            workdir = args.target or args.workdir
            if not workdir or raw:
                raise ConfigError("usage: python -m experiments.sweep aggregate WORKDIR")
            return sweep_lib.aggregate_workdir(workdir)
        if args.target:
            raise ConfigError(f"Unexpected argument {args.target!r}.")
        sw = load_sweep(args.name)
        config = sweep_lib.base_config(sw)
        for path, text in raw:
            sw.overrides[path] = sweep_lib.parse_value(config, path, text)
        workdir = args.workdir or os.path.join("workdirs", "sweeps", args.name, args.mode)
        return sweep_lib.run(sw, args.mode, workdir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from e


if __name__ == "__main__":
    main()
