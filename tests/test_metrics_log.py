"""Tests for lsgan_jax.training.metrics_log: logs consistent with the restored state."""

from __future__ import annotations

import glob
import json
import logging
import os
import struct

import pytest
from tensorboardX.proto import event_pb2

from lsgan_jax.training.metrics_log import MetricWriter, read_metrics


def _write(workdir, steps, *, resume_step=None, tensorboard=False, tag="run"):
    w = MetricWriter(str(workdir), tensorboard=tensorboard, resume_step=resume_step)
    for s in steps:
        w.write_scalars(s, {"loss": float(s), "tag_" + tag: 1.0})
    w.close()


def _steps(workdir):
    return [r["step"] for r in read_metrics(str(workdir))]


def test_fresh_run_appends_rows(tmp_path):
    _write(tmp_path, range(1, 4))
    rows = read_metrics(str(tmp_path))
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[1]["loss"] == 2.0


def test_resume_cuts_back_to_the_restored_step(tmp_path):
    _write(tmp_path, range(1, 11), tag="first")  # killed after logging step 10
    _write(tmp_path, range(7, 13), resume_step=6, tag="second")  # checkpoint was at step 6
    rows = read_metrics(str(tmp_path))
    assert [r["step"] for r in rows] == list(range(1, 13))  # every step exactly once
    assert all("tag_first" in r for r in rows if r["step"] <= 6)
    assert all("tag_second" in r for r in rows if r["step"] > 6)


def test_fresh_start_with_resume_step_zero_keeps_only_step_zero(tmp_path):
    _write(tmp_path, range(0, 5))
    _write(tmp_path, range(1, 3), resume_step=0, tag="again")
    assert _steps(tmp_path) == [0, 1, 2]


def test_torn_last_line_is_repaired_before_appending(tmp_path, caplog):
    _write(tmp_path, range(1, 6))
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # a kill during the write of step 6
    with caplog.at_level(logging.WARNING, logger="lsgan_jax.training.metrics_log"):
        assert _steps(tmp_path) == [1, 2, 3, 4, 5]  # read_metrics skips it, with a warning
    assert any("torn" in r.getMessage() for r in caplog.records)
    _write(tmp_path, range(5, 8), resume_step=4)
    assert _steps(tmp_path) == [1, 2, 3, 4, 5, 6, 7]
    # No resume step (None): rows stay, the torn line still goes.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 8, "loss": 1.')
    _write(tmp_path, [8], resume_step=None)
    assert _steps(tmp_path) == list(range(1, 9))


def test_complete_row_without_newline_is_not_joined(tmp_path):
    _write(tmp_path, range(1, 3))
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "loss": 3.0}))  # killed before the newline
    _write(tmp_path, [4], resume_step=3)
    assert _steps(tmp_path) == [1, 2, 3, 4]


def test_damage_before_the_last_line_is_an_error_for_readers(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(str(tmp_path))
    # The writer of a resumed run drops the damaged line (warning) instead of refusing to start.
    _write(tmp_path, [3], resume_step=2)
    assert _steps(tmp_path) == [1, 2, 3]


# ------------------------------------------------------------------------------------------
# TensorBoard: read the event files back and apply TensorBoard's purge rule
# ------------------------------------------------------------------------------------------


def _events(path):
    """TFRecord framing: u64 length, u32 crc, payload, u32 crc."""
    out = []
    with open(path, "rb") as f:
        while header := f.read(12):
            (n,) = struct.unpack("<Q", header[:8])
            ev = event_pb2.Event()
            ev.ParseFromString(f.read(n))
            f.read(4)
            out.append(ev)
    return out


def _tensorboard_view(workdir):
    """Scalar steps as TensorBoard shows them: a SessionLog.START at step s (the purge marker)
    discards the earlier events with step >= s."""
    seen = []
    for path in sorted(glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*"))):
        for ev in _events(path):
            if ev.HasField("session_log") and ev.session_log.status == ev.session_log.START:
                seen = [(s, tag) for s, tag in seen if s < ev.step]
            for v in ev.summary.value:
                if v.tag == "loss":
                    seen.append((ev.step, v.tag))
    return [s for s, _ in seen]


def test_tensorboard_resumed_segment_purges_the_replayed_steps(tmp_path):
    _write(tmp_path, range(1, 11), tensorboard=True)
    first = glob.glob(os.path.join(tmp_path, "tb", "events.out.tfevents.*"))
    _write(tmp_path, range(7, 13), resume_step=6, tensorboard=True)
    files = glob.glob(os.path.join(tmp_path, "tb", "events.out.tfevents.*"))
    assert len(files) == len(first) + 1  # a fresh file for the resumed segment
    (new,) = set(files) - set(first)
    starts = [e.step for e in _events(new) if e.HasField("session_log")]
    assert starts == [7]
    assert _tensorboard_view(str(tmp_path)) == list(range(1, 13))


def test_tensorboard_writer_does_not_import_torch(tmp_path):
    """tensorboardX imports PyTorch when installed; the writer hides it (seconds per run)."""
    import subprocess
    import sys

    pytest.importorskip("torch")  # only meaningful where PyTorch is installed (the test extra)
    code = (
        "import sys\n"
        "from lsgan_jax.training.metrics_log import MetricWriter\n"
        f"w = MetricWriter({str(tmp_path)!r})\n"
        "w.write_scalars(1, {'d_loss': 0.5})\n"
        "w.close()\n"
        "assert 'torch' not in sys.modules, 'tensorboardX pulled in torch'\n"
        "import torch  # still importable afterwards\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["d_loss"] for r in read_metrics(str(tmp_path))] == [0.5]
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
