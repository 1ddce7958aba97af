"""Checkpoints with orbax: save every K steps, resume from the latest good one by default.

A checkpoint holds three items: `state` (the `TrainState` pytree, possibly stacked over runs),
`meta` (JSON: the config and anything the loop needs to continue, e.g. the metric history) and,
for image pipelines, `data` (the grain iterator position). `restore_latest` walks back from the
newest step: a corrupt or partial checkpoint is skipped with a warning and the previous one used.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No usable checkpoint could be restored from a directory that has some."""


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
    """Thin wrapper over `orbax.checkpoint.CheckpointManager` for the training loop.

    Args:
      directory: where checkpoints live (`workdir/checkpoints`).
      max_to_keep: how many of the newest checkpoints to keep.
      async_save: save in a background thread (the loop waits before exiting).
    """

    def __init__(self, directory: str, *, max_to_keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save
        )
        self._mgr = ocp.CheckpointManager(self.directory, options=options)

    def all_steps(self) -> list[int]:
        return sorted(self._mgr.all_steps())

    def latest_step(self) -> int | None:
        return self._mgr.latest_step()

    def save(self, step: int, state: Any, meta: dict, *, data_iter: Any = None) -> None:
        """Saves `state`, `meta` (JSON-serialisable) and optionally a grain iterator at `step`."""
        items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
        if data_iter is not None:
            import grain  # noqa: PLC0415  (only image pipelines need it)

            items["data"] = grain.checkpoint.CheckpointSave(data_iter)
        self._mgr.save(int(step), args=ocp.args.Composite(**items), force=True)

    def restore(self, step: int, like_state: Any, *, data_iter: Any = None) -> tuple[Any, dict]:
        """Restores checkpoint `step` into the structure (and shardings) of `like_state`."""
        items = {
            "state": ocp.args.StandardRestore(_abstract(like_state)),
            "meta": ocp.args.JsonRestore(),
        }
        if data_iter is not None:
            import grain  # noqa: PLC0415

            items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
        out = self._mgr.restore(int(step), args=ocp.args.Composite(**items))
        return out["state"], dict(out["meta"])

    def restore_latest(
        self, like_state: Any, *, data_iter: Any = None
    ) -> tuple[Any, dict, int] | None:
        """Restores the newest checkpoint that loads; `None` when the directory has none.

        Raises:
          CheckpointError: checkpoints exist but none of them can be restored.
        """
        steps = self.all_steps()
        errors = []
        for step in reversed(steps):
            try:
                state, meta = self.restore(step, like_state, data_iter=data_iter)
                if errors:
                    log.warning("Resumed from step %d after skipping unusable checkpoints.", step)
                return state, meta, step
            except Exception as e:  # noqa: BLE001  (any failure means: try the previous one)
                msg = f"checkpoint at step {step} in {self.directory} could not be restored: {e!r}"
                log.warning("Skipping %s", msg)
                errors.append(msg)
        if errors:
            raise CheckpointError(
                "No checkpoint could be restored:\n  "
                + "\n  ".join(errors)
                + "\nDelete the broken checkpoints (or pass a fresh --workdir) to start over."
            )
        return None

    def wait(self) -> None:
        self._mgr.wait_until_finished()

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()
