"""The workdir of a run: one writer at a time, the resolved config, config-checked resume.

A run's workdir holds its checkpoints, logs and summaries. This module guards it:

- :func:`check_workdir_writable` rejects a workdir that is a file or cannot be written, before
  anything is created.
- :class:`WorkdirLock` lets exactly one process write a workdir. The lock is an exclusive
  ``fcntl.flock`` on ``<workdir>/.lock``; the kernel drops it when the holder exits *for any
  reason* (including ``kill -9``), so a lock can never outlive its process. The file records the
  holder's pid, host and start time, which only serve the error message and the "stale lock"
  warning.
- :func:`record_config` stores the resolved config as ``<workdir>/config.json`` when a run starts.
- :func:`check_resume` compares a restart's config with that stored one, field by field, and
  refuses any change outside the documented resumable fields before anything is written.
- :func:`move_aside` moves an old run out of the way for an explicit fresh start
  (``--config.resume=False``); nothing is ever deleted.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import math
import os
import re
import socket
from collections.abc import Mapping
from typing import Any

from lsgan_jax.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"

#: Fields that never take part in the resume check: ``resume`` selects the mode itself.
ALWAYS_RESUMABLE = frozenset({"resume"})

_WAYS_FORWARD = (
    "Use another --workdir, or pass --config.resume=False to start fresh "
    "(the old run is moved aside to a sibling folder, not deleted)."
)


# ------------------------------------------------------------------------------------------
# Writable
# ------------------------------------------------------------------------------------------


def check_workdir_writable(workdir: str) -> None:
    """Raises ConfigError when `workdir` cannot hold a run; creates nothing.

    A workdir is usable when it is an existing writable directory, or when its nearest existing
    ancestor is a writable directory (the run will create the missing folders).

    Raises:
      ConfigError: a URL (``gs://...``; the lock, the metrics log and the summaries need a
        POSIX file system: mount the bucket, see docs/scale.md), the path (or an ancestor) is a
        file, or the directory is not writable.
    """
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", str(workdir))
    if scheme:
        raise ConfigError(
            f"--workdir {workdir} is a {scheme.group(1)}:// URL; a workdir must be a file-system "
            "path (its lock, metrics.jsonl and summaries use POSIX files). Mount the bucket "
            "(e.g. gcsfuse --implicit-dirs BUCKET ~/gcs) and pass --workdir=~/gcs/RUN; see "
            "docs/scale.md."
        )
    path = os.path.abspath(workdir)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        what = "is a file" if probe == path else f"is inside {probe}, which is a file"
        raise ConfigError(f"--workdir {workdir} {what}, not a directory; choose another --workdir.")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is not writable" if probe == path else f"cannot be created ({probe} is read-only)"
        raise ConfigError(f"--workdir {workdir} {what}; choose another --workdir.")


# ------------------------------------------------------------------------------------------
# Lock
# ------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkdirLock(contextlib.AbstractContextManager):
    """An exclusive, crash-safe lock on a workdir: one writing process at a time.

    Usage::

        with WorkdirLock(workdir):
            ...  # restore, train, save

    Taking the lock creates `workdir` if needed. In a multi-host job take it on process 0 only
    (the other processes write nothing to the workdir's top level).

    Args:
      workdir: the run's directory; the lock file is ``<workdir>/.lock``.

    Raises:
      ConfigError: on ``__enter__``, when another live process holds the lock; the message names
        its pid, host and start time.
    """

    def __init__(self, workdir: str):
        self.workdir = os.path.abspath(workdir)
        self.path = os.path.join(self.workdir, LOCK_FILE)
        self._fd: int | None = None

    def __enter__(self) -> WorkdirLock:
        os.makedirs(self.workdir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ConfigError(
                f"{self.workdir} is in use by {_describe(holder)}; wait for it to finish, stop "
                "it, or use another --workdir."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        previous = _read_holder(fd)
        if previous:
            # The kernel released the old holder's lock, so it is gone (crashed or killed).
            dead = previous.get("host") == socket.gethostname() and not _pid_alive(
                int(previous.get("pid", -1))
            )
            log.warning(
                "Took over a stale lock on %s left by %s%s.",
                self.workdir,
                _describe(previous),
                " (no longer running)" if dead else "",
            )
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def release(self) -> None:
        """Empties the lock file (no holder) and releases the lock; idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0).decode()
        holder = json.loads(data) if data.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {"pid": "?", "host": "?", "since": "? (unreadable lock file)"}


def _describe(holder: Mapping[str, Any]) -> str:
    if not holder:
        return "another process"
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"(since {holder.get('since', '?')})"
    )


# ------------------------------------------------------------------------------------------
# Config record and resume check
# ------------------------------------------------------------------------------------------


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
    if isinstance(tree, dict) and tree:
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
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


def move_aside(workdir: str) -> str:
    """Moves an old run's files to a sibling ``<workdir>.old-<UTC time>[-N]``; deletes nothing.

    Every entry of `workdir` except the lock file moves (so a lock held on `workdir` stays
    valid); `workdir` itself remains, empty, for the fresh run.

    Returns:
      The new folder, or ``""`` when `workdir` held nothing to move.
    """
    workdir = os.path.abspath(workdir)
    if not os.path.isdir(workdir):
        return ""
    entries = [e for e in sorted(os.listdir(workdir)) if e != LOCK_FILE]
    if not entries:
        return ""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = dest = f"{workdir}.old-{stamp}"
    n = 1
    while os.path.exists(dest):
        dest, n = f"{base}-{n}", n + 1
    os.makedirs(dest)
    for entry in entries:
        os.rename(os.path.join(workdir, entry), os.path.join(dest, entry))
    log.warning("Moved the previous run in %s to %s.", workdir, dest)
    return dest


__all__ = [
    "ALWAYS_RESUMABLE",
    "CONFIG_FILE",
    "LOCK_FILE",
    "WorkdirLock",
    "check_resume",
    "check_workdir_writable",
    "move_aside",
    "record_config",
]
