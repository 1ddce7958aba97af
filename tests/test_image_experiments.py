"""Image experiments end to end: digits through the real pipeline, exact resume after a real
SIGTERM, non-finite stops, and clear errors for missing datasets."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lsgan_jax import evaluators as evaluators_lib
from lsgan_jax.errors import ConfigError, NonFiniteError
from lsgan_jax.training import build, image_trainer, runners
from lsgan_jax.training.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(tmp_path):
    env = dict(os.environ)
    env["XLA_FLAGS"] = os.environ.get("LSGAN_JAX_TEST_XLA_FLAGS", "")  # one CPU device
    env["JAX_PLATFORMS"] = "cpu"
    env["TFDS_DATA_DIR"] = str(tmp_path / "tfds")
    return env


def _cmd(module, *args):
    return [sys.executable, "-m", module, *args]


def _run(tmp_path, module, *args, check=True):
    proc = subprocess.run(
        _cmd(module, *args),
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return proc


def _restore(workdir, config):
    state = build.build_image(config, axis_name=None, num_classes=10).state
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    out = ckpt.restore_latest(state)
    ckpt.close()
    return out


def test_digits_smoke_then_sigterm_then_resume_is_bitwise_exact(tmp_path):
    """The digits smoke variant end to end in a fresh process (summary, sample grids, metrics),
    then the same run stopped by a real SIGTERM and resumed: bitwise the uninterrupted state."""
    from experiments import digits

    steps = ["--variant=smoke", "--config.num_steps=120", "--config.checkpoint_every=40"]
    full = tmp_path / "full"
    proc = _run(tmp_path, "experiments.digits", *steps, f"--workdir={full}")
    summary = json.load(open(full / "summary.json"))
    assert summary["steps"] == 120 and summary["devices"] == 1
    assert summary["steps_per_s"] > 0
    assert (full / "samples.png").stat().st_size > 0
    every = digits.get_config("smoke").sample_every
    want = [f"step_{s:07d}.png" for s in range(every, 121, every)]
    assert sorted(os.listdir(full / "samples")) == want and len(want) > 1
    rows = [r for r in map(json.loads, open(full / "metrics.jsonl")) if "d_loss" in r]
    assert rows[-1]["step"] == 120 and np.isfinite(rows[-1]["d_loss"])
    assert "digits: 120 steps" in proc.stdout

    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        _cmd("experiments.digits", *steps, f"--workdir={cut}"),
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = cut / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and metrics.stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "SIGTERM" in out
    stopped = Checkpointer(str(cut / "checkpoints")).latest_step()
    assert 0 < stopped < 120

    again = _run(tmp_path, "experiments.digits", *steps, f"--workdir={cut}")
    assert f"Resumed from the checkpoint at step {stopped}" in again.stdout

    config = digits.get_config("smoke")
    config.num_steps = 120
    a, _, sa = _restore(str(full), config)
    b, _, sb = _restore(str(cut), config)
    assert sa == sb == 120
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_non_finite_state_is_never_checkpointed(tmp_path, monkeypatch):
    """Checkpoints every 2 steps, finiteness of the losses checked every 6: D's SGD step with a
    huge learning rate makes the state NaN after step 2; the save at step 4 is refused and the
    stop names the last finite checkpoint (step 2), which is finite on disk."""
    from experiments import digits

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    config = digits.get_config("smoke")
    config.runner = "single"
    config.num_steps, config.log_every, config.checkpoint_every = 12, 6, 2
    config.optim_d.name, config.optim_d.lr = "sgd", 10.0
    wd = str(tmp_path / "nan")
    with pytest.raises(NonFiniteError, match="step 4") as err:
        image_trainer.train(config, wd)
    assert "the last finite checkpoint is step 2" in str(err.value)
    ckpt = Checkpointer(os.path.join(wd, "checkpoints"))
    assert ckpt.all_steps() == [2]
    state, _ = ckpt.restore(2, build.build_image(config, axis_name=None, num_classes=10).state)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state))
    ckpt.close()


def test_data_parallel_runner_on_fake_devices(tmp_path, monkeypatch):
    """The image trainer on 8 fake devices (shard_map, synced BatchNorm) runs and logs."""
    from experiments import digits

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    config = digits.get_config("smoke")
    config.num_steps = 4
    config.runner = "data_parallel"
    summary = image_trainer.train(config, str(tmp_path / "dp"))
    assert summary["runner"] == "data_parallel" and summary["devices"] == jax.device_count()
    config.batch_size = 12
    with pytest.raises(ValueError, match="does not divide across 8 devices"):
        image_trainer.train(config, str(tmp_path / "dp2"))
    assert runners.DATA_AXIS == "data"


def test_missing_dataset_is_a_clear_error(tmp_path):
    proc = _run(
        tmp_path,
        "experiments.digits",
        "--variant=smoke",
        f"--workdir={tmp_path / 'x'}",
        "--config.data.name=mnist",
        "--config.evals=()",  # the digits evaluator would refuse mnist before the data is read
        check=False,
    )
    assert proc.returncode == 2
    assert "prepare" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "module,runner",
    [("mnist", "single"), ("cifar10", "single"), ("celeba", "single"), ("lsun", "single"),
     ("conditional", "auto")],
)  # fmt: skip
def test_catalog_experiments_on_mock_data(tmp_path, module, runner):
    """Each catalog experiment's `main` on its smoke variant, with TFDS's mock data (no TF).

    One device, except the conditional model, which also takes its labels across the 8-device
    mesh (the default runner here); the data-parallel runner has its own tests below."""
    import importlib

    import tensorflow_datasets as tfds

    mod = importlib.import_module(f"experiments.{module}")
    config = mod.get_config("smoke")
    config.runner = runner
    wd = tmp_path / module
    with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
        summary = mod.main(config, str(wd))
    assert summary["steps"] == config.num_steps
    assert (wd / "samples.png").stat().st_size > 0
    rows = [json.loads(x) for x in open(wd / "metrics.jsonl")]
    assert all(np.isfinite(r["d_loss"]) for r in rows)


def test_lsun_scene_selects_dataset():
    from experiments import lsun

    config = lsun.get_config("default")
    config.scene = "bedroom"
    assert lsun.resolve(config).data.name == "lsun/bedroom"
    config = lsun.get_config("default")
    config.scene = "bedrooms"
    with pytest.raises(ValueError, match="bedroom"):
        lsun.resolve(config)


def test_bfloat16_compute_keeps_float32_params(tmp_path, monkeypatch):
    from experiments import digits

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    config = digits.get_config("smoke")
    config.num_steps = 3
    config.compute_dtype = "bfloat16"
    summary = image_trainer.train(config, str(tmp_path / "bf16"))
    assert summary["steps"] == 3
    state = build.build_image(config, axis_name=None, num_classes=10).state
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.g_params))
    config.compute_dtype = "float16"
    with pytest.raises(ValueError, match="bfloat16"):
        build.validate_image(config)


def test_in_loop_evaluation_schedule_best_and_final(tmp_path, monkeypatch):
    """Evaluators run every `eval_every` steps and at the end (0: only at the end); summary.json
    keeps the final value and the best one in each metric's direction."""
    from experiments import digits

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    calls = []

    def evaluator(generate, step):
        x = np.asarray(generate(jax.numpy.zeros((2, config.model.g_kwargs["latent_dim"])), None))
        calls.append(step)
        assert x.shape[0] == 2 and np.all(np.isfinite(x))
        return {"fid": abs(step - 4.0), "coverage": step / 10.0}

    config = digits.get_config("smoke")
    config.runner = "single"
    config.num_steps, config.eval_every = 6, 2
    summary = image_trainer.train(config, str(tmp_path / "every2"), evaluators={"toy": evaluator})
    assert calls == [2, 4, 6]
    assert summary["final"] == {"step": 6, "toy/fid": 2.0, "toy/coverage": 0.6}
    assert summary["best"]["toy/fid"] == {"value": 0.0, "step": 4}
    assert summary["best"]["toy/coverage"] == {"value": 0.6, "step": 6}
    on_disk = json.load(open(tmp_path / "every2" / "summary.json"))
    assert on_disk["best"] == summary["best"]

    calls.clear()
    config.eval_every = 0
    image_trainer.train(config, str(tmp_path / "end_only"), evaluators={"toy": evaluator})
    assert calls == [6]
    config.eval_every = -1
    with pytest.raises(ValueError, match="eval_every must be >= 0"):
        image_trainer.train(config, str(tmp_path / "bad"), evaluators={"toy": evaluator})


def test_inception_evaluator_in_loop_with_cached_reference(tmp_path, monkeypatch):
    """`config.evals=("inception",)`: FID/KID/IS every `eval_every` steps and at the end, real
    statistics cached per dataset/resolution/split/n and reused, the protocol in summary.json.
    Random Inception weights (the real ones cannot be downloaded here): the numbers mean
    nothing, the protocol says so."""
    from experiments import digits, image_common
    from lsgan_jax.evaluators import inception as fid_evaluator
    from lsgan_jax.metrics import image_metrics
    from lsgan_jax.metrics.inception import WEIGHTS_RANDOM

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    config = digits.get_config("smoke")
    config.runner = "single"  # (the evaluators see the same `generate` on every runner)
    config.num_steps, config.eval_every = 4, 2
    config.evals = ("inception",)
    config.num_eval_samples = 12
    config.fid.update(
        weights="random", num_real=16, batch_size=6, kid_real=12,
        kid_subset_size=6, kid_subsets=3, is_splits=2, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    evaluators = evaluators_lib.make_evaluators(config)
    summary = image_common.run(config, str(tmp_path / "run"), evaluators=evaluators)
    evals = summary["evals"]
    assert [e["step"] for e in evals] == [2, 4]
    for key in ("inception/fid", "inception/kid", "inception/kid_std", "inception/is"):
        assert np.isfinite(evals[-1][key]), key
    assert evals[-1]["inception/fid"] > 0 and evals[-1]["inception/is"] >= 1.0
    assert summary["best"]["inception/fid"]["value"] == min(e["inception/fid"] for e in evals)
    proto = json.load(open(tmp_path / "run" / "summary.json"))["protocols"]["inception"]
    assert proto["weights"] == WEIGHTS_RANDOM and proto["n_real"] == 16
    assert proto["n_fake"] == 12 and proto["split"] == "train" and "bilinear" in proto["resize"]
    assert proto["kid"]["subset_size"] == 6

    # The reference statistics are cached: a second evaluator does not read the dataset.
    stats = list((tmp_path / "cache" / "fid_stats").glob("digits_32px_n16_train_*.npz"))
    assert len(stats) == 2  # statistics + the real features kept for KID
    ev = fid_evaluator.InceptionEvaluator(
        evaluators["inception"].extractor,  # (reused: building one compiles the network)
        lambda: pytest.fail("the cached statistics should have been used"),
        reference_name="digits_32px_n16", split="train", num_fake=12,
        latents=np.zeros((12, config.model.g_kwargs["latent_dim"]), np.float32),
        kid_real=12, kid_subset_size=6, kid_subsets=3, is_splits=2,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert ev.reference.n == 16 and ev.real_kid.shape == (12, 2048)
    ref = image_metrics.load_reference_stats(
        "digits_32px_n16", "train", space=ev.space, cache_dir=str(tmp_path / "cache")
    )
    np.testing.assert_allclose(ref.mu, ev.reference.mu)

    config.evals = ("inceptoin",)
    with pytest.raises(ValueError, match="Did you mean 'inception'"):
        image_common.run(config, str(tmp_path / "bad"))
    config.evals = ("inception",)
    config.fid.weights = str(tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="does not exist"):  # a ValueError: one line at the CLI
        image_common.run(config, str(tmp_path / "noweights"))
    # The trainer builds config.evals' evaluators before anything is written.
    assert not (tmp_path / "bad").exists() and not (tmp_path / "noweights").exists()


def test_n_d_takes_a_fresh_real_batch_per_d_update_on_every_runner(tmp_path, monkeypatch):
    """n_d = 2: the trainer stacks two iterator batches (n_d, B, ...). On one device the run is
    deterministic, so reusing one batch for both D updates (`reuse_real_batch=True`, the old
    behaviour) must give another state; the data-parallel runner splits the stacked batches'
    example axis across 8 devices (the n_d axis does not divide by 8) and logs the same losses.
    Parameters agree only to Adam's first-step noise (±lr for gradients that are ~0)."""
    from experiments import digits
    from lsgan_jax.training.metrics_log import read_metrics

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))

    def run(name, **overrides):
        config = digits.get_config("smoke")
        config.update(num_steps=2, n_d=2, checkpoint_every=2, sample_every=2, evals=())
        config.update(log_every=1, **overrides)
        image_trainer.train(config, str(tmp_path / name))
        state, _meta, step = _restore(str(tmp_path / name), config)
        assert step == 2
        rows = read_metrics(str(tmp_path / name))
        losses = [[r["d_loss"], r["g_loss"]] for r in rows if "d_loss" in r]
        return [np.asarray(x, np.float64) for x in jax.tree.leaves(state)], np.asarray(losses)

    single, single_losses = run("single", runner="single")
    parallel, parallel_losses = run("dp", runner="data_parallel")
    assert single_losses.shape == (2, 2)
    np.testing.assert_allclose(parallel_losses, single_losses, rtol=1e-3)
    for a, b in zip(single, parallel, strict=True):  # 2 steps x 2 D updates x 2 lr (sign flips)
        np.testing.assert_allclose(a, b, atol=8 * 2e-4)
    reused, _ = run("reuse", runner="single", reuse_real_batch=True)
    assert any(not np.array_equal(a, b) for a, b in zip(single, reused, strict=True))


def test_missing_fid_weights_file_is_one_clear_error(tmp_path):
    """`evals=("inception",)` with a weights path that does not exist: exit 2, the message says
    how to get the file, no traceback, and no workdir is created (evaluators are built first)."""
    wd = tmp_path / "run"
    proc = _run(
        tmp_path,
        "experiments.digits",
        "--variant=smoke",
        f"--workdir={wd}",
        "--config.evals=('inception',)",
        f"--config.fid.weights={tmp_path / 'missing.pth'}",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "does not exist" in proc.stderr and "curl -L" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not wd.exists()
