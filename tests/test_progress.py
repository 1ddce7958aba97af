"""The periodic progress report (non-terminal output), driven by a fake clock."""

from __future__ import annotations

import io
import re

import pytest

from lsgan_jax.training import progress as progress_lib


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _report(total=1000, initial=0, interval=30.0):
    out, clock = io.StringIO(), FakeClock()
    bar = progress_lib.progress(
        total, initial, "toy", interval=interval, stream=out, clock=clock, tty=False
    )
    return bar, out, clock


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_first_line_at_start_then_one_per_interval():
    bar, out, clock = _report()
    assert isinstance(bar, progress_lib.PeriodicReport)
    assert _lines(out) == ["[toy] step 0/1000 (0%) | starting"]
    clock.t += 2.0
    bar.update(1)  # the first update (compilation) is fast here: no line, the window starts
    for _ in range(14):  # 14 steps of 2 s each: 28 s < 30 s, no new line
        clock.t += 2.0
        bar.update(1)
    assert len(_lines(out)) == 1
    clock.t += 2.0
    bar.update(1)  # 30 s after the first update: the report fires once
    assert len(_lines(out)) == 2
    # 15 steps in 30 s = 0.5 steps/s; 984 steps left at that rate = 1968 s = 32m48s
    assert _lines(out)[1] == "[toy] step 16/1000 (1%) | 0.5 steps/s | ETA 32m48s | elapsed 32s"


def test_rate_uses_the_last_window_and_metrics_come_from_set_postfix():
    bar, out, clock = _report(total=10_000)
    clock.t += 100.0  # a slow first update (compilation) gets its own line
    bar.update(10)
    assert _lines(out)[-1] == (
        "[toy] step 10/10000 (0%) | first update after 1m40s (includes compilation)"
    )
    bar.set_postfix({"d": 0.25}, g=0.5)
    clock.t += 40.0
    bar.update(4000)  # 4000 steps in 40 s -> 100 steps/s, 5990 left -> 59.9 s -> 1m00s
    last = _lines(out)[-1]
    assert "| 100.0 steps/s |" in last
    assert "ETA 1m00s" in last
    assert last.endswith("| d=0.25 g=0.5")
    # tqdm's keyword form, as the image trainer calls it, replaces the metrics
    bar.set_postfix(d="0.125", g="1.000")
    clock.t += 30.0
    bar.update(1)
    assert _lines(out)[-1].endswith("| d=0.125 g=1.000")


def test_close_prints_a_last_line_once_and_context_manager_closes():
    bar, out, clock = _report(total=20, initial=10)
    assert _lines(out) == ["[toy] step 10/20 (50%) | resuming at step 10"]
    with bar:
        clock.t += 5.0
        bar.update(10)
    bar.close()  # idempotent
    lines = _lines(out)
    assert len(lines) == 2
    assert lines[1] == "[toy] step 20/20 (100%) | 2.0 steps/s | done in 5s"


def test_stopped_early_says_so():
    bar, out, clock = _report(total=100)
    clock.t += 3725.0
    bar.update(40)  # 40 steps in 3725 s
    bar.close()
    assert _lines(out)[-1].startswith("[toy] step 40/100 (40%) | ")
    assert _lines(out)[-1].endswith("stopped after 1h02m")


def test_interval_zero_reports_every_update():
    bar, out, clock = _report(total=3, interval=0.0)
    for _ in range(3):
        clock.t += 1.0
        bar.update(1)
    assert len(_lines(out)) == 4  # start, the first update's line, two reports


def test_interval_from_environment(monkeypatch):
    monkeypatch.setenv(progress_lib.ENV_INTERVAL, "5")
    out, clock = io.StringIO(), FakeClock()
    bar = progress_lib.progress(10, desc="env", stream=out, clock=clock, tty=False)
    assert bar.interval == 5.0
    monkeypatch.setenv(progress_lib.ENV_INTERVAL, "soon")
    with pytest.raises(ValueError, match=re.escape(progress_lib.ENV_INTERVAL)):
        progress_lib.progress(10, stream=out, clock=clock, tty=False)
    monkeypatch.delenv(progress_lib.ENV_INTERVAL)
    bar = progress_lib.progress(10, stream=out, clock=clock, tty=False)
    assert bar.interval == progress_lib.DEFAULT_INTERVAL


def test_terminal_gets_a_tqdm_bar():
    tqdm = pytest.importorskip("tqdm")
    bar = progress_lib.progress(10, desc="tty", tty=True)
    try:
        assert isinstance(bar, tqdm.std.tqdm)
        bar.update(2)
        bar.set_postfix({"d": 1.0})
        assert bar.n == 2
    finally:
        bar.close()
