"""Image pipeline: TFDS data_source (ArrayRecord) + grain, offline builders, without TensorFlow.

Catalog datasets are faked with ``tfds.testing.mock_data(policy=USE_CODE)`` (random examples of
the real feature specs); ``digits`` and ``folder:`` datasets are real and prepared into tmp dirs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from lsgan_jax.data import builders, images


def _take(it, k):
    return [next(it) for _ in range(k)]


def _assert_batch(batch, *, size, channels, batch_size, num_classes):
    image, label = batch["image"], batch["label"]
    assert image.shape == (batch_size, size, size, channels)
    assert image.dtype == np.float32
    assert label.shape == (batch_size,) and label.dtype == np.int32
    assert np.all(np.isfinite(image))
    assert image.min() >= -1.0 and image.max() <= 1.0
    assert label.min() >= 0 and label.max() < num_classes


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["label"], y["label"])


def _pil_resize(image_hwc: np.ndarray, size: int) -> np.ndarray:
    """Oracle: PIL's float ("F") bilinear resize of each channel, no rounding."""
    planes = [
        np.asarray(
            Image.fromarray(image_hwc[..., k].astype(np.float32), "F").resize(
                (size, size), Image.Resampling.BILINEAR
            )
        )
        for k in range(image_hwc.shape[-1])
    ]
    return np.stack(planes, -1)


def _mock(n=24):
    return tfds.testing.mock_data(num_examples=n, policy=tfds.testing.MockPolicy.USE_CODE)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def digits(data_dir):
    return images.load_source("digits", data_dir=data_dir)


def _digits_iter(data_dir, **kw):
    args = dict(global_batch=64, image_size=32, seed=0, data_dir=data_dir, process_index=0)
    args.update(process_count=1, num_threads=0)
    args.update(kw)
    return images.make_iterator("digits", **args)


def _indexed_source(n, size=4):
    """Example i has every pixel = i and label i: batches show exactly which examples came."""
    return [{"image": np.full((size, size, 1), i, np.uint8), "label": i} for i in range(n)]


def _ids(batch):
    ids = batch["label"]
    np.testing.assert_allclose(batch["image"][:, 0, 0, 0], ids / 127.5 - 1.0, atol=1e-6)
    return ids.tolist()


# ---------------------------------------------------------------------------------------------
# Registry and catalog datasets (mocked)
# ---------------------------------------------------------------------------------------------


def test_registry_and_unknown_name():
    expected = {"digits", "mnist", "fashion_mnist", "cifar10", "celeb_a", "omniglot"}
    expected |= {f"lsun/{s}" for s in ("bedroom", "kitchen", "church_outdoor")}
    expected |= {"lsun/dining_room", "lsun/conference_room", images.CONDITIONAL_DATASET}
    assert expected <= set(images.DATASETS)
    assert images.DATASETS["celeb_a"].crop == "center:108"
    assert all(images.DATASETS[f"lsun/{s}"].image_size == 112 for s in ("bedroom", "kitchen"))
    assert images.get_spec("folder:/x").tfds_name == "lsgan_folder_images"
    with pytest.raises(ValueError, match="Did you mean 'mnist'"):
        images.get_spec("mnsit")
    assert "| `digits` |" in images.dataset_table()


CATALOG = [
    ("mnist", 1, 10),
    ("fashion_mnist", 1, 10),
    ("cifar10", 3, 10),
    ("celeb_a", 3, 1),
    ("lsun/bedroom", 3, 1),
    ("lsun/church_outdoor", 3, 1),
    ("emnist/byclass", 1, 62),
    ("omniglot", 1, 1623),
]


@pytest.mark.parametrize(("name", "channels", "num_classes"), CATALOG)
def test_catalog_datasets_under_mock(name, channels, num_classes):
    spec = images.DATASETS[name]
    with _mock(24):
        source, info = images.load_source(name, data_dir="/nonexistent")
        assert info.num_examples == len(source) == 24
        assert info.num_classes == num_classes and info.channels == channels
        it = images.make_iterator(
            name,
            global_batch=8,
            image_size=spec.image_size,
            seed=0,
            process_count=1,
            process_index=0,
            num_threads=1,
        )
        for batch in _take(it, 4):  # 32 > 24 examples: wraps into the second epoch
            _assert_batch(
                batch,
                size=spec.image_size,
                channels=channels,
                batch_size=8,
                num_classes=num_classes,
            )


def test_celeb_a_center_crop_matches_oracle():
    with _mock(6):
        source, _ = images.load_source("celeb_a")
        it = images.make_iterator(
            source,
            global_batch=6,
            image_size=64,
            seed=0,
            shuffle=False,
            process_count=1,
            process_index=0,
            num_threads=0,
            cache=False,
        )
        batch = next(it)
        for i in range(6):
            raw = source[i]["image"]
            assert raw.shape == (218, 178, 3)
            oracle = _pil_resize(raw[55:163, 35:143], 64) / 127.5 - 1.0  # carpedm20's crop
            np.testing.assert_allclose(batch["image"][i], oracle, atol=2e-5)


def test_emnist_read_upright_and_omniglot_grayscale():
    with _mock(3):
        em, _ = images.load_source("emnist/byclass")
        raw = tfds.data_source("emnist/byclass", split="train")
        np.testing.assert_array_equal(em[1]["image"], raw[1]["image"].swapaxes(0, 1))
        om, info = images.load_source("omniglot")
        raw = tfds.data_source("omniglot", split="train")
        assert info.image_shape == (105, 105, 1) and om[2]["image"].shape == (105, 105, 1)
        pil_luma = np.asarray(Image.fromarray(raw[2]["image"]).convert("L"), np.int32)
        assert np.abs(om[2]["image"][..., 0].astype(np.int32) - pil_luma).max() <= 1


def test_variable_size_images_square_and_none_crops():
    with _mock(8):  # mocked LSUN images have random small sizes
        for crop in ("square", "none"):
            it = images.make_iterator(
                "lsun/kitchen",
                global_batch=8,
                image_size=16,
                seed=1,
                process_count=1,
                process_index=0,
                num_threads=0,
                crop=crop,
            )
            _assert_batch(next(it), size=16, channels=3, batch_size=8, num_classes=1)


# ---------------------------------------------------------------------------------------------
# Resize
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w", "size"), [(8, 8, 32), (28, 28, 32), (105, 105, 28), (9, 7, 5)])
def test_resize_matches_pil(h, w, size):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, h, w, 2)).astype(np.uint8)
    got = images.resize_bilinear(x, size)
    for i in range(3):
        oracle = np.stack(
            [
                np.asarray(
                    Image.fromarray(x[i, ..., k].astype(np.float32), "F").resize(
                        (size, size), Image.Resampling.BILINEAR
                    )
                )
                for k in range(2)
            ],
            -1,
        )
        np.testing.assert_allclose(got[i], oracle, atol=2e-3)  # values in 0..255
    m = images.bilinear_matrix(h, size)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)


def test_dense_and_pil_resize_paths_agree():
    x = np.random.default_rng(1).integers(0, 256, (1, 256, 200, 2)).astype(np.uint8)
    pil_path = images.resize_bilinear(x, 112)  # above the dense threshold: PIL "F" per plane
    wy, wx = images.bilinear_matrix(256, 112), images.bilinear_matrix(200, 112)
    for k in range(2):
        dense = wy @ x[0, :, :, k].astype(np.float32) @ wx.T
        np.testing.assert_allclose(pil_path[0, :, :, k], dense, atol=5e-3)


# ---------------------------------------------------------------------------------------------
# digits: a real offline builder through the real pipeline
# ---------------------------------------------------------------------------------------------


def test_digits_values_match_sklearn(digits, data_dir):
    from sklearn.datasets import load_digits

    source, info = digits
    assert info.num_examples == 1797 and info.num_classes == 10
    assert info.image_shape == (8, 8, 1)
    sk = load_digits()
    sk_u8 = np.rint(sk.images * 255.0 / 16.0).astype(np.uint8)
    stored = np.stack([source[i]["image"][..., 0] for i in range(len(source))])
    assert sorted(map(bytes, stored)) == sorted(map(bytes, sk_u8))  # same images, any order

    batch = next(_digits_iter(data_dir, shuffle=False))  # source order
    _assert_batch(batch, size=32, channels=1, batch_size=64, num_classes=10)
    for i in range(4):
        j = int(np.flatnonzero((sk_u8 == stored[i]).all(axis=(1, 2)))[0])
        oracle = _pil_resize(sk_u8[j][..., None], 32) / 127.5 - 1.0
        np.testing.assert_allclose(batch["image"][i], oracle, atol=2e-5)
        assert batch["label"][i] == sk.target[j]


def test_shuffle_depends_on_seed_and_epoch(data_dir):
    a = _take(_digits_iter(data_dir, seed=0), 2)
    _assert_same_batches(a, _take(_digits_iter(data_dir, seed=0), 2))
    b = _take(_digits_iter(data_dir, seed=1), 2)
    assert not np.array_equal(a[0]["image"], b[0]["image"])

    n = 20
    it = images.make_iterator(
        _indexed_source(n),
        global_batch=n,
        image_size=4,
        seed=3,
        process_count=1,
        process_index=0,
        num_threads=0,
    )
    epoch0, epoch1 = _ids(next(it)), _ids(next(it))
    assert sorted(epoch0) == sorted(epoch1) == list(range(n))  # each epoch is a permutation
    assert epoch0 != epoch1 != list(range(n))  # ... a different one each epoch


def test_cache_gives_the_same_batches(data_dir):
    cached = _take(_digits_iter(data_dir, seed=5, cache=True), 3)
    _assert_same_batches(cached, _take(_digits_iter(data_dir, seed=5, cache=False), 3))


def test_process_sharding_disjoint_and_covering(data_dir):
    n, global_batch = 50, 10
    seen = []
    for p in range(2):
        it = images.make_iterator(
            _indexed_source(n),
            global_batch=global_batch,
            image_size=4,
            seed=0,
            process_index=p,
            process_count=2,
            num_threads=0,
        )
        ids = []
        for batch in _take(it, 5):  # 5 batches x 5 = this process's 25 examples
            assert batch["image"].shape[0] == global_batch // 2
            ids += _ids(batch)
        assert len(set(ids)) == 25
        seen.append(set(ids))
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(n))
    for p in range(2):  # the real dataset too
        batch = next(_digits_iter(data_dir, global_batch=64, process_index=p, process_count=2))
        _assert_batch(batch, size=32, channels=1, batch_size=32, num_classes=10)


def test_finite_epochs(data_dir):
    def run(p, count, **kw):
        it = images.make_iterator(
            _indexed_source(11),
            global_batch=2 * count,
            image_size=4,
            seed=0,
            process_index=p,
            process_count=count,
            num_threads=0,
            num_epochs=1,
            **kw,
        )
        return [i for batch in it for i in _ids(batch)]

    assert sorted(run(0, 1, drop_remainder=False)) == list(range(11))  # a final short batch
    assert len(run(0, 1)) == 10
    # drop_remainder: equal shards (11 // 2 = 5) so both processes stop after the same steps
    assert len(run(0, 2)) == len(run(1, 2)) == 4


# ---------------------------------------------------------------------------------------------
# Checkpointing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [0, 2])
def test_iterator_state_round_trip(data_dir, threads):
    it = _digits_iter(data_dir, seed=7, num_threads=threads, cache=False)
    _take(it, 3)
    state = it.get_state()
    expected = _take(it, 4)
    fresh = _digits_iter(data_dir, seed=7, num_threads=threads, cache=False)
    fresh.set_state(state)
    _assert_same_batches(_take(fresh, 4), expected)


def test_orbax_grain_checkpoint_round_trip(data_dir, tmp_path):
    import grain
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
    mgr = ocp.CheckpointManager(str(tmp_path / "ckpt"), options=options)
    it = _digits_iter(data_dir, seed=11, num_threads=2)
    _take(it, 5)
    mgr.save(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    mgr.wait_until_finished()
    expected = _take(it, 3)
    fresh = _digits_iter(data_dir, seed=11, num_threads=2)
    mgr.restore(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
    _assert_same_batches(_take(fresh, 3), expected)
    mgr.close()


def test_synthetic_batches():
    it = images.synthetic_batches(16, 8, 3, 10, seed=0, process_count=2)
    batches = _take(it, 5)
    for b in batches:
        _assert_batch(b, size=8, channels=3, batch_size=8, num_classes=10)
    state = it.get_state()
    fresh = images.synthetic_batches(16, 8, 3, 10, seed=0, process_count=2)
    fresh.set_state(state)
    _assert_same_batches(_take(fresh, 2), _take(it, 2))


# ---------------------------------------------------------------------------------------------
# Clear errors
# ---------------------------------------------------------------------------------------------


def test_missing_dataset_names_the_prepare_command(tmp_path):
    with pytest.raises(images.DatasetNotPreparedError) as err:
        images.load_source("cifar10", data_dir=str(tmp_path))
    msg = str(err.value)
    assert f"python -m lsgan_jax.data.prepare cifar10 --data_dir {tmp_path}" in msg
    assert "pip install -e '.[tf]'" in msg
    assert not os.listdir(tmp_path)  # nothing downloaded or written
    with pytest.raises(images.DatasetNotPreparedError):
        images.make_iterator(
            "mnist",
            global_batch=8,
            image_size=28,
            seed=0,
            data_dir=str(tmp_path),
            process_count=1,
            process_index=0,
        )


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="TF installed")
def test_prepare_without_tensorflow_says_what_to_install(tmp_path, capsys):
    with pytest.raises(images.MissingDependencyError, match=r"pip install -e '\.\[tf\]'"):
        images.prepare("mnist", str(tmp_path))
    from lsgan_jax.data import prepare

    assert prepare.main(["lsun/bedroom", "--data_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    # LSUN also needs tensorflow-io: the message names the extra that has both ('.[lsun]'),
    # the same one the dataset table (`prepare --list`) and the README name.
    assert ".[lsun]" in err and "tensorflow_io" in err and "Traceback" not in err
    lsun_row = next(r for r in images.dataset_table().splitlines() if "`lsun/bedroom`" in r)
    assert ".[lsun]" in lsun_row and ".[tf]" not in lsun_row


def test_bad_arguments_raise_clear_value_errors(digits, data_dir):
    with pytest.raises(ValueError, match="not divisible by process_count=2"):
        _digits_iter(data_dir, global_batch=65, process_index=0, process_count=2)
    with pytest.raises(ValueError, match="process_index=2 must be < process_count=2"):
        _digits_iter(data_dir, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="Unknown crop"):
        _digits_iter(data_dir, crop="middle")
    with pytest.raises(ValueError, match="Cannot read split 'validation'"):
        images.load_source("digits", split="validation", data_dir=data_dir)
    with pytest.raises(ValueError, match="not divisible"):
        images.synthetic_batches(10, 8, 1, 1, seed=0, process_count=4)


# ---------------------------------------------------------------------------------------------
# A folder of the user's images
# ---------------------------------------------------------------------------------------------


def test_folder_dataset(tmp_path):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    files = {}
    for cls, shapes in {"cats": [(20, 30), (16, 16)], "dogs": [(30, 20), (12, 40), (9, 9)]}.items():
        (root / cls).mkdir(parents=True)
        for k, (h, w) in enumerate(shapes):
            path = root / cls / f"{k}.png"
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
            files[path] = cls
    (root / "notes.txt").write_text("not an image")
    (root / "dogs" / "broken.jpg").write_bytes(b"not a jpeg")  # skipped with a warning
    name, data_dir = f"folder:{root}", str(tmp_path / "tfds")

    source, info = images.load_source(name, data_dir=data_dir, image_size=8)
    assert info.num_examples == 5 and info.num_classes == 2
    assert info.class_names == ("cats", "dogs") and info.image_shape == (8, 8, 3)
    it = images.make_iterator(
        name,
        global_batch=5,
        image_size=8,
        seed=0,
        data_dir=data_dir,
        shuffle=False,
        process_count=1,
        process_index=0,
        num_threads=0,
    )
    batch = next(it)
    _assert_batch(batch, size=8, channels=3, batch_size=5, num_classes=2)
    oracles = []
    for path, cls in files.items():  # center square crop + PIL bilinear, stored as PNG
        im = Image.open(path).convert("RGB")
        w, h = im.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        small = np.asarray(im.resize((8, 8), Image.Resampling.BILINEAR, box=box))
        oracles.append((small / 127.5 - 1.0, info.class_names.index(cls)))
    for image, label in zip(batch["image"], batch["label"], strict=True):
        dist = [np.abs(image - o).max() if lab == label else np.inf for o, lab in oracles]
        assert min(dist) < 1e-6

    # the cache is keyed by path, size and file listing: a new image makes a new dataset
    before = builders.folder_builder(str(root), image_size=8, data_dir=data_dir)
    assert before.is_prepared()
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "cats" / "new.png")
    after = builders.folder_builder(str(root), image_size=8, data_dir=data_dir)
    assert after.builder_config.name != before.builder_config.name and not after.is_prepared()


def test_folder_without_subfolders_is_one_class(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for k in range(3):
        Image.fromarray(np.full((6, 6), 40 * k, np.uint8)).save(root / f"{k}.png")  # grayscale
    it = images.make_iterator(
        f"folder:{root}",
        global_batch=3,
        image_size=6,
        seed=0,
        data_dir=str(tmp_path / "d"),
        process_count=1,
        process_index=0,
        num_threads=0,
    )
    batch = next(it)
    _assert_batch(batch, size=6, channels=3, batch_size=3, num_classes=1)
    assert sorted(np.round((batch["image"][:, 0, 0, 0] + 1) * 127.5)) == [0, 40, 80]


def test_importing_the_package_stays_light():
    code = (
        "import sys, lsgan_jax.data; from lsgan_jax.data import images; "
        "images.get_spec('mnist'); "
        "bad = [m for m in ('tensorflow_datasets', 'grain', 'tensorflow') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_default_data_dir_keeps_bucket_urls_and_absolutizes_local_paths(monkeypatch, tmp_path):
    from lsgan_jax.data import sources

    assert sources.default_data_dir("gs://bucket/tfds") == "gs://bucket/tfds"
    monkeypatch.setenv("TFDS_DATA_DIR", "gs://other/tfds")
    assert sources.default_data_dir() == "gs://other/tfds"
    monkeypatch.chdir(tmp_path)
    assert sources.default_data_dir("rel/dir") == os.path.join(str(tmp_path), "rel", "dir")
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert sources.default_data_dir() == os.path.expanduser("~/tensorflow_datasets")
