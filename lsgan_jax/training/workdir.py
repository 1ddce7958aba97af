"""The workdir of a run on disk: writable, one writer at a time, an old run moved aside.

A run's workdir holds its checkpoints, logs and summaries. This module guards the folder itself
(what the run's config must match on resume is `lsgan_jax.training.guards`' job):

- :func:`check_workdir_writable` rejects a workdir that is a file or cannot be written, before
  anything is created.
- :class:`WorkdirLock` lets exactly one process write a workdir. The lock is an exclusive
  ``fcntl.flock`` on ``<workdir>/.lock``; the kernel drops it when the holder exits *for any
  reason* (including ``kill -9``), so a lock can never outlive its process. The file records the
  holder's pid, host and start time, which only serve the error message and the "stale lock"
  warning.
- :func:`move_aside` moves an old run out of the way for an explicit fresh start
  (``--config.resume=False``); nothing is ever deleted.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import re
import socket
from collections.abc import Mapping
from typing import Any

from lsgan_jax.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


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
# Fresh start
# ------------------------------------------------------------------------------------------


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


__all__ = ["LOCK_FILE", "WorkdirLock", "check_workdir_writable", "move_aside"]
