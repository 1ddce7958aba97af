"""Sweeps: point constructors, vectorized == sequential, printed commands run, clear errors."""

import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from lsgan_jax import sweep
from lsgan_jax.errors import ConfigError
from lsgan_jax.training.metrics_log import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_point_constructors():
    a = sweep.sweep("coding.a", [0.0, -1.0])
    lr = sweep.sweep("optim_g.lr", [1e-4, 1e-3, 1e-2])
    assert len(sweep.product(a, lr)) == 6
    assert sweep.product(a, lr)[1] == {"coding.a": 0.0, "optim_g.lr": 1e-3}
    z = sweep.zipit(a, sweep.sweep("coding.c", [1.0, 0.0]))
    assert z == [{"coding.a": 0.0, "coding.c": 1.0}, {"coding.a": -1.0, "coding.c": 0.0}]
    with pytest.raises(ValueError, match="equally long"):
        sweep.zipit(a, lr)
    pts = sweep.random_search({"optim_g.lr": ("log_uniform", 1e-5, 1e-2)}, 50, seed=1)
    lrs = np.array([p["optim_g.lr"] for p in pts])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1e-2 and len(set(lrs)) == 50
    assert pts == sweep.random_search({"optim_g.lr": ("log_uniform", 1e-5, 1e-2)}, 50, seed=1)


def _sweep():
    points = sweep.zipit(sweep.sweep("coding.a", [0.0, -1.0]), sweep.sweep("coding.c", [1.0, 0.0]))
    return sweep.Sweep(
        module="experiments.mixture",
        variant="smoke",
        points=points,
        overrides={"losses": ("lsgan",), "seeds": 2, "num_steps": 20},
    )


def test_vectorized_equals_sequential(tmp_path):
    vec = sweep.run(_sweep(), "vectorized", str(tmp_path / "vec"))
    seq = sweep.run(_sweep(), "sequential", str(tmp_path / "seq"))
    assert [e["group"] for e in vec["table"]] == [e["group"] for e in seq["table"]]
    assert len(vec["runs"]) == len(seq["runs"]) == 4
    # The same training losses, run by run: the vectorized program trains exactly the runs that
    # the sequential mode trains one point at a time.
    v = read_metrics(str(tmp_path / "vec" / "vectorized"))[-1]
    for i, point in enumerate(_sweep().points):
        s = read_metrics(str(tmp_path / "seq" / f"point{i:03d}"))[-1]
        group = sweep._group("lsgan", point)
        for key in ("d_loss", "g_loss", "g_grad_norm"):
            np.testing.assert_allclose(v[f"{group}/{key}"], s[f"lsgan/{key}"], rtol=1e-4)
    for name in ("sweep.json", "sweep.csv", "sweep.png"):
        assert os.path.getsize(tmp_path / "vec" / name) > 0
    table = json.load(open(tmp_path / "vec" / "sweep.json"))["table"]
    assert {"group", "num_runs", "modes_covered", "se", "success_rate"} <= set(table[0])


def test_commands_mode_prints_runnable_commands(tmp_path):
    out = sweep.run(_sweep(), "commands", str(tmp_path))
    cmds = out["commands"]
    assert len(cmds) == 2 and all("--config.coding.a=" in c for c in cmds)
    args = shlex.split(cmds[1])
    assert args[:2] == ["python", "-m"]
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, *args[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.load(open(tmp_path / "point001" / "summary.json"))
    assert summary["runs"][0]["coding"] == {"a": -1.0, "b": 1.0, "c": 0.0}


def test_non_traced_field_cannot_be_vectorized(tmp_path):
    sw = _sweep()
    sw.points = sweep.sweep("batch_size", [32, 64])
    with pytest.raises(ConfigError, match="cannot be vectorized"):
        sweep.run(sw, "vectorized", str(tmp_path))


def test_unknown_sweep_and_field_errors(tmp_path):
    with pytest.raises(ConfigError, match="codings_lr"):
        sweep.load_sweep("codings_lrr")
    sw = _sweep()
    sw.overrides["num_stepz"] = 3
    with pytest.raises(ConfigError, match="num_stepz"):
        sweep.run(sw, "sequential", str(tmp_path))


def test_shipped_sweeps_load():
    for name in ("codings_lr", "welfert_ring"):
        sw = sweep.load_sweep(name)
        assert sw.points and sw.module.startswith("experiments.")
