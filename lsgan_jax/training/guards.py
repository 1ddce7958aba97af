"""Run guards: the workdir side of a training run, opened once and torn down once.

* `PreemptionGuard` turns SIGTERM (TPU preemption) into a flag the loop polls at step
  boundaries; the trainer then saves a checkpoint and returns `{"preempted_at": step}`.
* `open_run(stack, workdir, config, resumable=...)` takes the workdir lock (one process per
  workdir), moves an old run aside when `config.resume` is False (never deletes it), checks
  that the stored config of an existing run differs from this one only in resumable fields, and
  returns the stored summary when the run had already finished. It writes nothing else, so a
  refused restart leaves the workdir as it was, and it runs before the (costly) build.
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
import os
import signal
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lsgan_jax.errors import NonFiniteError
from lsgan_jax.training import workdir as workdir_lib
from lsgan_jax.training.checkpoint import Checkpointer
from lsgan_jax.training.metrics_log import MetricWriter
from lsgan_jax.training.progress import progress

SUMMARY = "summary.json"


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
# Workdir
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
            workdir_lib.record_config(workdir, config)
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
    workdir_lib.check_resume(workdir, config, resumable=resumable, restored_step=latest)
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
    "OpenRun",
    "PreemptionGuard",
    "finite_runs",
    "nonfinite_error",
    "open_run",
    "preempted",
    "write_json",
]
