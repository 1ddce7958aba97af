"""Tests for lsgan_jax.training.workdir and guards: the lock, the config record, config-checked resume."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys

import ml_collections
import pytest

from lsgan_jax.errors import ConfigError
from lsgan_jax.training import guards
from lsgan_jax.training import workdir as wd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A second process that takes the lock, says so, and holds it until its stdin closes. It loads
# workdir.py by path so that it does not import JAX (the lock needs none).
_HOLDER = f"""
import importlib.util, sys
sys.path.insert(0, {ROOT!r})
spec = importlib.util.spec_from_file_location("wdmod", {os.path.join(ROOT, "lsgan_jax", "training", "workdir.py")!r})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
with mod.WorkdirLock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def _holder(path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _config(**kw):
    c = ml_collections.ConfigDict()
    c.batch_size = 64
    c.num_steps = 100
    c.eval_every = 10
    c.resume = True
    c.loss = "lsgan"
    c.coding = ml_collections.ConfigDict({"a": -1.0, "b": 1.0, "c": 0.0})
    c.fid = ml_collections.ConfigDict({"num_samples": 1000, "every": 50})
    c.snapshot_steps = (0, 50, 100)
    for k, v in kw.items():
        setattr(c, k, v)
    return c


RESUMABLE = frozenset({"eval_every", "fid", "snapshot_steps"})


# ------------------------------------------------------------------------------------------
# Lock
# ------------------------------------------------------------------------------------------


def test_second_process_is_refused_with_the_holder_named(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(ConfigError) as err:
            with wd.WorkdirLock(str(tmp_path)):
                pass
        msg = str(err.value)
        assert f"pid {proc.pid} on host {socket.gethostname()}" in msg
        assert "since 20" in msg and "--workdir" in msg
        assert "\n" not in msg
    finally:
        proc.stdin.close()
        proc.wait()
    # Released by the holder's clean exit: taken again without a stale-lock warning.
    with wd.WorkdirLock(str(tmp_path)):
        pass


def test_lock_of_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
    proc = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with caplog.at_level(logging.WARNING, logger="lsgan_jax.training.workdir"):
        with wd.WorkdirLock(str(tmp_path)) as lock:
            holder = json.loads(open(lock.path).read())
            assert holder["pid"] == os.getpid()
    msgs = [r.getMessage() for r in caplog.records]
    assert any(
        "stale lock" in m and f"pid {proc.pid}" in m and "no longer running" in m for m in msgs
    )


def test_lock_is_released_on_exception_and_file_emptied(tmp_path, caplog):
    with pytest.raises(RuntimeError):
        with wd.WorkdirLock(str(tmp_path / "run")):
            raise RuntimeError("boom")
    assert open(tmp_path / "run" / wd.LOCK_FILE).read() == ""
    with caplog.at_level(logging.WARNING, logger="lsgan_jax.training.workdir"):
        with wd.WorkdirLock(str(tmp_path / "run")):
            pass
    assert not caplog.records


def test_same_process_cannot_take_the_lock_twice(tmp_path):
    with wd.WorkdirLock(str(tmp_path)):
        with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
            with wd.WorkdirLock(str(tmp_path)):
                pass


# ------------------------------------------------------------------------------------------
# Writable
# ------------------------------------------------------------------------------------------


def test_workdir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        wd.check_workdir_writable(str(f))
    with pytest.raises(ConfigError, match="which is a file"):
        wd.check_workdir_writable(str(f / "sub" / "run"))


def test_url_workdir_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """`gs://b/run` would otherwise become a local folder named `gs:`; it is refused instead."""
    monkeypatch.chdir(tmp_path)
    for url in ("gs://bucket/run", "s3://bucket/run"):
        with pytest.raises(ConfigError, match="URL.*Mount the bucket"):
            wd.check_workdir_writable(url)
    assert os.listdir(tmp_path) == []


def test_new_workdir_under_a_writable_folder_is_accepted_and_not_created(tmp_path):
    wd.check_workdir_writable(str(tmp_path / "a" / "b"))
    wd.check_workdir_writable(str(tmp_path))
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_workdir_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            wd.check_workdir_writable(str(ro))
        with pytest.raises(ConfigError, match="read-only"):
            wd.check_workdir_writable(str(ro / "run"))
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------------------------------------
# Config record and resume check
# ------------------------------------------------------------------------------------------


def test_record_config_writes_json_with_tuples_as_lists(tmp_path):
    guards.record_config(str(tmp_path), _config())
    stored = json.loads((tmp_path / guards.CONFIG_FILE).read_text())
    assert stored["snapshot_steps"] == [0, 50, 100]
    assert stored["coding"] == {"a": -1.0, "b": 1.0, "c": 0.0}
    assert stored["fid"]["num_samples"] == 1000


def test_same_config_resumes(tmp_path):
    guards.record_config(str(tmp_path), _config())
    guards.check_resume(str(tmp_path), _config(), resumable=RESUMABLE, restored_step=50)


def test_no_stored_config_resumes(tmp_path):
    guards.check_resume(str(tmp_path), _config(), resumable=RESUMABLE, restored_step=None)


def _snapshot(path):
    return {
        os.path.join(r, f): (
            os.path.getmtime(os.path.join(r, f)),
            os.path.getsize(os.path.join(r, f)),
        )
        for r, _, fs in os.walk(path)
        for f in fs
    }


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"batch_size": 128}, "batch_size: 64 → 128"),
        ({"loss": "gan"}, 'loss: "lsgan" → "gan"'),
        (
            {"coding": ml_collections.ConfigDict({"a": 0.0, "b": 1.0, "c": 1.0})},
            "coding.a: -1.0 → 0.0; coding.c: 0.0 → 1.0",
        ),
    ],
)
def test_changed_field_is_refused_naming_it_and_nothing_is_written(tmp_path, change, expected):
    guards.record_config(str(tmp_path), _config())
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError) as err:
        guards.check_resume(str(tmp_path), _config(**change), resumable=RESUMABLE, restored_step=50)
    msg = str(err.value)
    assert expected in msg
    assert "--workdir" in msg and "--config.resume=False" in msg
    assert "\n" not in msg
    assert _snapshot(tmp_path) == before


def test_added_and_removed_fields_are_named(tmp_path):
    guards.record_config(str(tmp_path), _config())
    new = _config()
    new.width = 256
    del new["loss"]
    with pytest.raises(ConfigError, match=r'loss: "lsgan" → \(absent\); width: \(absent\) → 256'):
        guards.check_resume(str(tmp_path), new, resumable=RESUMABLE, restored_step=None)


def test_resumable_fields_and_prefixes_may_change(tmp_path):
    guards.record_config(str(tmp_path), _config())
    new = _config(eval_every=5, snapshot_steps=(0, 100), resume=False)
    new.fid.num_samples = 50  # covered by the prefix "fid"
    new.fid.every = 25
    guards.check_resume(str(tmp_path), new, resumable=RESUMABLE, restored_step=50)
    # A prefix covers whole path components only: "fid" does not cover "fidelity".
    new.fidelity = 1
    with pytest.raises(ConfigError, match="fidelity"):
        guards.check_resume(str(tmp_path), new, resumable=RESUMABLE, restored_step=50)


def test_num_steps_may_grow_but_not_drop_below_the_checkpoint(tmp_path):
    guards.record_config(str(tmp_path), _config(num_steps=100))
    guards.check_resume(
        str(tmp_path), _config(num_steps=300), resumable=RESUMABLE, restored_step=100
    )
    guards.check_resume(str(tmp_path), _config(num_steps=60), resumable=RESUMABLE, restored_step=50)
    with pytest.raises(ConfigError, match="num_steps=40 is below the checkpoint's step 50"):
        guards.check_resume(
            str(tmp_path), _config(num_steps=40), resumable=RESUMABLE, restored_step=50
        )


def test_many_changes_are_summarized(tmp_path):
    guards.record_config(str(tmp_path), {f"f{i:02d}": i for i in range(12)})
    with pytest.raises(ConfigError, match="and 4 more"):
        guards.check_resume(
            str(tmp_path),
            {f"f{i:02d}": i + 1 for i in range(12)},
            resumable=frozenset(),
            restored_step=None,
        )


# ------------------------------------------------------------------------------------------
# Move aside
# ------------------------------------------------------------------------------------------


def test_move_aside_keeps_everything_and_the_lock(tmp_path):
    run = tmp_path / "run"
    with wd.WorkdirLock(str(run)):
        guards.record_config(str(run), _config())
        (run / "checkpoints" / "10").mkdir(parents=True)
        (run / "metrics.jsonl").write_text('{"step": 1}\n')
        old = wd.move_aside(str(run))
        assert os.path.dirname(old) == str(tmp_path)
        assert os.path.basename(old).startswith("run.old-")
        assert sorted(os.listdir(old)) == ["checkpoints", "config.json", "metrics.jsonl"]
        assert os.listdir(run) == [wd.LOCK_FILE]
        assert (tmp_path / os.path.basename(old) / "metrics.jsonl").read_text() == '{"step": 1}\n'
        # A second fresh start in the same second gets its own folder.
        (run / "metrics.jsonl").write_text("{}\n")
        again = wd.move_aside(str(run))
        assert again != old and os.path.exists(os.path.join(again, "metrics.jsonl"))
        assert wd.move_aside(str(run)) == ""  # nothing left to move
    assert wd.move_aside(str(tmp_path / "missing")) == ""


def test_nan_equals_nan_and_bool_is_not_int(tmp_path):
    guards.record_config(str(tmp_path), {"clip": float("nan"), "flag": True, "lr": 1, "xs": [1.0]})
    same = {"clip": float("nan"), "flag": True, "lr": 1.0, "xs": (1,)}
    guards.check_resume(str(tmp_path), same, resumable=frozenset(), restored_step=None)
    with pytest.raises(ConfigError, match="flag: true → 1"):
        guards.check_resume(
            str(tmp_path), {**same, "flag": 1}, resumable=frozenset(), restored_step=None
        )
