"""The trainers' run guarantees: config validation before anything is created, config-checked
resume that leaves a refused workdir byte-identical, a finished run that writes nothing new, and
one teardown on every exit path (real trainers on tiny configs, no mocks)."""

import json
import os

import pytest
from workdir_digest import tree_digest

from lsgan_jax.errors import ConfigError
from lsgan_jax.training import image_trainer, mixture_trainer


def _mixture(**overrides):
    from experiments import mixture

    config = mixture.get_config("smoke")
    config.seeds, config.num_steps, config.snapshot_steps = 1, 20, (0, 20)
    for path, value in overrides.items():
        node, *rest = path.split("__")
        if rest:
            config[node][rest[0]] = value
        else:
            config[node] = value
    return config


def _digits(tmp_path, monkeypatch, **overrides):
    from experiments import digits

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    config = digits.get_config("smoke")
    config.runner = "single"
    config.num_steps, config.log_every, config.sample_every, config.checkpoint_every = 4, 2, 4, 2
    config.eval_every = 0
    config.update(overrides)
    return config


def _open_files_under(path) -> list[str]:
    path = os.path.realpath(path)
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(path + os.sep):
            found.append(target)
    return found


# --------------------------------------------------------------------------------------------
# Validation: one line, before anything exists
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"optim_d__lr": float("nan")}, "optim_d.lr=nan; a learning rate must be a number >= 0"),
        ({"optim_g__lr": -1e-3}, "optim_g.lr=-0.001"),
        ({"seeds": 0}, "seeds=0; give a number of seeds >= 1"),
        ({"losses": ()}, "losses is empty"),
        ({"optim_g__name": "adm"}, "optim_g.name='adm' is not known. Did you mean 'adam'?"),
        ({"update_mode": "simultanous"}, "Did you mean 'simultaneous'?"),
        ({"nan_policy": "mrak"}, "Did you mean 'mark'?"),
        ({"data__name": "rign"}, "Did you mean 'ring'?"),
        ({"model__g": "mixture_mlp"}, "model.g: Unknown model name 'mixture_mlp'"),
        ({"keep_checkpoints": 0}, "keep_checkpoints must be >= 1, got 0"),
        ({"model__d_kwargs": {"hiden": 8}}, "takes no 'hiden'. Did you mean 'hidden'?"),
        ({"eval_every": 3}, "num_steps=20 must be a multiple of eval_every=3"),
    ],
)
def test_mixture_config_mistakes_are_one_line_before_anything_is_created(
    tmp_path, overrides, message
):
    wd = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        mixture_trainer.train(_mixture(**overrides), str(wd))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not wd.exists()


def test_mixture_sweep_point_with_a_bad_value_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"run lsgan\[optim_d.lr=-1\]/seed0: optim_d.lr=-1"):
        mixture_trainer.train(_mixture(), str(tmp_path / "run"), points=[{"optim_d.lr": -1.0}])
    assert not (tmp_path / "run").exists()


def test_workdir_that_is_a_file_or_below_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    for wd in (afile, afile / "run"):
        with pytest.raises(ConfigError, match="choose another --workdir"):
            mixture_trainer.train(_mixture(), str(wd))
    assert afile.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_unwritable_workdir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="choose another --workdir"):
        mixture_trainer.train(_mixture(), str(ro / "run"))


def test_images_that_do_not_fit_the_model(tmp_path, monkeypatch):
    """The dataset's images (size from data.image_size, channels from the dataset) must be
    what the models take; otherwise one line before training, with nothing created."""
    wd = tmp_path / "run"
    config = _digits(tmp_path, monkeypatch)
    config.data.image_size = 16
    with pytest.raises(ConfigError, match="digits gives 16x16x1 images but the discriminator"):
        image_trainer.train(config, str(wd))
    config = _digits(tmp_path, monkeypatch)
    config.model.g_kwargs = {**config.model.g_kwargs, "channels": 3}
    config.model.d_kwargs = {**config.model.d_kwargs, "channels": 3}
    with pytest.raises(
        ConfigError, match="gives 32x32x1 images but the discriminator takes 32x32x3"
    ):
        image_trainer.train(config, str(wd))
    for field, value, message in [
        ("runner", "singel", "Did you mean 'single'?"),
        ("loss", "lsgam", "Did you mean 'lsgan'?"),
        ("keep_checkpoints", 0, "keep_checkpoints must be >= 1"),
    ]:
        config = _digits(tmp_path, monkeypatch, **{field: value})
        with pytest.raises(ConfigError, match=message):
            image_trainer.train(config, str(wd))
    assert not wd.exists()


# --------------------------------------------------------------------------------------------
# Config-checked resume
# --------------------------------------------------------------------------------------------


def test_mixture_resume_is_config_checked(tmp_path, capsys):
    """A changed batch size / width / loss / seed count / coding is refused naming the field,
    with the workdir byte-identical; more steps resume; a finished run writes nothing new;
    fewer steps than the checkpoint are refused; resume=False moves the old run aside."""
    wd = str(tmp_path / "run")
    first = mixture_trainer.train(_mixture(), wd)
    assert first["config"]["num_steps"] == 20 and first["config"]["batch_size"] == 64
    stored = json.load(open(os.path.join(wd, "config.json")))
    assert stored["losses"] == ["lsgan", "nsgan"] and stored["model"]["d_kwargs"] == {"hidden": 32}
    before = tree_digest(wd)
    for overrides, field in [
        ({"batch_size": 32}, "batch_size: 64 → 32"),
        ({"model__d_kwargs": {"hidden": 16}}, "model.d_kwargs.hidden: 32 → 16"),
        ({"losses": ("lsgan",)}, 'losses: ["lsgan", "nsgan"] → ["lsgan"]'),
        ({"seeds": 2}, "seeds: 1 → 2"),
        ({"coding__a": -1.0}, "coding.a: 0.0 → -1.0"),
    ]:
        with pytest.raises(ConfigError) as err:
            mixture_trainer.train(_mixture(**overrides), wd)
        msg = str(err.value)
        assert field in msg and "--config.resume=False" in msg and "another --workdir" in msg
        assert tree_digest(wd) == before, overrides

    # A finished run: the stored summary, nothing written (no extra rows, no new files).
    assert mixture_trainer.train(_mixture(), wd) == json.load(
        open(os.path.join(wd, "summary.json"))
    )
    assert tree_digest(wd) == before

    # More steps (and another checkpoint cadence) resume from step 20.
    capsys.readouterr()
    longer = mixture_trainer.train(_mixture(num_steps=40, checkpoint_every=20), wd)
    assert "Resumed from the checkpoint at step 20" in capsys.readouterr().out
    assert longer["protocol"]["steps"] == 40 and longer["config"]["num_steps"] == 40
    steps = [json.loads(line)["step"] for line in open(os.path.join(wd, "metrics.jsonl"))]
    assert steps == sorted(set(steps)) and steps[-1] == 40  # every step once

    # Fewer steps than the checkpoint: refused, nothing written.
    before = tree_digest(wd)
    with pytest.raises(ConfigError, match="num_steps=20 is below the checkpoint's step 40"):
        mixture_trainer.train(_mixture(), wd)
    assert tree_digest(wd) == before

    # An explicit fresh start moves the old run aside (kept, not deleted).
    fresh = mixture_trainer.train(_mixture(resume=False, batch_size=32), wd)
    assert fresh["config"]["batch_size"] == 32
    aside = [p for p in os.listdir(tmp_path) if p.startswith("run.old-")]
    assert len(aside) == 1
    assert json.load(open(tmp_path / aside[0] / "summary.json")) == json.loads(json.dumps(longer))


def test_image_finished_rerun_writes_nothing_and_changed_loss_is_refused(tmp_path, monkeypatch):
    calls = []

    def evaluator(generate, step):
        calls.append(step)
        return {"score": float(step)}

    wd = str(tmp_path / "run")
    config = _digits(tmp_path, monkeypatch)
    summary = image_trainer.train(config, wd, evaluators={"toy": evaluator})
    assert calls == [4] and summary["final"] == {"step": 4, "toy/score": 4.0}
    assert summary["config"]["resume"] is True
    before = tree_digest(wd)
    again = image_trainer.train(config, wd, evaluators={"toy": evaluator})
    assert again == json.load(open(os.path.join(wd, "summary.json")))
    assert calls == [4] and tree_digest(wd) == before  # no extra evaluation row, nothing rewritten
    config.loss = "nsgan"
    with pytest.raises(ConfigError, match='loss: "lsgan" → "nsgan"'):
        image_trainer.train(config, wd)
    assert tree_digest(wd) == before


# --------------------------------------------------------------------------------------------
# One teardown on every exit path
# --------------------------------------------------------------------------------------------


def test_teardown_when_an_evaluator_raises(tmp_path, monkeypatch):
    """An exception from inside the loop closes the metric writer, TensorBoard, the checkpoint
    manager (its pending save completes) and the workdir lock; the run then resumes."""

    def broken(generate, step):
        raise RuntimeError("evaluator failed")

    wd = str(tmp_path / "run")
    config = _digits(tmp_path, monkeypatch, eval_every=3, checkpoint_every=1)
    with pytest.raises(RuntimeError, match="evaluator failed"):
        image_trainer.train(config, wd, evaluators={"toy": broken})
    assert _open_files_under(wd) == []  # metrics.jsonl, tb events, .lock all closed
    ckdir = os.path.join(wd, "checkpoints")
    assert sorted(os.listdir(ckdir)) == ["1", "2"]  # complete saves only, no orbax tmp dirs
    assert open(os.path.join(wd, ".lock")).read() == ""  # released: no holder recorded
    summary = image_trainer.train(config, wd, evaluators={"toy": lambda g, s: {"ok": 1.0}})
    assert summary["steps"] == 4 and summary["final"] == {"step": 4, "toy/ok": 1.0}
    steps = [json.loads(line)["step"] for line in open(os.path.join(wd, "metrics.jsonl"))]
    # The killed run's row at 2, then the resumed segment: evaluation at 3, train + eval at 4.
    assert steps == [2, 3, 4, 4]
