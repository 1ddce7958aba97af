"""Sweeps: point constructors, vectorized == sequential, the CSV / TensorBoard / plot outputs,
printed commands that run and aggregate, and overrides checked before anything runs."""

import csv
import glob
import json
import os
import shlex
import struct
import subprocess
import sys

import numpy as np
import pytest

from experiments import digits, mixture
from experiments import sweep as sweep_cli
from lsgan_jax import studies, sweep
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
        experiment=mixture,
        variant="smoke",
        points=points,
        overrides={"losses": ("lsgan",), "seeds": 2, "num_steps": 20},
    )


def _scalars(run_dir):
    """{tag: [(step, value)]} of the TensorBoard event files in `run_dir` (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    out = {}
    for path in glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


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
        group = studies.group_name("lsgan", point)
        for key in ("d_loss", "g_loss", "g_grad_norm"):
            np.testing.assert_allclose(v[f"{group}/{key}"], s[f"lsgan/{key}"], rtol=1e-4)
    for name in ("sweep.json", "sweep.csv", "sweep.png"):
        assert os.path.getsize(tmp_path / "vec" / name) > 0
    table = json.load(open(tmp_path / "vec" / "sweep.json"))["table"]
    assert {"group", "num_runs", "modes_covered", "se", "success_rate"} <= set(table[0])

    # CSV: one column per swept field, then the metrics; values match the per-run rows.
    with open(tmp_path / "vec" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    assert header[:3] == ["loss", "coding.a", "coding.c"]
    assert {"num_runs", "modes_covered", "se", "ci95_low", "ci95_high"} <= set(header)
    for row, point in zip(rows, _sweep().points, strict=True):
        assert float(row["coding.a"]) == point["coding.a"] and row["loss"] == "lsgan"
        runs = [
            r["modes_covered"]
            for r in vec["runs"]
            if r["coding"]["a"] == point["coding.a"] and r["coding"]["c"] == point["coding.c"]
        ]
        assert int(row["num_runs"]) == len(runs) == 2
        m, se = np.mean(runs), np.std(runs, ddof=1) / np.sqrt(2)
        np.testing.assert_allclose([float(row["modes_covered"]), float(row["se"])], [m, se])
        from scipy import stats

        half = stats.t.ppf(0.975, 1) * se
        np.testing.assert_allclose(float(row["ci95_high"]), m + half, rtol=1e-6, atol=1e-9)

    # TensorBoard: one run directory per group, the same tag names in each (they overlay), and
    # the values are that group's curves from the vectorized metrics.
    for mode in ("vec", "seq"):
        dirs = sorted(os.listdir(tmp_path / mode / "tb"))
        assert len(dirs) == 2, dirs
        tags = [set(_scalars(tmp_path / mode / "tb" / d)) for d in dirs]
        assert tags[0] == tags[1] and {"d_loss", "g_loss", "eval/modes_covered"} <= tags[0]
    metrics = read_metrics(str(tmp_path / "vec" / "vectorized"))
    for e in vec["table"]:
        group = studies.group_name("lsgan", {"coding.a": e["coding.a"], "coding.c": e["coding.c"]})
        got = _scalars(tmp_path / "vec" / "tb" / sweep._safe(e["group"]))["d_loss"]
        want = [(m["step"], m[f"{group}/d_loss"]) for m in metrics]
        assert [s for s, _ in got] == [s for s, _ in want]
        np.testing.assert_allclose([x for _, x in got], [x for _, x in want], rtol=1e-6)


def test_commands_mode_prints_runnable_commands_and_aggregates(tmp_path, capsys):
    out = sweep.run(_sweep(), "commands", str(tmp_path))
    cmds = out["commands"]
    assert len(cmds) == 2 and all("--config.coding.a=" in c for c in cmds)
    assert f"python -m experiments.sweep aggregate {tmp_path}" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="No point"):
        sweep.aggregate_workdir(str(tmp_path))
    args = shlex.split(cmds[1])
    assert args[:2] == ["python", "-m"]
    env = dict(os.environ)
    env["XLA_FLAGS"] = os.environ.get("LSGAN_JAX_TEST_XLA_FLAGS", "")  # one CPU device
    proc = subprocess.run(
        [sys.executable, *args[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.load(open(tmp_path / "point001" / "summary.json"))
    assert summary["runs"][0]["coding"] == {"a": -1.0, "b": 1.0, "c": 0.0}

    # `aggregate` (the CLI command the message names) on the finished subset of points.
    agg = sweep_cli.main(["aggregate", str(tmp_path)])
    assert agg["missing_points"] == [0] and len(agg["table"]) == 1
    entry = agg["table"][0]
    assert (entry["coding.a"], entry["coding.c"], entry["num_runs"]) == (-1.0, 0.0, 2)
    np.testing.assert_allclose(
        entry["modes_covered"], np.mean([r["modes_covered"] for r in summary["runs"]])
    )
    assert os.listdir(tmp_path / "tb") and os.path.getsize(tmp_path / "sweep.csv") > 0


def test_only_experiments_with_a_points_driver_vectorize(tmp_path):
    sw = sweep.Sweep(experiment=digits, variant="smoke", points=sweep.sweep("optim_g.lr", [1e-3]))
    with pytest.raises(ConfigError, match="no vectorized driver"):
        sweep.run(sw, "vectorized", str(tmp_path))
    assert sweep.validate(sw, "sequential").optim_g.lr == 2e-4  # the base config, checked
    sw.variant = "smok"
    with pytest.raises(ConfigError, match="Did you mean 'smoke'"):
        sweep.validate(sw, "sequential")


def test_non_traced_field_cannot_be_vectorized(tmp_path):
    sw = _sweep()
    sw.points = sweep.sweep("batch_size", [32, 64])
    with pytest.raises(ConfigError, match="cannot be vectorized"):
        sweep.run(sw, "vectorized", str(tmp_path))


def test_unknown_sweep_and_field_errors(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'codings_lr'"):
        sweep_cli.load_sweep("codings_lrr")
    sw = _sweep()
    sw.overrides["num_stepz"] = 3
    with pytest.raises(ConfigError, match="Did you mean 'num_steps'"):
        sweep.run(sw, "sequential", str(tmp_path))
    sw = _sweep()
    sw.points = sweep.sweep("coding.aa", [0.0])
    with pytest.raises(ConfigError, match="sweep point 0.*Did you mean 'coding.a'"):
        sweep.run(sw, "commands", str(tmp_path))
    with pytest.raises(ConfigError, match="Did you mean 'commands'"):
        sweep.run(_sweep(), "comands", str(tmp_path))
    assert not os.listdir(tmp_path)  # nothing was written


def test_cli_overrides_are_checked_before_anything_prints(tmp_path, capsys):
    wd = str(tmp_path / "w")
    with pytest.raises(SystemExit) as e:
        sweep_cli.main(["codings_lr", "--mode=commands", f"--workdir={wd}", "--config.num_stps=5"])
    assert e.value.code == 2
    out = capsys.readouterr()
    assert "Did you mean 'num_steps'" in out.err and out.out == "" and not os.path.exists(wd)
    with pytest.raises(SystemExit):
        sweep_cli.main(["codings_lr", "--mode=commands", f"--workdir={wd}", "--config.seeds=x"])
    assert "not a valid int" in capsys.readouterr().err
    # The same --config.field=value syntax and typing as the experiments.
    out = sweep_cli.main(
        ["codings_lr", "--mode=commands", f"--workdir={wd}", "--config.num_steps=100",
         "--config.losses=('lsgan',)"]
    )  # fmt: skip
    assert len(out["commands"]) == 9  # 3 codings x 3 learning rates (x 3 seeds each)
    assert all("--config.num_steps=100" in c for c in out["commands"])
    manifest = json.load(open(os.path.join(wd, sweep.MANIFEST)))
    assert manifest["overrides"]["num_steps"] == 100 and manifest["experiment"] == mixture.__name__


def test_shipped_sweeps_load():
    assert {"codings_lr", "welfert_ring"} <= set(sweep_cli.available())
    for name in ("codings_lr", "welfert_ring"):
        sw = sweep_cli.load_sweep(name)
        assert sw.points and sw.experiment.__name__.startswith("experiments.")
        sweep.validate(sw, "vectorized")
