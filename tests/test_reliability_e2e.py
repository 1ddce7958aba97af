"""End-to-end reliability through the real entry point, `python -m experiments.mixture`.

Every test starts real trainer processes on a tiny smoke study (2 runs, 60 steps, a checkpoint
every 10 steps) and interferes with them the way a cluster or a user does: `kill -9` in the
middle of a checkpoint save and in the middle of training, a second process on the same workdir,
one flipped byte or a truncated array file in the newest checkpoint, a rerun with a changed
config. Each finished run is compared with one uninterrupted reference run of the same config:
the final checkpoint's arrays bitwise, `metrics.jsonl` row by row (every step exactly once, in
order, same values), the fixed-z snapshots, the evaluation history and the per-run summary.

No mocks and no timing assertions: the tests wait for observable events on disk (an orbax
``<step>.orbax-checkpoint-tmp`` folder, a metrics row, the lock file naming its holder) with
bounded polling, and `SIGSTOP` holds a process still where a moment must last.

The subprocesses inherit the suite's JAX persistent compilation cache (`JAX_COMPILATION_CACHE_DIR`,
set in `tests/conftest.py`), here with every program cached, so that only the reference run
compiles; a cached executable is the one XLA compiled, so results are unchanged (the bitwise
comparisons below would notice otherwise).
See docs/reliability.md for the guarantees these tests hold the trainer to.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from workdir_digest import tree_digest

from lsgan_jax.training.checkpoint import TMP_SAVE_MARKER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 60  # eval_every=10 (smoke): six chunks, a checkpoint after each
BASE = ("--variant=smoke", "--config.seeds=1", "--config.checkpoint_every=10")
TIMEOUT = 300  # seconds for any one process (a loaded 2-core machine)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)  # with the suite's JAX_COMPILATION_CACHE_DIR (tests/conftest.py)
    env["XLA_FLAGS"] = os.environ.get("LSGAN_JAX_TEST_XLA_FLAGS", "")  # one CPU device
    env["JAX_PLATFORMS"] = "cpu"
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def _argv(workdir, *args: str) -> list[str]:
    return [sys.executable, "-m", "experiments.mixture", *BASE, f"--workdir={workdir}", *args]


@contextlib.contextmanager
def _processes():
    """Yields a `start(workdir, *args)` for background trainers; any still alive at the end
    (a failed assertion) is continued if stopped and killed, by its pid."""
    started: list[subprocess.Popen] = []

    def start(workdir, *args) -> subprocess.Popen:
        proc = subprocess.Popen(
            _argv(workdir, *args),
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, signal.SIGKILL)
            if not proc.stdout.closed:  # not yet read: reap it and close its pipes
                proc.communicate(timeout=TIMEOUT)


def _run(workdir, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        _argv(workdir, *args),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _poll(found, proc: subprocess.Popen, what: str):
    """Returns `found()` once truthy, or None when `proc` ended first; fails after TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        value = found()
        if value:
            return value
        if proc.poll() is not None:
            return None
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def _kill9(proc: subprocess.Popen) -> tuple[str, str]:
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err)
    return out, err


# --------------------------------------------------------------------------------------------
# Reading a workdir
# --------------------------------------------------------------------------------------------


def _ckdir(workdir) -> str:
    return os.path.join(workdir, "checkpoints")


def _listdir(path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _complete_steps(workdir) -> list[int]:
    """Steps whose save finished (orbax renames a save into `<step>` only when complete)."""
    return sorted(int(n) for n in _listdir(_ckdir(workdir)) if n.isdigit())


def _tmp_saves(workdir) -> list[str]:
    return sorted(n for n in _listdir(_ckdir(workdir)) if TMP_SAVE_MARKER in n)


def _metric_steps_on_disk(workdir) -> list[int]:
    """Steps of the complete rows of `metrics.jsonl` as it is now (a process may be writing)."""
    path = os.path.join(workdir, "metrics.jsonl")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(line)["step"] for line in text.split("\n")[:-1] if line]


def _rows(workdir) -> list[dict]:
    """Every row of `metrics.jsonl` (strict: a torn line fails), without the timing column."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    for row in rows:
        row.pop("steps_per_s", None)
    return rows


def _final_arrays(workdir) -> dict[str, np.ndarray]:
    """The newest checkpoint's state, read back with orbax alone (no trainer code)."""
    step = _complete_steps(workdir)[-1]
    with ocp.StandardCheckpointer() as ckptr:
        tree = ckptr.restore(os.path.join(_ckdir(workdir), str(step), "state"))
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def _snapshots(workdir) -> dict[str, dict[str, np.ndarray]]:
    snap_dir = os.path.join(workdir, "snapshots")
    out = {}
    for name in sorted(os.listdir(snap_dir)):
        with np.load(os.path.join(snap_dir, name)) as z:
            out[name] = {k: z[k] for k in z.files}
    return out


def _json(workdir, name):
    with open(os.path.join(workdir, name)) as f:
        return json.load(f)


def _assert_equals_reference(workdir, reference) -> None:
    """The finished run in `workdir` is bitwise the uninterrupted reference run."""
    assert _complete_steps(workdir)[-1] == NUM_STEPS
    assert _tmp_saves(workdir) == []
    a, b = _final_arrays(reference), _final_arrays(workdir)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)
    rows = _rows(workdir)
    assert [r["step"] for r in rows] == list(range(10, NUM_STEPS + 1, 10))  # each once, in order
    assert rows == _rows(reference)  # and the logged values are those of the reference run
    snaps, ref_snaps = _snapshots(workdir), _snapshots(reference)
    assert snaps.keys() == ref_snaps.keys()
    for name, arrays in ref_snaps.items():
        for key, value in arrays.items():
            np.testing.assert_array_equal(snaps[name][key], value, err_msg=f"{name}:{key}")
    assert _json(workdir, "history.json") == _json(reference, "history.json")
    assert _json(workdir, "summary.json")["runs"] == _json(reference, "summary.json")["runs"]


# --------------------------------------------------------------------------------------------
# Reference runs
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    """One uninterrupted run of the study: the ground truth of every test below."""
    workdir = str(tmp_path_factory.mktemp("reference") / "run")
    _run(workdir, f"--config.num_steps={NUM_STEPS}")
    assert _complete_steps(workdir) == [NUM_STEPS - 10, NUM_STEPS]  # keep_checkpoints=2
    return workdir


@pytest.fixture(scope="module")
def half_run(tmp_path_factory, reference) -> str:
    """The same study finished at 30 steps (checkpoints 20 and 30); tests work on copies."""
    del reference  # (compiles first, so this run uses the cache)
    workdir = str(tmp_path_factory.mktemp("half") / "run")
    _run(workdir, "--config.num_steps=30")
    assert _complete_steps(workdir) == [20, 30]
    return workdir


# --------------------------------------------------------------------------------------------
# 1. kill -9 at any moment
# --------------------------------------------------------------------------------------------


def test_kill9_mid_save_then_mid_training_then_rerun_equals_uninterrupted(reference, tmp_path):
    """Process 1 is killed while orbax writes a checkpoint (its tmp folder exists and stays
    behind), process 2 (the same command) after it has logged a step beyond anything process 1
    logged, process 3 runs to the end. Each rerun takes over the dead holder's lock with a
    warning and resumes from the newest complete checkpoint; the result is the reference run."""
    args = (f"--config.num_steps={NUM_STEPS}",)
    with _processes() as start:
        # ---- process 1: kill -9 during the save of step 20 or 30 ------------------------------
        for attempt in range(3):
            workdir = str(tmp_path / f"run{attempt}")
            p1 = start(workdir, *args)

            def mid_save(workdir=workdir):
                for name in _tmp_saves(workdir):
                    if int(name.split(".")[0]) in (20, 30):
                        return name
                return None

            saving = _poll(mid_save, p1, "a checkpoint save of step 20 or 30")
            if saving is None:  # the process ended without the poll seeing a save: retry
                continue
            _kill9(p1)
            if saving in _tmp_saves(workdir):  # the kill landed before orbax finished the save
                break
        else:
            pytest.fail("three attempts did not kill process 1 during a checkpoint save")
        saving_step = int(saving.split(".")[0])
        restored_1 = _complete_steps(workdir)[-1]
        assert restored_1 == saving_step - 10
        assert not os.path.exists(os.path.join(workdir, "summary.json"))
        # The row of the step being saved, or of the next one (saves are asynchronous: the
        # next chunk trains and logs while the save is written; its own save waits for this one).
        logged_1 = _metric_steps_on_disk(workdir)[-1]
        assert logged_1 in (saving_step, saving_step + 10)

        # ---- process 2: kill -9 after it logged a step process 1 never reached ----------------
        p2 = start(workdir, *args)
        past = _poll(
            lambda: any(s > logged_1 for s in _metric_steps_on_disk(workdir)),
            p2,
            f"a metrics row after step {logged_1}",
        )
        assert past, f"process 2 ended before being killed:\n{p2.communicate()}"
        out2, err2 = _kill9(p2)
        assert "Took over a stale lock" in err2 and f"pid {p1.pid} " in err2, err2
        assert "(no longer running)" in err2
        assert f"Resumed from the checkpoint at step {restored_1} " in out2
        assert not os.path.exists(os.path.join(workdir, "summary.json"))
        restored_2 = _complete_steps(workdir)[-1]

    # ---- process 3: the same command runs to the end -----------------------------------------
    p3 = _run(workdir, *args)
    assert "Took over a stale lock" in p3.stderr and f"pid {p2.pid} " in p3.stderr, p3.stderr
    assert f"Resumed from the checkpoint at step {restored_2} " in p3.stdout
    _assert_equals_reference(workdir, reference)
    assert open(os.path.join(workdir, ".lock")).read() == ""  # released, no holder recorded


# --------------------------------------------------------------------------------------------
# 2. A corrupt newest checkpoint
# --------------------------------------------------------------------------------------------


def _largest_array_file(step_dir: str) -> str:
    """The biggest OCDBT data file of the step's `state` item (it holds the array bytes)."""
    files = [
        os.path.join(root, name)
        for root, _, names in os.walk(os.path.join(step_dir, "state"))
        for name in names
        if os.path.basename(root) == "d"
    ]
    assert files, f"no OCDBT data files under {step_dir}"
    return max(files, key=os.path.getsize)


def _flip_one_byte(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)[0]
        f.seek(size // 2)
        f.write(bytes([byte ^ 0x01]))


def _truncate(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize(
    "corrupt, reason",
    [(_flip_one_byte, "checksum"), (_truncate, "unreadable")],
    ids=["flipped_byte", "truncated"],
)
def test_corrupt_newest_checkpoint_is_moved_aside_and_rerun_equals_uninterrupted(
    reference, half_run, tmp_path, corrupt, reason
):
    """One flipped byte (or a truncation) in an array file of the newest step (30) of a finished
    30-step run: the rerun with a larger `--config.num_steps` warns, moves the step aside (kept,
    renamed), resumes from step 20, saves 30 again and ends bitwise equal to the uninterrupted
    60-step run. The flipped byte lies in raw float32 data, which
    orbax itself would restore without complaint: the stored checksum is what catches it."""
    workdir = str(tmp_path / "run")
    shutil.copytree(half_run, workdir)
    step_dir = os.path.join(_ckdir(workdir), "30")
    corrupt(_largest_array_file(step_dir))
    damaged = tree_digest(step_dir)

    proc = _run(workdir, f"--config.num_steps={NUM_STEPS}")
    assert f"Checkpoint at step 30 in {_ckdir(workdir)} is unusable" in proc.stderr, proc.stderr
    assert ("checksum mismatch" in proc.stderr) == (reason == "checksum")
    assert "Traceback" not in proc.stderr
    assert "Resumed from the checkpoint at step 20 " in proc.stdout
    unusable = os.path.join(workdir, "checkpoints_unusable")
    assert os.listdir(unusable) == [f"30-{reason}"]
    kept = f"30-{reason}"
    assert tree_digest(os.path.join(unusable, kept)) == damaged  # moved as it was, not deleted
    _assert_equals_reference(workdir, reference)


# --------------------------------------------------------------------------------------------
# 3. One writer per workdir
# --------------------------------------------------------------------------------------------


def test_second_process_is_refused_while_the_first_finishes_normally(reference, tmp_path):
    """While process 1 holds the workdir (held still with SIGSTOP so that the moment lasts), the
    same command exits with status 2 and one line naming process 1's pid, changing nothing;
    process 1 then finishes as if alone. (A kill -9'd holder's lock is taken over in the kill
    test above.)"""
    workdir = str(tmp_path / "run")
    args = (f"--config.num_steps={NUM_STEPS}",)
    lock = os.path.join(workdir, ".lock")

    def holder() -> int | None:
        try:
            with open(lock) as f:
                text = f.read()
            return json.loads(text)["pid"] if text.endswith("\n") else None
        except (FileNotFoundError, ValueError):
            return None

    with _processes() as start:
        p1 = start(workdir, *args)
        assert _poll(holder, p1, "process 1 to take the lock") == p1.pid
        os.kill(p1.pid, signal.SIGSTOP)
        try:
            before = tree_digest(workdir)
            p2 = _run(workdir, *args, check=False)
            after = tree_digest(workdir)
        finally:
            os.kill(p1.pid, signal.SIGCONT)
        out1, err1 = p1.communicate(timeout=TIMEOUT)

    assert p2.returncode == 2, p2.stderr
    lines = p2.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p2.stderr, p2.stderr
    assert f"is in use by pid {p1.pid} on host" in lines[0], lines[0]
    assert p2.stdout == ""
    assert after == before  # the refused process changed nothing

    assert p1.returncode == 0, err1
    assert "Wrote" in out1 and "stale lock" not in err1
    _assert_equals_reference(workdir, reference)


# --------------------------------------------------------------------------------------------
# 4. A changed config on resume, through the CLI
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, field",
    [
        ("--config.model.d_kwargs.hidden=16", "model.d_kwargs.hidden: 32 → 16"),
        ("--config.seeds=2", "seeds: 1 → 2"),
    ],
    ids=["width", "seeds"],
)
def test_changed_config_is_refused_in_one_line_with_the_workdir_unchanged(
    half_run, tmp_path, flag, field
):
    """Through the CLI: exit status 2, one line naming the field (old → new) and the ways
    forward, no traceback, the workdir byte-identical; the larger `num_steps` passed alongside
    is not named (it may change). Width and seed count are the changes that used to end in an
    orbax traceback; the other fields (batch size, loss, coding) are refused by the same check,
    tested through the Python API in tests/test_trainers.py."""
    workdir = str(tmp_path / "run")
    shutil.copytree(half_run, workdir)
    before = tree_digest(workdir)
    proc = _run(workdir, f"--config.num_steps={NUM_STEPS}", flag, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert field in lines[0] and "--config.resume=False" in lines[0], lines[0]
    assert "num_steps:" not in lines[0]  # a larger num_steps is not a change that blocks resume
    assert proc.stdout == ""
    assert tree_digest(workdir) == before
