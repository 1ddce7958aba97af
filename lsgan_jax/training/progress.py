"""Training progress: a tqdm bar on a terminal, a periodic one-line report anywhere else.

Under a scheduler (Slurm, nohup, ``| tee``) a progress bar is noise or nothing; instead the
trainers print, like the Flax examples' periodic report, a first line at the start, then one line
every ``interval`` seconds, then a last line at the end::

    [mixture] step 0/8000 (0%) | starting
    [mixture] step 500/8000 (6%) | first update after 41s (includes compilation)
    [mixture] step 2500/8000 (31%) | 83.2 steps/s | ETA 1m06s | elapsed 30s | d=0.2473 g=0.4012
    [mixture] step 8000/8000 (100%) | 79.8 steps/s | done in 1m40s | d=0.2466 g=0.3987

steps/s is measured over the last interval (the first update, which includes compilation, gets
its own line and is left out), the ETA is the remaining steps at that rate, and the metrics are
the last ``set_postfix`` values. The
interval is the ``interval`` argument, else ``$LSGAN_PROGRESS_INTERVAL`` (seconds), else 30 s.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

__all__ = ["DEFAULT_INTERVAL", "ENV_INTERVAL", "PeriodicReport", "progress"]

#: Seconds between two report lines when output is not a terminal.
DEFAULT_INTERVAL = 30.0
#: Environment variable that overrides :data:`DEFAULT_INTERVAL` (seconds, a float ≥ 0).
ENV_INTERVAL = "LSGAN_PROGRESS_INTERVAL"


def _duration(seconds: float) -> str:
    """``"45s"``, ``"3m07s"``, ``"2h05m"``."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    try:  # NumPy / JAX scalars
        as_float = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(value) if isinstance(value, (int, str, bool)) else f"{as_float:.4g}"


class PeriodicReport:
    """A tqdm-compatible progress object that prints a line every ``interval`` seconds.

    Supports what the trainers use of tqdm: ``update(n)``, ``set_postfix(dict or **kwargs)``,
    ``close()``, ``n``, ``total`` and the context-manager protocol.

    Args:
      total: the step the run ends at.
      initial: the step it starts (resumes) from.
      desc: a short name printed in brackets at the start of each line.
      interval: seconds between lines (0: a line at every ``update``).
      stream: where lines go (default ``sys.stdout``); each line is flushed.
      clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "train",
        *,
        interval: float = DEFAULT_INTERVAL,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total = int(total)
        self.n = int(initial)
        self.desc = desc
        self.interval = float(interval)
        self._stream = stream
        self._clock = clock
        self._postfix: dict[str, Any] = {}
        self._closed = False
        self._updated = False
        self._t0 = self._last_t = clock()
        self._n0 = self._last_n = self.n
        verb = "starting" if self.n == 0 else f"resuming at step {self.n}"
        self._print(f"{self._head()} | {verb}")

    # tqdm-compatible API --------------------------------------------------------------------

    def update(self, n: int = 1) -> None:
        """Advances by ``n`` steps; prints a line when ``interval`` seconds have passed.

        The first update usually includes compilation: it gets its own line (when it took at
        least ``interval``), and steps/s and the ETA are measured from it on.
        """
        self.n += int(n)
        now = self._clock()
        if not self._updated:
            self._updated = True
            if now - self._last_t >= self.interval:
                took = f"first update after {_duration(now - self._t0)} (includes compilation)"
                self._print(" | ".join([self._head(), took, *self._metrics()]))
            self._last_t, self._last_n = now, self.n
            return
        if now - self._last_t >= self.interval:
            window = now - self._last_t
            rate = (self.n - self._last_n) / window if window > 0 else math.inf
            eta = (self.total - self.n) / rate if rate > 0 else math.inf
            parts = [self._head(), f"{rate:.1f} steps/s", f"ETA {_duration(eta)}"]
            parts.append(f"elapsed {_duration(now - self._t0)}")
            self._print(" | ".join(parts + self._metrics()))
            self._last_t, self._last_n = now, self.n

    def set_postfix(
        self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any
    ) -> None:
        """Sets the metrics shown at the end of the next line (tqdm's signature)."""
        del refresh
        self._postfix = {**dict(ordered_dict or {}), **kwargs}

    def close(self) -> None:
        """Prints the last line (average steps/s over this session); idempotent."""
        if self._closed:
            return
        self._closed = True
        elapsed = self._clock() - self._t0
        done = self.n - self._n0
        parts = [self._head()]
        if done and elapsed > 0:
            parts.append(f"{done / elapsed:.1f} steps/s")
        verb = "done in" if self.n >= self.total else "stopped after"
        parts.append(f"{verb} {_duration(elapsed)}")
        self._print(" | ".join(parts + self._metrics()))

    def __enter__(self) -> PeriodicReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # internals ------------------------------------------------------------------------------

    def _head(self) -> str:
        pct = f" ({100 * self.n // self.total}%)" if self.total > 0 else ""
        return f"[{self.desc}] step {self.n}/{self.total}{pct}"

    def _metrics(self) -> list[str]:
        if not self._postfix:
            return []
        return [" ".join(f"{k}={_format_value(v)}" for k, v in self._postfix.items())]

    def _print(self, line: str) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        print(line, file=stream, flush=True)


class _Silent:
    """The same API doing nothing (processes other than 0 of a multi-host run)."""

    n = total = 0

    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        del ordered_dict, refresh, kwargs

    def close(self) -> None: ...

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None: ...


def _interval_from_env() -> float:
    raw = os.environ.get(ENV_INTERVAL, "")
    if not raw.strip():
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"${ENV_INTERVAL}={raw!r}: give the report interval in seconds (>= 0).")
    return value


def _is_secondary_process() -> bool:
    jax = sys.modules.get("jax")  # only ask when the caller already imported JAX
    if jax is None:
        return False
    try:
        return jax.process_count() > 1 and jax.process_index() != 0
    except Exception:  # noqa: BLE001 - no backend yet: treat as the main process
        return False


def progress(
    total: int,
    initial: int = 0,
    desc: str = "train",
    *,
    interval: float | None = None,
    stream: TextIO | None = None,
    clock: Callable[[], float] | None = None,
    tty: bool | None = None,
) -> Any:
    """A tqdm-compatible progress object for a run of ``total`` steps starting at ``initial``.

    A tqdm bar (on stderr, with steps/s) when both stdout and stderr are terminals and tqdm is
    installed; otherwise a :class:`PeriodicReport` that prints a line to stdout every
    ``interval`` seconds. On processes other than 0 of a multi-host run: nothing.

    Args:
      total: the last step.
      initial: the first step (a resumed run starts past 0).
      desc: short label (the experiment or dataset).
      interval: seconds between report lines; default ``$LSGAN_PROGRESS_INTERVAL`` or 30.
      stream: where report lines go (default stdout).
      clock: monotonic clock for the report (default ``time.monotonic``).
      tty: force the terminal (``True``) or report (``False``) behaviour; default: detect.

    Returns:
      An object with ``update(n)``, ``set_postfix(...)``, ``close()``, usable as a context
      manager.

    Raises:
      ValueError: ``$LSGAN_PROGRESS_INTERVAL`` is not a number of seconds >= 0.
    """
    if _is_secondary_process():
        return _Silent()
    if tty is None:
        tty = sys.stdout.isatty() and sys.stderr.isatty()
    if tty and stream is None:
        try:
            from tqdm.auto import tqdm  # noqa: PLC0415  (optional: the [viz] extra)
        except ImportError:
            pass
        else:
            return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
    if interval is None:
        interval = _interval_from_env()
    return PeriodicReport(
        total,
        initial,
        desc,
        interval=interval,
        stream=stream,
        clock=clock if clock is not None else time.monotonic,
    )
