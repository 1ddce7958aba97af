"""The offline digits classifier and its metrics: accuracy, real vs collapsed samples, caching,
the in-loop evaluator."""

import json

import numpy as np
import pytest

from lsgan_jax.metrics import digits_classifier as dcl


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits_metrics")
    data_dir, cache = str(root / "tfds"), str(root / "cache")
    config = dcl.default_config("digits", 32, steps=600)
    clf = dcl.train_classifier(config, data_dir=data_dir, cache_dir=cache)
    ref = dcl.make_reference(clf, data_dir=data_dir)
    x, y = dcl.load_real_images("digits", source_size=32, data_dir=data_dir)
    return {"clf": clf, "ref": ref, "x": x, "y": y, "data_dir": data_dir, "cache": cache}


def test_classifier_heldout_accuracy(env):
    clf = env["clf"]
    assert clf.accuracy >= 0.9
    assert clf.n_train + clf.n_test == 1797 and clf.n_test == pytest.approx(0.2 * 1797, abs=10)
    assert clf.space.features == "penultimate relu (64)" and clf.config.key() in clf.space.weights


def test_classifier_is_cached_by_its_settings(env):
    again = dcl.train_classifier(
        env["clf"].config, data_dir=env["data_dir"], cache_dir=env["cache"]
    )
    assert again.path == env["clf"].path and again.train_seconds == 0.0
    assert again.accuracy == env["clf"].accuracy
    other = dcl.default_config("digits", 32, steps=601)
    assert other.key() != env["clf"].config.key()
    logits_a, feats_a = env["clf"](env["x"][:10])
    logits_b, feats_b = again(env["x"][:10])
    np.testing.assert_allclose(logits_a, logits_b, rtol=1e-6)
    assert feats_a.shape == (10, 64)


def test_area_downsample_is_a_box_mean():
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 1)).astype(np.float32)
    want = x.reshape(3, 8, 4, 8, 4, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(np.asarray(dcl.area_downsample(x, 8)), want, rtol=1e-6, atol=1e-6)
    assert dcl.area_downsample(x[:, :28, :28], 8).shape == (3, 8, 8, 1)


def test_real_samples_cover_every_class(env):
    idx = np.random.default_rng(0).choice(len(env["x"]), 1000, replace=False)
    m = dcl.classifier_metrics(env["clf"], env["x"][idx], env["ref"])
    assert m.class_coverage == 1.0 and m.kl_uniform < 0.02 and m.confidence > 0.9
    assert m.fd.value < 2.0 and not m.collapsed
    assert m.precision.value > 0.95 and m.recall.value > 0.9 and m.dc_coverage.value > 0.9
    assert m.diversity == pytest.approx(1.0, abs=0.05)
    p = m.protocol.as_dict()
    assert (p["n_real"], p["n_fake"], p["split"]) == (1797, 1000, "train")
    assert p["features"] == "penultimate relu (64)"
    json.dumps(m.as_dict())  # JSON-ready


def test_one_repeated_image_is_collapsed(env):
    m = dcl.classifier_metrics(env["clf"], np.repeat(env["x"][:1], 500, axis=0), env["ref"])
    assert m.class_coverage == pytest.approx(0.1)
    assert m.kl_uniform == pytest.approx(np.log(10), rel=1e-6)
    assert m.diversity == pytest.approx(0.0, abs=1e-6) and m.collapsed
    assert m.fd.value > 100 and m.recall.value < 0.01
    assert m.scalars()["collapsed"] == 1.0


def test_half_the_classes_give_half_coverage(env):
    x, y = env["x"], env["y"]
    sub = x[y < 5]
    m = dcl.classifier_metrics(env["clf"], sub, env["ref"])
    assert m.class_coverage == pytest.approx(0.5)
    hist = m.class_hist
    assert hist[:5].sum() > 0.97
    nz = hist[hist > 0]
    assert m.kl_uniform == pytest.approx(float((nz * np.log(nz * 10)).sum()))
    # Each class keeps its natural variety, so this is "missing modes", not a collapse.
    assert m.diversity > 0.8 and not m.collapsed


def test_evaluator_scores_a_generator_and_flags_collapse(env, tmp_path):
    """The in-loop evaluator on stand-in generators (the loop itself runs in the stability and
    digits end-to-end tests): real digits pass, a constant image is flagged as collapsed."""
    from experiments import digits

    config = digits.get_config("smoke")
    config.data.data_dir = env["data_dir"]
    ev = dcl.make_digits_evaluator(200, 0, config=config, cache_dir=env["cache"], steps=600)
    assert ev.classifier.path == env["clf"].path  # the cached classifier
    assert ev._z.shape == (200, 16)  # the smoke generator's latent size, read from the config
    x = env["x"]
    calls = []

    def real(z, labels):
        calls.append(len(z))
        return x[np.abs(np.asarray(z[:, 0]) * 1e4).astype(int) % len(x)]

    good = ev(real, 10)
    assert set(good) == set(dcl.ClassifierMetrics.scalars(ev.last))
    assert good["collapsed"] == 0.0 and good["class_coverage"] >= 0.9 and sum(calls) == 200
    bad = ev(lambda z, labels: np.repeat(x[:1], len(z), axis=0), 20)
    assert bad["collapsed"] == 1.0 and bad["class_coverage"] == pytest.approx(0.1)
    assert [step for step, _ in ev.history] == [10, 20] and ev.last_samples.shape == (64, 32, 32, 1)
    (tmp_path / "summary.json").write_text("{}")
    out = ev.annotate_summary(str(tmp_path), {"final": bad})
    saved = json.load(open(tmp_path / "summary.json"))
    assert saved["eval_protocol"] == json.loads(json.dumps(out["eval_protocol"]))
    assert saved["eval_protocol"]["n_fake"] == 200 and saved["eval_protocol"]["n_real"] == 1797
    assert len(saved["final_class_hist"]) == 10


def test_evaluator_needs_the_latent_shape():
    with pytest.raises(ValueError, match="latent"):
        dcl.make_digits_evaluator(64, 0)
