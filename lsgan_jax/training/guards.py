"""Run guards: preemption (SIGTERM) as a flag polled at step boundaries."""

from __future__ import annotations

import signal


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
