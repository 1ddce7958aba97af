"""Checkpoints with orbax: save every K steps, resume from the newest *usable* one by default.

A checkpoint step holds up to four orbax items:

- ``state``: the `TrainState` pytree (possibly stacked over runs), saved with
  ``StandardSave`` (OCDBT/zarr array files);
- ``meta``: JSON the loop needs to continue (the resolved config, the metric history, ...);
- ``checksums``: JSON with a CRC-32 of every array leaf of ``state`` (its raw bytes), written by
  :meth:`Checkpointer.save` and verified by :meth:`Checkpointer.restore`;
- ``data`` (image pipelines only): the grain iterator position.

The chain always recovers. :meth:`Checkpointer.restore_latest` walks back from the newest step; a
step that cannot be read (truncated or deleted files, a corrupt array file, a checksum that does
not match the restored bytes) is **moved aside** -- renamed to
``<directory>_unusable/<step>-<reason>``, never deleted -- with a warning, and the orbax manager is
reloaded, so the previous good step is used and the next save at the broken step succeeds. When
every step is unusable the run starts from scratch, again with a warning naming where the steps
went. A checkpoint whose *structure* differs from the state the trainer built (another model width,
another number of runs) is not corrupt: that is a config change, and it raises
:class:`~lsgan_jax.errors.ConfigError` without touching anything.

Saving never writes a non-finite state: :meth:`Checkpointer.save` checks every floating leaf first
and raises :class:`~lsgan_jax.errors.NonFiniteError` naming the step and the last finite checkpoint.

Save directories that orbax left unfinished (a process killed mid-save leaves a
``<step>.orbax-checkpoint-tmp-*`` folder) are never listed as steps; the next `Checkpointer` on
the directory removes them (they never became checkpoints), so a rerun saves that step normally.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import zlib
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from lsgan_jax.errors import ConfigError, NonFiniteError

log = logging.getLogger(__name__)

CHECKSUM_ALGORITHM = "crc32"
#: Orbax writes a save to ``<step>.orbax-checkpoint-tmp-<time>`` and renames it when complete.
TMP_SAVE_MARKER = ".orbax-checkpoint-tmp"


@contextlib.contextmanager
def _orbax_logs_quiet():
    """Silences orbax's own log records (it logs a traceback for an unreadable array file before
    raising) while a step is read; the exception still propagates to the caller."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class CheckpointError(RuntimeError):
    """A checkpoint step exists but cannot be used (unreadable files or a checksum mismatch)."""


# ------------------------------------------------------------------------------------------
# Pytree helpers: leaf names that match between a live state and orbax's stored metadata
# ------------------------------------------------------------------------------------------


def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _leaves(tree: Any) -> list[tuple[str, Any]]:
    """``(dotted path, leaf)`` pairs; dict keys, dataclass fields and indices all become names."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(".".join(_key_name(k) for k in path), leaf) for path, leaf in flat]


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _host_array(leaf: Any) -> np.ndarray | None:
    """The leaf's values on this host, or None for an array sharded across processes."""
    if isinstance(leaf, jax.Array):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if not leaf.is_fully_addressable:
            if not leaf.is_fully_replicated:
                return None
            leaf = leaf.addressable_data(0)
    return np.ascontiguousarray(np.asarray(leaf))


def _crc(a: np.ndarray) -> str:
    return f"{zlib.crc32(a.tobytes()) & 0xFFFFFFFF:08x}"


def _host_leaves(tree: Any) -> list[tuple[str, np.ndarray | None]]:
    """One device-to-host copy of every leaf (shared by the finiteness check and checksums)."""
    return [(name, _host_array(leaf)) for name, leaf in _leaves(tree)]


def _checksums(host: list[tuple[str, np.ndarray | None]]) -> dict[str, str | None]:
    return {name: None if a is None else _crc(a) for name, a in host}


def _nonfinite_leaves(
    host: list[tuple[str, np.ndarray | None]], allow_runs: Sequence[int]
) -> list[str]:
    bad = []
    for name, a in host:
        if a is None or not np.issubdtype(a.dtype, np.inexact):
            continue
        if len(allow_runs) and a.ndim >= 1 and a.shape[0] > max(allow_runs):
            keep = np.ones(a.shape[0], bool)
            keep[np.asarray(allow_runs, int)] = False
            a = a[keep]
        if not np.isfinite(a).all():
            bad.append(name)
    return bad


def _short(e: BaseException) -> str:
    """One line of an exception (tensorstore messages run to pages)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = text if len(text) <= 160 else text[:157] + "..."
    return text if isinstance(e, CheckpointError) else f"{type(e).__name__}: {text}"


def _shape_dtype(leaf: Any) -> tuple[tuple[int, ...], str]:
    dtype = getattr(leaf, "dtype", None)
    return tuple(getattr(leaf, "shape", ())), str(np.dtype(dtype)) if dtype is not None else "?"


class Checkpointer:
    """Thin wrapper over `orbax.checkpoint.CheckpointManager` for the training loops.

    Args:
      directory: where checkpoints live (``workdir/checkpoints``). Unusable steps are moved to the
        sibling folder ``<directory>_unusable``.
      max_to_keep: how many of the newest checkpoints to keep (at least 1).
      async_save: save in a background thread (call :meth:`wait` or :meth:`close` before exiting).

    Create it while no other process saves to `directory` (the workdir lock ensures that): it
    removes unfinished save folders when it starts.

    Raises:
      ConfigError: if ``max_to_keep`` is not a positive integer.
    """

    def __init__(self, directory: str, *, max_to_keep: int = 3, async_save: bool = True):
        if isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int) or max_to_keep < 1:
            raise ConfigError(
                f"keep_checkpoints={max_to_keep!r}: at least one checkpoint must be kept "
                "(resuming needs it); set --config.keep_checkpoints=1 or more."
            )
        self.directory = os.path.abspath(directory)
        self.unusable_directory = self.directory + "_unusable"
        self._options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=async_save,
        )
        self._remove_interrupted_saves()
        self._mgr = ocp.CheckpointManager(self.directory, options=self._options)

    def _remove_interrupted_saves(self) -> None:
        """Deletes orbax's unfinished ``<step>.orbax-checkpoint-tmp-*`` save folders.

        Done here, synchronously, rather than with orbax's ``cleanup_tmp_directories`` (a
        background task per manager: two managers on one directory would race to delete the same
        folder and the loser's next save would raise). Such a folder never became a checkpoint:
        orbax renames a save into place only once it is complete.
        """
        if jax.process_index() != 0 or not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if TMP_SAVE_MARKER in name:
                log.info("Removing an interrupted save: %s", os.path.join(self.directory, name))
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    # -- queries ---------------------------------------------------------------------------

    def all_steps(self) -> list[int]:
        return sorted(self._mgr.all_steps())

    def latest_step(self) -> int | None:
        return self._mgr.latest_step()

    # -- save ------------------------------------------------------------------------------

    def save(
        self,
        step: int,
        state: Any,
        meta: dict,
        *,
        data_iter: Any = None,
        allow_nonfinite_runs: Sequence[int] = (),
    ) -> None:
        """Saves `state`, `meta` (JSON-serialisable), the state's checksums and a grain iterator.

        Every floating leaf of `state` is checked first; nothing is written when one holds NaN or
        Inf.

        Args:
          step: the training step this checkpoint holds.
          state: the state pytree.
          meta: JSON-serialisable metadata stored beside the state.
          data_iter: a grain ``DatasetIterator`` whose position is saved too.
          allow_nonfinite_runs: indices along the leading (run) axis of a vectorized state that
            may be non-finite: runs already marked as diverged (``nan_policy="mark"``). Every other
            run must be finite.

        Raises:
          NonFiniteError: a floating leaf of `state` is not finite (outside `allow_nonfinite_runs`).
        """
        host = _host_leaves(state)
        bad = _nonfinite_leaves(host, allow_nonfinite_runs)
        if bad:
            last = self.latest_step()
            where = (
                f"the last finite checkpoint is step {last} in {self.directory}"
                if last is not None
                else "there is no earlier checkpoint"
            )
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise NonFiniteError(
                f"Not saving step {step}: the state holds NaN/Inf (in {shown}); {where}."
            )
        items = {
            "state": ocp.args.StandardSave(state),
            "meta": ocp.args.JsonSave(meta),
            "checksums": ocp.args.JsonSave(
                {"algorithm": CHECKSUM_ALGORITHM, "leaves": _checksums(host)}
            ),
        }
        if data_iter is not None:
            import grain  # noqa: PLC0415  (only image pipelines need it)

            items["data"] = grain.checkpoint.CheckpointSave(data_iter)
        self._mgr.save(int(step), args=ocp.args.Composite(**items), force=True)

    # -- restore ---------------------------------------------------------------------------

    def _step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(int(step)))

    def _check_structure(self, step: int, like_state: Any) -> None:
        """ConfigError when the stored tree has other leaves/shapes/dtypes than `like_state`.

        Unreadable metadata is corruption (CheckpointError), not a config change.
        """
        # Read with the handler directly: a fresh manager does not know the item types yet.
        path = epath.Path(self._step_dir(step)) / "state"
        try:
            stored_meta = ocp.StandardCheckpointHandler().metadata(path)
            stored = dict(_leaves(getattr(stored_meta, "tree", stored_meta)))
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"its array metadata cannot be read: {_short(e)}") from e
        live = dict(_leaves(like_state))
        diffs = []
        for name in sorted(set(stored) | set(live)):
            if name not in live:
                diffs.append(f"{name}: stored, not in the new state")
            elif name not in stored:
                diffs.append(f"{name}: new, not in the checkpoint")
            else:
                old, new = _shape_dtype(stored[name]), _shape_dtype(live[name])
                if old != new:
                    diffs.append(f"{name}: {old[1]}{list(old[0])} -> {new[1]}{list(new[0])}")
        if diffs:
            shown = "; ".join(diffs[:4]) + (
                f"; and {len(diffs) - 4} more" if len(diffs) > 4 else ""
            )
            raise ConfigError(
                f"The checkpoint at step {step} in {self.directory} holds a differently shaped "
                f"state ({shown}): the config changed. Use another --workdir, or "
                "--config.resume=False to start fresh (the old run is moved aside, not deleted)."
            )

    def restore(self, step: int, like_state: Any, *, data_iter: Any = None) -> tuple[Any, dict]:
        """Restores checkpoint `step` into the structure (and shardings) of `like_state`.

        The restored arrays are checked against the checksums stored at save time (checkpoints
        written before checksums existed are restored unverified).

        Raises:
          ConfigError: the stored state has other leaves, shapes or dtypes than `like_state`.
          CheckpointError: the step's files are unreadable or its checksums do not match.
        """
        self._check_structure(step, like_state)
        items = {
            "state": ocp.args.StandardRestore(_abstract(like_state)),
            "meta": ocp.args.JsonRestore(),
        }
        has_checksums = os.path.isdir(os.path.join(self._step_dir(step), "checksums"))
        if has_checksums:
            items["checksums"] = ocp.args.JsonRestore()
        if data_iter is not None:
            import grain  # noqa: PLC0415

            items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
        with _orbax_logs_quiet():  # a failed read is reported once, by restore_latest's warning
            out = self._mgr.restore(int(step), args=ocp.args.Composite(**items))
        state = out["state"]
        if has_checksums:
            expected = dict(out["checksums"]["leaves"])
            actual = _checksums(_host_leaves(state))
            wrong = [
                n
                for n, crc in expected.items()
                if crc is not None and actual.get(n) is not None and actual[n] != crc
            ]
            missing = sorted(set(expected) ^ set(actual))
            if wrong or missing:
                raise CheckpointError(
                    f"checksum mismatch in {', '.join((wrong + missing)[:3])}"
                    + (
                        f" and {len(wrong) + len(missing) - 3} more"
                        if len(wrong + missing) > 3
                        else ""
                    )
                )
        else:
            log.info("Checkpoint at step %d has no checksums (older format); not verified.", step)
        return state, dict(out["meta"])

    def _move_aside(self, step: int, reason: str) -> str:
        """Renames step `step` to ``<directory>_unusable/<step>-<reason>[-N]``; reloads orbax."""
        src = self._step_dir(step)
        dst = os.path.join(self.unusable_directory, f"{int(step)}-{reason}")
        if jax.process_index() == 0 and os.path.exists(src):
            os.makedirs(self.unusable_directory, exist_ok=True)
            base, n = dst, 1
            while os.path.exists(dst):
                dst, n = f"{base}-{n}", n + 1
            os.rename(src, dst)
        if jax.process_count() > 1:
            ocp.multihost.sync_global_processes(
                f"checkpoint_move_aside_{int(step)}_{time.time_ns()}"
            )
        self._mgr.reload()
        return dst

    def restore_latest(
        self, like_state: Any, *, data_iter: Any = None
    ) -> tuple[Any, dict, int] | None:
        """Restores the newest usable checkpoint; moves every unusable newer step aside.

        Returns:
          ``(state, meta, step)``, or ``None`` when there is no usable checkpoint (none saved yet,
          or all of them were unusable and have been moved to ``<directory>_unusable``).

        Raises:
          ConfigError: a checkpoint holds a differently shaped state (the config changed);
            nothing is moved.
        """
        moved = []
        for step in reversed(self.all_steps()):
            try:
                state, meta = self.restore(step, like_state, data_iter=data_iter)
            except ConfigError:
                raise
            except Exception as e:  # noqa: BLE001  (any failure: the step is unusable)
                reason = "checksum" if "checksum mismatch" in str(e) else "unreadable"
                dst = self._move_aside(step, reason)
                moved.append(dst)
                log.warning(
                    "Checkpoint at step %d in %s is unusable (%s); moved it to %s.",
                    step,
                    self.directory,
                    _short(e),
                    dst,
                )
                continue
            if moved:
                log.warning("Resumed from step %d after moving unusable checkpoints aside.", step)
            return state, meta, step
        if moved:
            log.warning(
                "No usable checkpoint left in %s (the unusable ones are kept in %s); "
                "starting from scratch.",
                self.directory,
                self.unusable_directory,
            )
        return None

    def wait(self) -> None:
        self._mgr.wait_until_finished()

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()
