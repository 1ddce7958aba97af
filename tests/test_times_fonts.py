"""The re-created TPAMI small-variance sets: shapes, determinism, the TFDS builder and pipeline,
and that a classifier tells the classes apart."""

import numpy as np
import pytest

from lsgan_jax.data import images, times_fonts


@pytest.fixture(scope="module")
def small():
    return {kind: times_fonts.render_dataset(kind, 30, seed=0) for kind in times_fonts.KINDS}


def test_shapes_labels_and_range(small):
    for kind, (x, y) in small.items():
        assert x.shape == (300, 28, 28, 1) and x.dtype == np.uint8, kind
        np.testing.assert_array_equal(np.bincount(y), [30] * 10)
        assert x.max() == 255 and np.median(x) == 0  # white digit on black
        # The digit stays inside the frame: the outermost pixels are (almost) black.
        border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
        assert (border > 64).mean() < 0.01, kind


def test_deterministic_in_seed_and_kind(small):
    x, _ = small["shift"]
    again, _ = times_fonts.render_dataset("shift", 30, seed=0)
    np.testing.assert_array_equal(x, again)
    other, _ = times_fonts.render_dataset("shift", 30, seed=1)
    assert not np.array_equal(x, other)
    assert not np.array_equal(x, small["shift_rotate"][0])
    _, _, angles = times_fonts.draw_transforms("shift", 30, 0)
    assert not angles.any()
    _, shifts, angles = times_fonts.draw_transforms("shift_rotate", 30, 0)
    assert np.abs(shifts).max() <= times_fonts.SHIFT and np.abs(angles).max() <= times_fonts.ROTATE
    assert np.abs(angles).max() > times_fonts.ROTATE / 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        times_fonts.render_dataset("rotate", 3)
    with pytest.raises(ValueError, match="digit"):
        times_fonts.render_digit(10)


def test_builder_writes_array_record(tmp_path, small):
    builder = times_fonts.times_builder("shift_rotate", data_dir=str(tmp_path), num_per_class=30)
    assert "shift_rotate_n30_seed0_" in builder.builder_config.name
    builder.download_and_prepare()
    source = builder.as_data_source(split="train")
    assert len(source) == 300
    # The same images and labels as rendering in memory (TFDS stores them shuffled).
    x, y = small["shift_rotate"]
    stored = [(int(r["label"]), np.asarray(r["image"]).tobytes()) for r in source]
    assert sorted(stored) == sorted(zip(y.tolist(), [im.tobytes() for im in x], strict=True))


def test_registered_and_iterable(tmp_path):
    spec = images.get_spec("times_shift")
    assert spec.offline and spec.num_classes == 10 and spec.image_size == 28
    it = images.make_iterator(
        "times_shift", global_batch=16, image_size=28, seed=0, data_dir=str(tmp_path)
    )
    batch = next(it)
    assert batch["image"].shape == (16, 28, 28, 1) and batch["label"].shape == (16,)
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_classes_are_distinguishable():
    from lsgan_jax.metrics import digits_classifier as dcl

    x, y = times_fonts.render_dataset("shift_rotate", 60, seed=3)
    config = dcl.default_config("times_shift_rotate", 28, steps=400)
    clf = dcl.train_classifier(config, images=x / 127.5 - 1.0, labels=y, use_cache=False)
    assert clf.accuracy > 0.9


def test_small_variance_study_configs_and_table():
    from experiments import small_variance as sv

    config = sv.get_config()
    assert config.datasets == ("times_shift", "times_shift_rotate")
    c = sv.run_config(config, "times_shift", "lsgan", 1)
    assert (c.loss, c.coding.a, c.coding.b, c.coding.c) == ("lsgan", -1.0, 1.0, 0.0)
    assert c.data.name == "times_shift" and c.seed == config.seed + 1
    assert (c.model.g, c.model.d) == ("digit_g", "digit_d")
    assert sv.run_config(config, "times_shift_rotate", "nsgan", 0).loss == "nsgan"
    paper = sv.get_config("paper")
    assert paper.num_steps == 50_001 and not dict(paper.model.g_kwargs) and paper.batch_size == 64
    assert (paper.optim_g.lr, paper.optim_g.b1) == (2e-4, 0.5)
    with pytest.raises(ValueError, match="times_shift"):
        sv.run_config(config, "mnist", "lsgan", 0)

    config.datasets, config.losses = ("times_shift",), ("lsgan",)
    hist = [0.0] * 10
    hist[3] = 1.0
    rows = [
        {"dataset": "times_shift", "loss": "lsgan", "diverged": False, "class_hist": h,
         "final": {"class_coverage": cov, "collapsed": col, "fd": fd, "kl_uniform": kl}}
        for h, cov, col, fd, kl in ((hist, 0.1, 1.0, 400.0, 2.3), ([0.1] * 10, 1.0, 0.0, 5.0, 0.0))
    ]  # fmt: skip
    table, md = sv.make_table(rows, config)
    assert table[0]["classes_covered"] == [1, 10] and table[0]["collapsed"] == 1
    assert table[0]["mean_class_hist"][3] == pytest.approx(0.55)
    assert "| times_shift | LSGAN (−1,1,0) | 1/10, 10/10 | 1/2 | 0/2 |" in md
