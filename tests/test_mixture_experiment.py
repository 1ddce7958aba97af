"""End to end: `python -m experiments.mixture` on its smoke variant, resume after a real SIGTERM,
non-finite stops, and clear errors for bad configs."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lsgan_jax.errors import NonFiniteError
from lsgan_jax.training import build, mixture_trainer
from lsgan_jax.training.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    env = dict(os.environ)
    env["XLA_FLAGS"] = os.environ.get("LSGAN_JAX_TEST_XLA_FLAGS", "")  # one CPU device
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _run(*args, check=True, timeout=300):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.mixture", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _final_state(workdir, config):
    states = build.build_mixture(config).states
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    state, meta, step = ckpt.restore_latest(states)
    ckpt.close()
    return state, meta, step


def _smoke_config(**overrides):
    from experiments import mixture

    config = mixture.get_config("smoke")
    for k, v in overrides.items():
        setattr(config, k, v)
    return config


def test_sigterm_then_resume_equals_uninterrupted(tmp_path):
    """The smoke study end to end in a fresh process (summary, figures, logs); then a real
    SIGTERM mid-run saves and exits 0, and rerunning resumes to bitwise-identical params."""
    steps = ["--config.num_steps=400", "--config.checkpoint_every=200"]
    full = str(tmp_path / "full")
    proc = _run("--variant=smoke", f"--workdir={full}", *steps)
    summary = json.load(open(os.path.join(full, "summary.json")))
    assert {r["loss"] for r in summary["runs"]} == {"lsgan", "nsgan"}
    assert len(summary["runs"]) == 4
    for row in summary["runs"]:
        for key in ("modes_covered", "high_quality", "reverse_kl", "seed"):
            assert key in row
        assert 0 <= row["modes_covered"] <= 8
    for loss in ("lsgan", "nsgan"):
        agg = summary["per_loss"][loss]
        assert set(agg["modes_covered"]) == {"mean", "se"}
        assert 0.0 <= agg["fraction_all_modes"] <= 1.0
    assert summary["protocol"]["num_modes"] == 8
    for name in ("mixture.png", "mode_curves.png", "metrics.jsonl", "history.json"):
        assert os.path.getsize(os.path.join(full, name)) > 0
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(full, "tb")))
    assert "lsgan" in proc.stdout and "modes" in proc.stdout
    rows = [json.loads(line) for line in open(os.path.join(full, "metrics.jsonl"))]
    assert rows[-1]["step"] == 400 and "lsgan/g_grad_norm" in rows[-1]

    cut = str(tmp_path / "cut")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments.mixture",
            "--variant=smoke",
            f"--workdir={cut}",
            *steps,
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = os.path.join(cut, "metrics.jsonl")
    deadline = time.monotonic() + 240
    while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "SIGTERM" in out
    assert not os.path.exists(os.path.join(cut, "summary.json"))
    stopped_at = Checkpointer(os.path.join(cut, "checkpoints")).latest_step()
    assert 0 < stopped_at < 400

    proc2 = _run("--variant=smoke", f"--workdir={cut}", *steps)
    assert f"Resumed from the checkpoint at step {stopped_at}" in proc2.stdout

    config = _smoke_config(num_steps=400, checkpoint_every=200)
    a, _, sa = _final_state(full, config)
    b, _, sb = _final_state(cut, config)
    assert sa == sb == 400
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    s_full = json.load(open(os.path.join(full, "summary.json")))
    s_cut = json.load(open(os.path.join(cut, "summary.json")))
    assert s_full["runs"] == s_cut["runs"]


def test_non_finite_stops_and_keeps_last_finite_checkpoint(tmp_path):
    """A study that diverges mid-run (SGD with a huge D learning rate, a checkpoint after every
    step) stops with one message naming the step and the newest checkpoint; every checkpoint on
    disk is finite (the state is checked before each save, not only the losses)."""
    wd = str(tmp_path / "nan")
    config = _smoke_config(num_steps=20, eval_every=1, checkpoint_every=1, snapshot_steps=(0,))
    config.keep_checkpoints = 20
    config.optim_d.name, config.optim_d.lr = "sgd", 1000.0
    with pytest.raises(NonFiniteError) as err:
        mixture_trainer.train(config, wd)
    ckpt = Checkpointer(os.path.join(wd, "checkpoints"))
    steps = ckpt.all_steps()
    assert steps, "the study should diverge after its first checkpoint (test precondition)"
    msg = str(err.value)
    assert f"The last finite checkpoint is step {steps[-1]}" in msg
    stopped = int(msg.split(" at step ")[1].split(".")[0])
    assert steps[-1] < stopped < 20
    like = build.build_mixture(config).states
    for step in steps:
        state, _ = ckpt.restore(step, like)
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state)), step
    ckpt.close()


def test_nan_policy_mark_keeps_other_runs(tmp_path):
    config = _smoke_config(num_steps=20, nan_policy="mark")
    config.optim_d.lr = float("inf")
    summary = mixture_trainer.train(config, str(tmp_path / "mark"))
    # Every run diverged, was recorded as such, and the study still ran to its end.
    assert summary["diverged_runs"] == sorted(r["run"] for r in summary["runs"])
    assert summary["protocol"]["steps"] == 20


def test_corrupt_latest_checkpoint_is_moved_aside_and_training_recovers(tmp_path):
    """A corrupt newest checkpoint is moved aside; the rerun continues from the previous one,
    saves that step again and ends bitwise equal to an uninterrupted run."""
    ref, wd = str(tmp_path / "ref"), str(tmp_path / "corrupt")
    mixture_trainer.train(_smoke_config(num_steps=60, checkpoint_every=20), ref)
    mixture_trainer.train(_smoke_config(num_steps=40, checkpoint_every=20), wd)
    ckdir = os.path.join(wd, "checkpoints")
    assert Checkpointer(ckdir).all_steps() == [20, 40]
    for root, _, files in os.walk(os.path.join(ckdir, "40", "state")):  # every array file
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"garbage")
    config = _smoke_config(num_steps=60, checkpoint_every=20)
    summary = mixture_trainer.train(config, wd)
    assert [n.split("-")[0] for n in os.listdir(ckdir + "_unusable")] == ["40"]
    a, _, sa = _final_state(ref, config)
    b, meta, sb = _final_state(wd, config)
    assert sa == sb == 60 and [h["step"] for h in meta["history"]][-1] == 60
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert summary["runs"] == json.load(open(os.path.join(ref, "summary.json")))["runs"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.num_stepz=3"], "Did you mean 'num_steps'"),
        (["--config.coding.b=0.0"], "fake label a equals the real label b"),
        (["--variant=smok"], "Did you mean 'smoke'"),
        (["--config.losses=('lsgam',)"], "lsgan"),
        (["--config.seeds=0"], "seeds=0"),
        (["--config.optim_d.name=adm"], "Did you mean 'adam'"),
    ],
)
def test_bad_config_input_fails_clearly(tmp_path, args, message):
    variant = [] if any(a.startswith("--variant") for a in args) else ["--variant=smoke"]
    proc = _run(*variant, f"--workdir={tmp_path}", *args, check=False)
    assert proc.returncode != 0
    if not any(a.startswith(("--variant", "--config.num_stepz")) for a in args):
        assert proc.returncode == 2 and "Traceback" not in proc.stderr  # a ConfigError
        assert not os.path.exists(tmp_path / "checkpoints")  # nothing was created
    tail = "\n".join((proc.stderr + proc.stdout).strip().splitlines()[-4:])
    assert message in tail, proc.stderr[-2000:]
