"""Command-line entry for experiment modules: `python -m experiments.NAME [--variant=V] [--config.x=v]`.

Every experiment module defines `get_config(variant)` (ml_collections `ConfigDict`), a tuple
`VARIANTS` and `main(config, workdir)`, and ends with `cli.run(__name__, ...)`. Overrides use
ml_collections' config flags (typed: `--config.optim_g.lr=1e-3`, `--config.losses="('lsgan',)"`).
A misspelled field is an error that names the closest real field, before anything runs.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable

import ml_collections

from lsgan_jax.errors import ConfigError


def _flatten(cfg: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    out = []
    for k, v in cfg.items():
        path = f"{prefix}{k}"
        out.append(path)
        if isinstance(v, ml_collections.ConfigDict):
            out.extend(_flatten(v, path + "."))
    return out


def check_overrides(argv: list[str], config: ml_collections.ConfigDict) -> None:
    """Raises SystemExit with a clear message when `--config.FIELD` names no field of `config`."""
    fields = set(_flatten(config))
    for arg in argv:
        if not arg.startswith("--config."):
            continue
        path = arg[len("--config.") :].split("=", 1)[0]
        if path not in fields:
            close = difflib.get_close_matches(path, sorted(fields), n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise SystemExit(
                f"error: unknown config field {path!r}.{hint}\n"
                f"Valid fields: {', '.join(sorted(fields))}"
            )


def _prescan(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def run(
    module_name: str,
    get_config: Callable[[str], ml_collections.ConfigDict],
    main: Callable[[ml_collections.ConfigDict, str], object],
    variants: tuple[str, ...],
) -> None:
    """Parses flags and calls `main(config, workdir)` (only when `module_name == "__main__"`)."""
    if module_name != "__main__":
        return
    from absl import app, flags  # noqa: PLC0415
    from ml_collections import config_flags  # noqa: PLC0415

    experiment = os.path.splitext(os.path.basename(sys.modules["__main__"].__file__ or "exp"))[0]
    variant = _prescan(sys.argv, "variant") or variants[0]
    if variant not in variants:
        close = difflib.get_close_matches(variant, variants, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SystemExit(f"error: unknown variant {variant!r}.{hint} Choose one of {variants}.")
    config = get_config(variant)
    check_overrides(sys.argv, config)
    config_flags.DEFINE_config_dict("config", config, "Experiment config.", lock_config=True)
    flags.DEFINE_enum("variant", variants[0], list(variants), "Named config variant.")
    flags.DEFINE_string(
        "workdir", None, "Output directory (default: workdirs/<experiment>/<variant>)."
    )
    flags.DEFINE_bool(
        "distributed",
        False,
        "Call jax.distributed.initialize() first (multi-host; on Cloud TPU/Slurm/Kubernetes it "
        "needs no other flag).",
    )
    flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host).")
    flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
    flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")

    def _main(argv):
        from absl import logging as absl_logging  # noqa: PLC0415

        if not any(a.startswith(("--verbosity", "-v")) for a in sys.argv[1:]):
            absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        fl = flags.FLAGS
        if fl.distributed or fl.coordinator_address:
            import jax  # noqa: PLC0415

            jax.distributed.initialize(
                coordinator_address=fl.coordinator_address,
                num_processes=fl.num_processes,
                process_id=fl.process_id,
            )
        workdir = flags.FLAGS.workdir or os.path.join("workdirs", experiment, variant)
        try:
            main(flags.FLAGS.config, workdir)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    app.run(_main)
