"""Command-line entry for experiment modules: `python -m experiments.NAME [--variant=V] [--config.x=v]`.

Every experiment module defines `get_config(variant)` (ml_collections `ConfigDict`), a tuple
`VARIANTS` and `main(config, workdir)`, and ends with `cli.run(__name__, ...)`. Optional
module-level constants feed `--help` and `python -m experiments`:

* `VARIANT_HELP = {variant: (one-line description, CPU runtime)}`;
* `FIELD_HELP = {"field.path": "one-line meaning"}` — meanings of config fields; fields without
  one fall back to the trailing comment on their line in `get_config` (or the line above), then
  to :data:`COMMON_FIELD_HELP`.

Overrides use ml_collections' config flags (typed: `--config.optim_g.lr=1e-3`,
`--config.losses="('lsgan',)"`). A misspelled field is an error that names the closest real field,
before anything runs.

Exit status: 0 on success, on `--help`, and on SIGTERM at any phase (the trainers save a
checkpoint first; before they start there is nothing to save); 2 for every user error (unknown
variant or field, a bad flag value, a :class:`~lsgan_jax.errors.ConfigError` from the
experiment).

Logging: absl's `--verbosity` (default 0 = INFO) is left to the user, so this library's own
INFO lines show. By default only two third-party loggers are raised to WARNING
(:data:`QUIET_LOGGERS`): `absl`, which orbax and grain log through (one INFO line per checkpoint
save), and `jax` (one INFO line per accelerator backend it could not open). Passing
`--verbosity=N`, `-v N` or `--logger_levels=absl:INFO` leaves every logger as absl sets it.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import io
import logging
import os
import re
import signal
import sys
import tokenize
import types
from collections.abc import Callable, Iterable

import ml_collections

from lsgan_jax.errors import ConfigError

__all__ = [
    "COMMON_FIELD_HELP",
    "QUIET_LOGGERS",
    "USAGE_ERROR",
    "check_overrides",
    "config_fields",
    "default_workdir",
    "exit_cleanly_on_sigterm",
    "field_help",
    "help_text",
    "overrides_of",
    "run",
]

#: Exit status of every user error (bad variant, field, flag value; ConfigError).
USAGE_ERROR = 2

#: Loggers raised to WARNING unless the user passes --verbosity/-v/--logger_levels: ``absl``
#: (orbax and grain log through it: an INFO line per checkpoint save) and ``jax`` (an INFO line
#: per accelerator backend it could not open, e.g. "Unable to initialize backend 'tpu'").
QUIET_LOGGERS = ("absl", "jax")

#: One-line meanings of config fields shared by several experiments, by path or by path suffix.
COMMON_FIELD_HELP: dict[str, str] = {
    "variant": "the named variant this config was made from (set by --variant)",
    "seed": "PRNG seed of the run (init, latents, data order)",
    "seeds": "number of seeds per loss (runs are vectorized together)",
    "loss": "GAN loss: lsgan, nsgan, minimax, wgan or hinge",
    "losses": "losses to compare, one group of runs each",
    "coding.a": "LS label of fakes in D's loss (a)",
    "coding.b": "LS label of reals in D's loss (b)",
    "coding.c": "LS target of fakes in G's loss (c); b-c=1, b-a=2 gives Pearson chi2",
    "data.name": "dataset name (`python -m lsgan_jax.data.prepare --list`)",
    "data.image_size": "training resolution S (images are S x S)",
    "data.split": "TFDS split to train on (e.g. train, train[:10%], train+test)",
    "data.data_dir": "TFDS data dir ('' = $TFDS_DATA_DIR or ~/tensorflow_datasets)",
    "model.g": "generator, by registry name",
    "model.d": "discriminator, by registry name",
    "model.g_kwargs": "keyword arguments of the generator",
    "model.d_kwargs": "keyword arguments of the discriminator",
    "model.conditional": "condition G and D on the class label",
    "model.output": "G's last non-linearity, tanh or sigmoid (sigmoid: conditional_g only)",
    "name": "optimizer: adam, rmsprop or sgd",
    "lr": "learning rate",
    "b1": "Adam beta1",
    "b2": "Adam beta2",
    "eps": "epsilon of the optimizer's denominator",
    "update_mode": "alternating (D step, then G step) or simultaneous (one joint step)",
    "n_d": "discriminator steps per generator step",
    "gp": "gradient penalty: '' (none) or 'dragan' (LSGAN-GP)",
    "gp_weight": "weight of the gradient penalty",
    "gp_scale": "scale of the DRAGAN perturbation",
    "batch_size": "global batch size (split over devices and hosts)",
    "num_steps": "training steps (generator updates)",
    "runner": "auto, single, data_parallel or pmap",
    "compute_dtype": "float32, or bfloat16 (bf16 compute, float32 params and losses)",
    "ema_decay": "decay of the generator's weight EMA (0: off)",
    "log_every": "steps between metric rows in metrics.jsonl / TensorBoard",
    "sample_every": "steps between sample grids",
    "num_samples": "images per sample grid",
    "sample_seed": "seed of the fixed latents of the sample grids",
    "evals": "in-loop evaluators by name: inception (FID/KID/IS), digits (classifier)",
    "eval_every": "steps between evaluations (0: only at the end)",
    "eval_seed": "seed of the evaluation samples",
    "num_eval_samples": "samples drawn per evaluation",
    "checkpoint_every": "steps between checkpoints (a rerun resumes from the latest)",
    "keep_checkpoints": "checkpoints kept in the workdir",
    "snapshot_steps": "steps at which G's samples are stored for the figures",
    "nan_policy": "stop: a non-finite run stops the study; mark: mark it diverged, keep going",
    "shard_runs": "shard the vectorized runs across devices",
    "fid.num_real": "real images of the FID reference statistics",
    "fid.split": "split of the real reference images",
    "fid.weights": "Inception weights: '' (cache or download), a path, or 'random' (tests)",
    "fid.batch_size": "images per Inception call",
    "fid.kid_real": "real images used for KID",
    "fid.kid_subset_size": "KID subset size",
    "fid.kid_subsets": "number of KID subsets",
    "fid.is_splits": "Inception Score splits",
    "fid.seed": "seed of the evaluation latents",
    "fid.cache_dir": "where real statistics and weights are cached ('' = default)",
    "compilation_cache": "directory of JAX's persistent compilation cache ('' = off)",
}

_HELP_FLAGS = ("--help", "-h", "--helpshort", "-?", "--helpfull")


# --------------------------------------------------------------------------------------------
# Config fields
# --------------------------------------------------------------------------------------------


def config_fields(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, object]:
    """``{"path.to.field": value}`` of every leaf (an empty sub-config counts as a leaf)."""
    out: dict[str, object] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict) and len(value):
            out.update(config_fields(value, path + "."))
        else:
            out[path] = value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value
    return out


def _all_paths(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    out = []
    for k, v in config.items():
        path = f"{prefix}{k}"
        out.append(path)
        if isinstance(v, ml_collections.ConfigDict):
            out.extend(_all_paths(v, path + "."))
    return out


def check_overrides(argv: list[str], config: ml_collections.ConfigDict) -> None:
    """Raises :class:`ConfigError` when a ``--config.FIELD`` in ``argv`` names no field of ``config``."""
    fields = set(_all_paths(config))
    for arg in argv:
        if not arg.startswith("--config."):
            continue
        path = arg[len("--config.") :].split("=", 1)[0]
        if path not in fields:
            close = difflib.get_close_matches(path, sorted(fields), n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"unknown config field {path!r}.{hint} `--help` lists the fields with their "
                "defaults."
            )


def overrides_of(
    config: ml_collections.ConfigDict, default: ml_collections.ConfigDict
) -> dict[str, object]:
    """The leaves of ``config`` whose value differs from ``default`` (sorted by path)."""
    have, base = config_fields(config), config_fields(default)
    return {k: have[k] for k in sorted(have) if k not in base or base[k] != have[k]}


def default_workdir(experiment: str, variant: str, overrides: dict[str, object]) -> str:
    """``workdirs/<experiment>/<variant>``, plus ``-<8 hex>`` of the overrides when there are any.

    The hash is of the resolved values (``sha256`` of ``path=repr(value)`` lines), so the same
    overrides however spelled share a workdir, and a run with other overrides never resumes
    from it.
    """
    name = variant
    if overrides:
        text = "\n".join(f"{k}={v!r}" for k, v in sorted(overrides.items()))
        name = f"{variant}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return os.path.join("workdirs", experiment, name)


# --------------------------------------------------------------------------------------------
# Help
# --------------------------------------------------------------------------------------------

_ASSIGN = re.compile(r"^\s*[A-Za-z_]\w*\.([A-Za-z_][\w.]*)\s*=(?!=)")
_KEY = re.compile(r"""^\s*["'](\w+)["']\s*:""")


def _is_comment(lines: list[str], row: int) -> bool:
    return 1 <= row <= len(lines) and lines[row - 1].strip().startswith("#")


def _source_comments(source: str) -> dict[str, str]:
    """Field path → comment, from ``c.path = …  # comment`` lines of a config function.

    Also keys of a dict literal assigned to ``c.path`` (``"key": …,  # comment`` → path.key),
    and a comment on its own line applies to the field on the next line.
    """
    out: dict[str, str] = {}
    lines = source.splitlines()
    comments: dict[int, str] = {}
    depth_at: dict[int, int] = {}
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            row = tok.start[0]
            depth_at.setdefault(row, depth)
            if tok.type == tokenize.COMMENT:
                comments[row] = tok.string.lstrip("#").strip()
            elif tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return out
    owner, pending = None, None
    base_depth = None
    seen: set[str] = set()
    for row, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("#"):  # a one-line comment directly above a dict key
            alone = not (_is_comment(lines, row - 1) or _is_comment(lines, row + 1))
            pending = comments.get(row) if alone else None
            continue
        path, in_dict = None, False
        m = _ASSIGN.match(line)
        if m and (base_depth is None or depth_at.get(row, 0) <= base_depth):
            path, owner, base_depth = m.group(1), m.group(1), depth_at.get(row, 0)
        elif owner is not None and (k := _KEY.match(line)):
            path, in_dict = f"{owner}.{k.group(1)}", True
        if path and path not in seen:  # only the first (the base config's) line of a field
            seen.add(path)
            comment = comments.get(row) or (pending if in_dict else None)
            if comment:
                out[path] = comment
        pending = None
    return out


def _help_sources(module: types.ModuleType) -> list[str]:
    """Source of the experiment module and of the `experiments.*` modules it builds on."""
    sources = []
    seen = set()
    mods = [module] + [m for n, m in sorted(sys.modules.items()) if n.startswith("experiments.")]
    for mod in mods:
        path = getattr(mod, "__file__", None)
        if not path or path in seen:
            continue
        seen.add(path)
        try:
            sources.append(inspect.getsource(mod))
        except (OSError, TypeError):
            continue
    return sources


def _lookup(path: str, table: dict[str, str]) -> str | None:
    parts = path.split(".")
    for i in range(len(parts)):
        hit = table.get(".".join(parts[i:]))
        if hit:
            return hit
    return None


def field_help(module: types.ModuleType, paths: Iterable[str]) -> dict[str, str]:
    """One-line meaning per field path: the module's ``FIELD_HELP``, then
    :data:`COMMON_FIELD_HELP` (both matched by full path or by a suffix: ``part2.mixture.coding.a``
    finds ``coding.a``), then the comment on the field's line in the config function.
    """
    own = dict(getattr(module, "FIELD_HELP", {}) or {})
    comments: dict[str, str] = {}
    for src in _help_sources(module):
        for k, v in _source_comments(src).items():
            comments.setdefault(k, v)
    out = {}
    for path in paths:
        text = _lookup(path, own) or _lookup(path, COMMON_FIELD_HELP)
        if text is None:
            text = comments.get(path) or ""
        out[path] = text
    return out


def _fmt(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(doc: str | None) -> str:
    for line in (doc or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def help_text(
    module: types.ModuleType,
    experiment: str,
    variant: str,
    variants: tuple[str, ...],
    config: ml_collections.ConfigDict,
) -> str:
    """The ``--help`` page: what the experiment is, its variants, its config fields."""
    lines = [
        f"usage: python -m experiments.{experiment} [--variant=NAME] [--workdir=DIR] "
        "[--config.FIELD=VALUE ...]",
        "",
        _first_line(module.__doc__),
        "",
        f"Variants (--variant; default {variants[0]!r}):",
    ]
    vhelp = getattr(module, "VARIANT_HELP", {}) or {}
    width = max(len(v) for v in variants)
    for v in variants:
        desc, runtime = vhelp.get(v, ("", ""))
        tail = f"  [{runtime}]" if runtime else ""
        lines.append(f"  {v:<{width}}  {desc}{tail}".rstrip())
    fields = config_fields(config)
    meanings = field_help(module, fields)
    lines += ["", f"Config fields (--config.FIELD=VALUE; defaults of --variant={variant}):"]
    fw = max(len(p) for p in fields)
    vw = min(40, max(len(_fmt(v)) for v in fields.values()))
    for path, value in fields.items():
        lines.append(f"  {path:<{fw}}  {_fmt(value):<{vw}}  {meanings[path]}".rstrip())
    lines += [
        "",
        "Flags:",
        "  --variant=NAME           a named variant (above)",
        f"  --workdir=DIR            outputs and checkpoints (default workdirs/{experiment}/"
        "<variant>[-<hash of the overrides>]); rerunning resumes",
        "  --distributed            call jax.distributed.initialize() first (multi-host)",
        "  --coordinator_address, --num_processes, --process_id   explicit multi-host setup",
        "  --verbosity=N            absl log level (orbax's and jax's INFO lines are hidden unless given)",
        "  --helpfull               also list absl's own flags",
        "",
        "Overrides are typed: --config.num_steps=100 --config.losses=\"('lsgan',)\". "
        "`python -m experiments` lists every experiment.",
    ]
    return "\n".join(lines)


def _absl_flags_help(flags_module: types.ModuleType) -> str:
    """absl's own flags (logging etc.), without the config flags' YAML dump."""
    fl = flags_module.FLAGS
    out = ["", "absl flags:"]
    for module_name, flag_list in sorted(fl.flags_by_module_dict().items()):
        for flag in sorted(flag_list, key=lambda f: f.name):
            if flag.name == "config" or flag.name.startswith("config."):
                continue
            text = " ".join(str(flag.help).split()).rstrip(".")
            out.append(f"  --{flag.name}  ({module_name}) {text} (default {flag.default!r})")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Process behaviour: SIGTERM, user errors, logging
# --------------------------------------------------------------------------------------------


def _sigterm_exit(signum: int, frame: object) -> None:
    del signum, frame
    print("SIGTERM outside the training loop: exiting (nothing to save).", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    # Not `raise SystemExit`: a signal handler can run inside a callback that swallows
    # exceptions (JAX's gc callback during imports does), and the run would carry on.
    os._exit(0)


def exit_cleanly_on_sigterm() -> None:
    """Makes SIGTERM exit with status 0 until a trainer installs its own (saving) handler.

    A preemptible job killed while it imports, compiles or builds its data has nothing to save;
    exiting 0 tells the scheduler that a rerun will resume. The trainers' ``PreemptionGuard``
    replaces this handler while training (save, then exit 0) and restores it afterwards; a
    SIGTERM while the figures are drawn after training also exits 0 at once (the checkpoint is
    complete; rerunning the command redraws them).
    """
    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None, _sigterm_exit):
            signal.signal(signal.SIGTERM, _sigterm_exit)
    except ValueError:  # not the main thread
        pass


def _usage_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def _prescan(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _user_set_logging(argv: list[str]) -> bool:
    for arg in argv[1:]:
        name = arg.lstrip("-").split("=", 1)[0]
        if arg.startswith("-") and name in ("verbosity", "v", "logger_levels"):
            return True
    return False


def run(
    module_name: str,
    get_config: Callable[[str], ml_collections.ConfigDict],
    main: Callable[[ml_collections.ConfigDict, str], object],
    variants: tuple[str, ...],
) -> None:
    """Parses flags and calls ``main(config, workdir)`` (only when ``module_name == "__main__"``)."""
    if module_name != "__main__":
        return
    exit_cleanly_on_sigterm()
    from absl import app, flags  # noqa: PLC0415
    from ml_collections import config_flags  # noqa: PLC0415

    module = sys.modules["__main__"]
    argv = list(sys.argv)
    experiment = os.path.splitext(os.path.basename(getattr(module, "__file__", None) or "exp"))[0]
    variant = _prescan(argv, "variant") or variants[0]
    if variant not in variants:
        close = difflib.get_close_matches(variant, variants, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        _usage_error(f"unknown variant {variant!r}.{hint} Choose one of {', '.join(variants)}.")
    config = get_config(variant)
    wants_help = [a for a in argv[1:] if a in _HELP_FLAGS]
    try:
        check_overrides(argv, config)
    except ConfigError as err:
        _usage_error(str(err))
    if wants_help:
        print(help_text(module, experiment, variant, variants, config))
        if "--helpfull" in wants_help:
            print(_absl_flags_help(flags))
        raise SystemExit(0)

    default = get_config(variant)
    config_flags.DEFINE_config_dict("config", config, "Experiment config.", lock_config=True)
    flags.DEFINE_enum("variant", variants[0], list(variants), "Named config variant.")
    flags.DEFINE_string(
        "workdir", None, "Output directory (default: workdirs/<experiment>/<variant>[-<hash>])."
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

    def _parse(args: list[str]) -> list[str]:
        try:
            rest = flags.FLAGS(args)
        except flags.Error as err:
            _usage_error(f"{err}. `--help` lists the flags and config fields.")
        if len(rest) > 1:
            _usage_error(f"unexpected arguments {rest[1:]}; flags look like --name=value.")
        return rest

    def _main(_argv: list[str]) -> None:
        if not _user_set_logging(argv):
            for name in QUIET_LOGGERS:  # orbax: an INFO line per save; jax: absent backends
                logging.getLogger(name).setLevel(logging.WARNING)
        fl = flags.FLAGS
        if fl.distributed or fl.coordinator_address:
            import jax  # noqa: PLC0415

            jax.distributed.initialize(
                coordinator_address=fl.coordinator_address,
                num_processes=fl.num_processes,
                process_id=fl.process_id,
            )
        workdir = fl.workdir
        if not workdir:
            changed = {k: v for k, v in overrides_of(fl.config, default).items() if k != "variant"}
            workdir = default_workdir(experiment, variant, changed)
            if changed:
                shown = ", ".join(f"{k}={_fmt(v)}" for k, v in changed.items())
                print(f"workdir: {workdir} (overrides: {shown})", flush=True)
            else:
                print(f"workdir: {workdir}", flush=True)
        try:
            main(fl.config, workdir)
        except ConfigError as err:
            _usage_error(str(err))

    app.run(_main, flags_parser=_parse)
