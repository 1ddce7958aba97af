"""The offline digits classifier and its metrics: accuracy, real vs collapsed samples, caching,
the in-loop evaluator and its place in the evaluator registry."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from lsgan_jax import evaluators
from lsgan_jax.errors import ConfigError
from lsgan_jax.evaluators import digits as digits_ev
from lsgan_jax.evaluators import sampling
from lsgan_jax.metrics import classifier_metrics as cm
from lsgan_jax.metrics import digits_classifier as dcl


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits_metrics")
    data_dir, cache = str(root / "tfds"), str(root / "cache")
    config = dcl.default_config("digits", 32, steps=600)
    clf = dcl.train_classifier(config, data_dir=data_dir, cache_dir=cache)
    ref = cm.make_reference(clf, data_dir=data_dir)
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
    m = cm.classifier_metrics(env["clf"], env["x"][idx], env["ref"])
    assert m.class_coverage == 1.0 and m.kl_uniform < 0.02 and m.confidence > 0.9
    assert m.fd.value < 2.0 and not m.collapsed
    assert m.precision.value > 0.95 and m.recall.value > 0.9 and m.dc_coverage.value > 0.9
    assert m.diversity == pytest.approx(1.0, abs=0.05)
    p = m.protocol.as_dict()
    assert (p["n_real"], p["n_fake"], p["split"]) == (1797, 1000, "train")
    assert p["features"] == "penultimate relu (64)"
    json.dumps(m.as_dict())  # JSON-ready


def test_one_repeated_image_is_collapsed(env):
    m = cm.classifier_metrics(env["clf"], np.repeat(env["x"][:1], 500, axis=0), env["ref"])
    assert m.class_coverage == pytest.approx(0.1)
    assert m.kl_uniform == pytest.approx(np.log(10), rel=1e-6)
    assert m.diversity == pytest.approx(0.0, abs=1e-6) and m.collapsed
    assert m.fd.value > 100 and m.recall.value < 0.01
    assert m.scalars()["collapsed"] == 1.0


def test_half_the_classes_give_half_coverage(env):
    x, y = env["x"], env["y"]
    sub = x[y < 5]
    m = cm.classifier_metrics(env["clf"], sub, env["ref"])
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
    ev = digits_ev.make_digits_evaluator(200, 0, config=config, cache_dir=env["cache"], steps=600)
    assert ev.classifier.path == env["clf"].path  # the cached classifier
    assert ev._z.shape == (200, 16)  # the smoke generator's latent size, read from the config
    x = env["x"]
    calls = []

    def real(z, labels):
        calls.append(len(z))
        return x[np.abs(np.asarray(z[:, 0]) * 1e4).astype(int) % len(x)]

    good = ev(real, 10)
    assert set(good) == set(cm.ClassifierMetrics.scalars(ev.last))
    assert good["collapsed"] == 0.0 and good["class_coverage"] >= 0.9 and sum(calls) == 200
    bad = ev(lambda z, labels: np.repeat(x[:1], len(z), axis=0), 20)
    assert bad["collapsed"] == 1.0 and bad["class_coverage"] == pytest.approx(0.1)
    assert [step for step, _ in ev.history] == [10, 20] and ev.last_samples.shape == (64, 32, 32, 1)
    # The protocol the image trainer records in summary.json (its only writer), JSON-ready.
    saved = json.loads(json.dumps(ev.protocol(), default=str))
    assert saved["n_fake"] == 200 and saved["n_real"] == 1797
    assert len(ev.last.as_dict()["class_hist"]) == 10


def test_evaluator_needs_the_latent_shape():
    with pytest.raises(ValueError, match="latent"):
        digits_ev.make_digits_evaluator(64, 0)


def test_registry_builds_the_digits_evaluator_from_the_config(env, monkeypatch):
    """`config.evals` is the route: the registry reads num_eval_samples, eval_seed, the collapse
    block and the generator's latent from the config."""
    from experiments import digits

    monkeypatch.setenv("LSGAN_JAX_CACHE_DIR", env["cache"])
    config = digits.get_config("smoke")
    config.data.data_dir = env["data_dir"]
    config.num_eval_samples, config.eval_seed = 30, 7
    config.collapse = ml_collections.ConfigDict({"min_coverage": 0.3, "max_fd": 0.0})
    built = evaluators.make_evaluators(config)
    ev = built["digits"]
    assert set(built) == {"digits"} and ev.num_samples == 30
    assert ev.rule == cm.CollapseRule(min_coverage=0.3)  # max_fd 0 turns the FD term off
    want = sampling.fixed_latents(seed=7, num_samples=30, batch=30, latent_dim=16,
                                  latent_dist="uniform")  # fmt: skip
    np.testing.assert_array_equal(ev._z, want)
    config.data.name = "times_shift"
    with pytest.raises(ConfigError, match="'times'"):
        evaluators.make_evaluators(config)


def test_registry_unknown_name_says_did_you_mean():
    config = ml_collections.ConfigDict({"evals": ("digts",)})
    with pytest.raises(ConfigError, match="Did you mean 'digits'"):
        evaluators.make_evaluators(config)
    with pytest.raises(ConfigError, match="tuple of names"):
        evaluators.check_names("digits")
    assert {"inception", "digits", "times"} <= set(evaluators.EVALUATORS)
    with pytest.raises(ValueError, match="already registered"):
        evaluators.register("digits")(lambda config: None)


def test_generate_returns_minus_one_one_for_a_sigmoid_generator():
    """`model.output` is the one name of G's last non-linearity: build gives it to G, and the
    sampler maps a sigmoid G's [0, 1] to 2x - 1 (sample grids and evaluators see [-1, 1])."""
    from experiments import conditional
    from lsgan_jax.training import build
    from lsgan_jax.training.step import make_generate

    config = conditional.get_config("smoke")
    keys = dict(g_key=jax.random.PRNGKey(0), d_key=jax.random.PRNGKey(1), num_classes=10)
    g_tanh, _ = build.create_models(config, **keys)
    config.model.output = "sigmoid"
    build.validate_image(config)
    g_sig, _ = build.create_models(config, **keys)
    assert g_tanh.output == "tanh" and g_sig.output == "sigmoid"
    z = jax.random.uniform(jax.random.PRNGKey(2), (6, g_sig.latent_dim), minval=-1.0)
    labels = jnp.arange(6) % 10
    raw = np.asarray(g_sig(z, labels=labels, train=False))
    assert raw.min() >= 0.0 and raw.max() <= 1.0
    for g, want in ((g_sig, 2.0 * raw - 1.0), (g_tanh, g_tanh(z, labels=labels, train=False))):
        gd, params, rest = nnx.split(g, nnx.Param, ...)
        got = make_generate(gd, conditional=True)(params, rest, z, labels)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
    # The evaluators' chunked sampling keeps the first num_samples images, in order.
    z10 = np.arange(10, dtype=np.float32)[:, None]
    got = sampling.generate_images(lambda z, labels: z / 10, z10, num_samples=7, batch=4)
    np.testing.assert_allclose(got, z10[:7] / 10, rtol=1e-6)
    # Wrong names and G's that cannot end in a sigmoid are refused, with what to do instead.
    config.model.output = "sigmod"
    with pytest.raises(ConfigError, match="Did you mean 'sigmoid'"):
        build.validate_image(config)
    config.model.output = "tanh"
    config.model.g_kwargs = dict(config.model.g_kwargs, output="sigmoid")
    with pytest.raises(ConfigError, match="--config.model.output=sigmoid"):
        build.create_models(config, **keys)
    from experiments import digits

    config = digits.get_config("smoke")
    config.model.output = "sigmoid"
    with pytest.raises(ConfigError, match="always ends in tanh"):
        build.create_models(config, g_key=keys["g_key"], d_key=keys["d_key"])
