"""The sequential study driver (`lsgan_jax.studies.run_sequential`) with the real image trainer,
the seed lists, and the interval formatting of the study tables."""

import os

import ml_collections
import numpy as np
import pytest
from PIL import Image
from scipy import stats

from lsgan_jax import studies, viz
from lsgan_jax.errors import ConfigError
from lsgan_jax.training import image_trainer


def test_seed_list():
    assert studies.seed_list(ml_collections.ConfigDict({"seeds": 3})) == [0, 1, 2]
    assert studies.seed_list(ml_collections.ConfigDict({"seeds": (4, 9)})) == [4, 9]
    with pytest.raises(ConfigError, match="count"):
        studies.seed_list(ml_collections.ConfigDict({"seeds": "3"}))


def test_interval_formatting_matches_scipy():
    v = [3.0, 5.0, 8.0, 4.0]
    lo, hi = stats.t.interval(0.95, len(v) - 1, np.mean(v), stats.sem(v))
    assert studies.fmt_mean_ci(v, 3) == f"{np.mean(v):.3f} [{lo:.3f}, {hi:.3f}]"
    assert studies.fmt_mean_ci([2.5, None, float("nan")], 1) == "2.5"  # one finite value
    assert studies.fmt_mean_ci([]) == "n/a"
    ci = stats.binomtest(3, 10).proportion_ci(method="wilson")
    assert studies.fmt_rate_ci(3, 10) == f"3/10 [{ci.low:.2f}, {ci.high:.2f}]"


def test_intervals_are_cut_to_the_quantity_range():
    """Two seeds of a non-negative quantity (an FD): the t interval reaches below zero, and the
    interval within bounds is scipy's cut there, the upper end unchanged."""
    v = [2.0, 30.0]
    lo, hi = stats.t.interval(0.95, 1, np.mean(v), stats.sem(v))
    assert lo < 0
    assert studies.mean_interval(v) == (np.mean(v), (lo, hi))
    assert studies.mean_interval(v, (0.0, np.inf)) == (np.mean(v), (0.0, hi))
    assert studies.fmt_mean_ci(v, 1, bounds=(0.0, np.inf)) == f"16.0 [0.0, {hi:.1f}]"
    mean, (a, b) = studies.mean_interval([0.2, 0.9], (0.0, 1.0))  # a fraction: both ends cut
    assert (a, b) == (0.0, 1.0) and mean == pytest.approx(0.55)


def test_run_sequential_keeps_arrays_and_goes_on_after_divergence(tmp_path, monkeypatch):
    from experiments import digits

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    config = digits.get_config("smoke")
    config.update(num_steps=2, log_every=1, sample_every=2, checkpoint_every=2, evals=())
    bad = ml_collections.ConfigDict(config.to_dict())
    bad.optim_g.lr = bad.optim_d.lr = float("inf")  # NaN parameters after the first step
    runs = [
        studies.SequentialRun("nan", {"name": "nan"}, bad, str(tmp_path / "nan")),
        studies.SequentialRun("ok", {"name": "ok"}, config, str(tmp_path / "ok")),
    ]
    result = studies.run_sequential(runs, train=image_trainer.train)
    assert result.preempted is None
    nan, ok = result.rows
    assert nan["diverged"] and nan["name"] == "nan" and nan["final"] == {}
    assert not ok["diverged"] and ok["seed"] == config.seed and ok["workdir"] == runs[1].workdir
    assert result.samples["nan"] == [None]  # stopped before any evaluation
    # Without an evaluator the driver keeps the final samples of the fixed grid latents as
    # arrays (eval_seed == sample_seed in the digits config): their grid is exactly the PNG the
    # trainer wrote, so no grid needs to be cut back out of a PNG.
    (samples,) = result.samples["ok"]
    assert samples.shape == (config.num_samples, 32, 32, 1) and samples.dtype == np.float32
    assert config.eval_seed == config.sample_seed
    png = np.asarray(Image.open(os.path.join(runs[1].workdir, "samples.png")))
    np.testing.assert_array_equal(viz.image_grid(samples)[..., 0], png)
    # viz grids: one row per run, padded with white to the row length.
    grid = viz.sample_rows([samples[:3], None, samples[:5]], ncol=4)
    assert grid.shape == (2 * 33 + 1, 4 * 33 + 1, 1)
    assert (grid[1:33, 3 * 33 + 1 : 4 * 33] == 255).all()
    path = viz.save_overview({"ok": grid, "none": None}, {"ok": "t"}, str(tmp_path / "o.png"))
    assert path and os.path.getsize(path) > 0
