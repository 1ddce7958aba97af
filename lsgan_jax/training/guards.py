"""Run guards: the workdir side of a training run, opened once and torn down once.

* `PreemptionGuard` turns SIGTERM (TPU preemption) into a flag the loop polls at step
  boundaries; the trainer then saves a checkpoint and returns `{"preempted_at": step}`.
* `open_run(stack, workdir, config, resumable=...)` takes the workdir lock (one process per
  workdir), moves an old run aside when `config.resume` is False (never deletes it), checks
  that the stored config of an existing run differs from this one only in resumable fields, and
  returns the stored summary when the run had already finished. It writes nothing else, so a
  refused restart leaves the workdir as it was, and it runs before the (costly) build.
* `record_config` / `check_resume`: the resolved config is stored as `<workdir>/config.json`
  when a run starts; a restart's config is compared with it field by field, and any change
  outside the documented resumable fields is refused before anything is written.
* `OpenRun.restore(state, ...)`, after the build: records the resolved config, restores the
  newest usable checkpoint, opens the metric writer (cut back to the restored step) and the
  progress bar. (The SIGTERM guard is on from `open_run`: a SIGTERM during the build is seen at
  the first step boundary.)
* Everything both open is registered on the trainer's `contextlib.ExitStack`, so it is closed
  exactly once on every exit path (return, SIGTERM, NaN stop, an evaluator's exception).
* `finite_runs` / `nonfinite_error`: per-run finiteness of a vectorized state (so a run that
  diverges is stopped or marked before a save), and the NaN stop message naming the step and
  the last finite checkpoint. (`Checkpointer.save` itself refuses any non-finite state.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lsgan_jax.errors import ConfigError, NonFiniteError
from lsgan_jax.training import workdir as workdir_lib
from lsgan_jax.training.checkpoint import Checkpointer
from lsgan_jax.training.metrics_log import MetricWriter
from lsgan_jax.training.progress import progress

SUMMARY = "summary.json"
CONFIG_FILE = "config.json"

#: Fields that never take part in the resume check: ``resume`` selects the mode itself.
ALWAYS_RESUMABLE = frozenset({"resume"})

#: The two ways past a refused restart; every such message ends with them.
_WAYS_FORWARD = (
    "Use another --workdir, or pass --config.resume=False to start fresh "
    "(the old run is moved aside to a sibling folder, not deleted)."
)


class PreemptionGuard:
    """Turns SIGTERM into a flag the loop polls at step boundaries (then it saves and exits)."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        def handler(signum, frame):
            del signum, frame
            self.requested = True

        try:
            self._old = signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread (e.g. inside a notebook worker)
            self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


# --------------------------------------------------------------------------------------------
# Config record and resume check
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """ConfigDict / mappings / tuples → JSON-ready dicts and lists."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item") and callable(value.item):  # NumPy / JAX scalars
        return value.item()
    return str(value)


def _json_config(config: Any) -> dict[str, Any]:
    # The JSON round trip makes the live config compare equal to a stored one (tuples → lists).
    return json.loads(json.dumps(_plain(config)))


def record_config(workdir: str, config: Any) -> None:
    """Writes the resolved config to ``<workdir>/config.json`` (atomically; tuples as lists)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CONFIG_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_json_config(config), f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts → ``{"dotted.path": leaf}`` (an empty dict is a leaf)."""
    if isinstance(tree, dict) and tree:
        return {p: v for k, sub in tree.items() for p, v in _flatten(sub, f"{prefix}{k}.").items()}
    return {prefix[:-1]: tree}


def _covered(field: str, resumable: frozenset[str]) -> bool:
    return any(field == r or field.startswith(r + ".") for r in resumable)


_ABSENT = object()


def _same(a: Any, b: Any) -> bool:
    """Equality of JSON values where NaN equals NaN (a stored NaN is not a change)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return (a == b and type(a) is type(b)) or (_is_number(a) and _is_number(b) and a == b)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value)


def check_resume(
    workdir: str,
    config: Any,
    *,
    resumable: frozenset[str],
    restored_step: int | None,
) -> None:
    """Refuses to resume a run in `workdir` with a config that changes what is being trained.

    The stored ``<workdir>/config.json`` and `config` are flattened to dotted paths
    (``optim_d.lr``, ``coding.b``, ...) and compared after a JSON round trip (tuples and lists
    compare equal). A field may differ when it is in `resumable` or under a prefix in it
    (``"fid"`` covers ``fid.num_samples`` and every other ``fid.*`` field), or when it is in
    :data:`ALWAYS_RESUMABLE`. ``num_steps`` may change (usually grow) as long as it does not drop
    below the restored checkpoint's step. Nothing is written by this function.

    Args:
      workdir: the run's directory.
      config: the new resolved config (an ``ml_collections.ConfigDict`` or a mapping).
      resumable: dotted field names (or prefixes) allowed to change on resume, e.g. cadences.
      restored_step: the step of the checkpoint that will be restored, or None for none.

    Raises:
      ConfigError: one short message naming each changed field (old → new) and the two ways
        forward: another ``--workdir``, or ``--config.resume=False``.
    """
    new = _flatten(_json_config(config))
    problems = []
    num_steps = new.get("num_steps")
    if restored_step is not None and isinstance(num_steps, int) and num_steps < restored_step:
        problems.append(
            f"num_steps={num_steps} is below the checkpoint's step {restored_step} "
            "(training cannot be undone)"
        )
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = _flatten(json.load(f))
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"{path} cannot be read ({e}), so the stored run's config is unknown. "
                + _WAYS_FORWARD
            ) from None
        allowed = frozenset(resumable) | ALWAYS_RESUMABLE | {"num_steps"}
        for field in sorted(set(old) | set(new)):
            a, b = old.get(field, _ABSENT), new.get(field, _ABSENT)
            if not _same(a, b) and not _covered(field, allowed):
                problems.append(f"{field}: {_show(a)} → {_show(b)}")
    if problems:
        shown = problems[:8] + ([f"and {len(problems) - 8} more"] if len(problems) > 8 else [])
        raise ConfigError(
            f"Cannot resume the run in {workdir} with a different config: {'; '.join(shown)}. "
            + _WAYS_FORWARD
        )


# --------------------------------------------------------------------------------------------
# Open and restore
# --------------------------------------------------------------------------------------------


def write_json(path: str, obj: Any, *, indent: int | None = 2) -> None:
    """Writes `obj` as JSON atomically (a temporary file, then `os.replace`)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=indent, default=str)
    os.replace(tmp, path)


@dataclasses.dataclass
class OpenRun:
    """A workdir opened by `open_run`: locked and checked, nothing written yet.

    `finished` is the stored summary when the run had already ended (the trainer returns it and
    writes nothing). Otherwise the trainer builds its state and calls `restore`, which fills in
    `ckpt`, `writer` and `bar`.
    """

    stack: contextlib.ExitStack
    workdir: str
    config: ml_collections.ConfigDict
    finished: dict | None = None
    ckpt: Checkpointer | None = None
    writer: MetricWriter | None = None
    bar: Any = None
    preemption: PreemptionGuard | None = None

    def restore(
        self,
        state: Any,
        *,
        meta: dict,
        desc: str,
        data_iter: Any = None,
        step_of: Callable[[Any], Any] | None = None,
    ) -> tuple[Any, dict, int]:
        """Records the config, restores the newest usable checkpoint, opens the writers.

        Args:
          state: the freshly built state (its structure and shardings are restored into).
          meta: the checkpoint metadata of a fresh run; the config is stored in it too.
          desc: the progress bar's label.
          data_iter: a grain iterator whose position is checkpointed with the state.
          step_of: `state -> step array` (default `state.step`).

        Returns:
          `(state, meta, start_step)`.
        """
        config, workdir, main = self.config, self.workdir, jax.process_index() == 0
        if main:
            record_config(workdir, config)
        if self.ckpt is None:
            self.ckpt = self.stack.enter_context(contextlib.closing(_checkpointer(workdir, config)))
        restored = self.ckpt.restore_latest(state, data_iter=data_iter)
        if restored is not None:
            state, meta, step = restored
            print(f"Resumed from the checkpoint at step {step} in {workdir}.")
        meta = {**meta, "config": config.to_dict()}  # each checkpoint records the config it ran
        start = int(jax.device_get(state.step if step_of is None else step_of(state)))
        if main:
            self.writer = self.stack.enter_context(
                contextlib.closing(
                    MetricWriter(workdir, resume_step=start)
                )  # drops unrestored rows
            )
            if start == 0:
                self.writer.write_hparams(config.to_dict())
        self.bar = self.stack.enter_context(
            contextlib.closing(progress(config.num_steps, initial=start, desc=desc))
        )
        return state, meta, start


def _ckdir(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


def _checkpointer(workdir: str, config: ml_collections.ConfigDict) -> Checkpointer:
    return Checkpointer(_ckdir(workdir), max_to_keep=config.get("keep_checkpoints", 2))


def open_run(
    stack: contextlib.ExitStack,
    workdir: str,
    config: ml_collections.ConfigDict,
    *,
    resumable: frozenset[str],
) -> OpenRun:
    """Locks and checks the workdir of a run (see the module docstring); writes nothing else.

    Args:
      stack: the trainer's ExitStack; everything opened here and in `OpenRun.restore` is
        closed when it unwinds.
      workdir: the run directory (checked with `workdir.check_workdir_writable` by the caller).
      config: the resolved config; compared with the stored run's and recorded on `restore`.
      resumable: config fields that may differ from the stored config on resume.

    Raises:
      ConfigError: another process holds the workdir, or the stored config differs in a field
        that is not resumable (nothing in the workdir is changed).
    """
    run = OpenRun(stack, workdir, config)
    run.preemption = stack.enter_context(PreemptionGuard())  # SIGTERM from here on: save, exit 0
    if jax.process_index() == 0:
        stack.enter_context(workdir_lib.WorkdirLock(workdir))
        if not config.get("resume", True) and (moved := workdir_lib.move_aside(workdir)):
            print(f"--config.resume=False: moved the earlier run in {workdir} to {moved}.")
    if os.path.isdir(_ckdir(workdir)):  # (a manager on a missing directory would create it)
        run.ckpt = stack.enter_context(contextlib.closing(_checkpointer(workdir, config)))
    latest = run.ckpt.latest_step() if run.ckpt else None
    check_resume(workdir, config, resumable=resumable, restored_step=latest)
    summary_path = os.path.join(workdir, SUMMARY)
    if latest is not None and latest == config.num_steps and os.path.exists(summary_path):
        print(f"The run in {workdir} has finished (step {latest}); returning its summary.")
        with open(summary_path) as f:
            run.finished = json.load(f)
    return run


def preempted(run: OpenRun, step: int) -> dict:
    """After the SIGTERM checkpoint at `step`: waits for it, says so, and returns the marker."""
    run.ckpt.wait()
    print(f"SIGTERM: saved a checkpoint at step {step}; rerun the same command to resume.")
    return {"preempted_at": step}


# --------------------------------------------------------------------------------------------
# Finiteness
# --------------------------------------------------------------------------------------------


@jax.jit
def _finite_runs(leaves):
    per_leaf = [jnp.all(jnp.isfinite(x).reshape(x.shape[0], -1), axis=1) for x in leaves]
    return jnp.all(jnp.stack(per_leaf), axis=0)


def finite_runs(tree: Any) -> np.ndarray:
    """(R,) bools: whether run r of a run-stacked `tree` holds only finite floats."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return np.asarray(jax.device_get(_finite_runs(leaves)))


def nonfinite_error(what: str, step: int, ckpt: Checkpointer, advice: str) -> NonFiniteError:
    """The NaN stop: one message naming the step and the last finite checkpoint.

    Waits for pending saves first, so the checkpoint it names is on disk (`Checkpointer.save`
    refuses a non-finite state, so the newest checkpoint is the last finite one).
    """
    ckpt.wait()
    last = ckpt.latest_step()
    kept = (
        f"The last finite checkpoint is step {last} in {ckpt.directory}."
        if last is not None
        else "No checkpoint was saved before it."
    )
    return NonFiniteError(f"Non-finite {what} at step {step}. {kept} {advice}")


__all__ = [
    "ALWAYS_RESUMABLE",
    "CONFIG_FILE",
    "OpenRun",
    "PreemptionGuard",
    "check_resume",
    "finite_runs",
    "nonfinite_error",
    "open_run",
    "preempted",
    "record_config",
    "write_json",
]
