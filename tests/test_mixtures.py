"""Tests for lsgan_jax.data.mixtures: constructors, registry, on-device samplers."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsgan_jax import data
from lsgan_jax.data import mixtures

_sample_jit = jax.jit(data.sample, static_argnames="n")


def _nearest_mode(points: np.ndarray, means: np.ndarray) -> np.ndarray:
    d2 = ((points[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    return np.argmin(d2, axis=1)


# ---------------------------------------------------------------- constructors


def test_ring_defaults_match_pacgan():
    m = data.ring()
    means = np.asarray(m.means)
    assert m.num_modes == 8
    chex.assert_shape(m.means, (8, 2))
    chex.assert_shape([m.stds, m.weights], (8,))
    chex.assert_type([m.means, m.stds, m.weights], jnp.float32)
    theta = 2 * np.pi * np.arange(8) / 8
    np.testing.assert_allclose(means, np.stack([np.cos(theta), np.sin(theta)], -1), atol=1e-7)
    np.testing.assert_allclose(means[0], [1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(m.weights, 1 / 8, rtol=1e-6)
    np.testing.assert_allclose(m.stds, 0.01, rtol=1e-6)
    # 8 distinct means (no endpoint duplication): min pairwise distance = 2 sin(pi/8).
    pair = np.linalg.norm(means[:, None] - means[None], axis=-1) + np.eye(8) * 10
    np.testing.assert_allclose(pair.min(), 2 * np.sin(np.pi / 8), rtol=1e-5)


def test_ring_parameters():
    m = data.ring(5, radius=2.0, std=0.1)
    assert m.num_modes == 5
    np.testing.assert_allclose(np.linalg.norm(m.means, axis=1), 2.0, rtol=1e-6)
    np.testing.assert_allclose(m.stds, 0.1, rtol=1e-6)
    np.testing.assert_allclose(m.weights, 0.2, rtol=1e-6)


def test_official_ring_default_is_the_official_data():
    # ls.py: sample_mog(n_mixture=9) draws one of 9 centres uniformly; linspace(0, 2*pi, 9)
    # repeats (0, r), so the merged mode has weight 2/9.
    np.testing.assert_allclose(data.official_lsgan_ring().weights, [2 / 9] + [1 / 9] * 7, rtol=1e-6)
    chex.assert_trees_all_equal(
        data.get_mixture("official_ring"), data.official_lsgan_ring(duplicate_endpoint=True)
    )


def test_official_ring_equals_ls_py_sampler_law():
    # NumPy transcription of ls.py's sample_mog: Categorical(zeros(9)) over 9 centres
    # (sin t, cos t), t = linspace(0, 2*pi, 9); merge coinciding centres into distinct modes.
    t = np.linspace(0, 2 * np.pi, 9)
    centres = np.stack([np.sin(t), np.cos(t)], -1)
    distinct, inverse = np.unique(np.round(centres, 6), axis=0, return_inverse=True)
    law = np.bincount(inverse.ravel(), minlength=len(distinct)) / 9.0
    m = data.official_lsgan_ring()
    order = _nearest_mode(distinct, np.asarray(m.means))
    np.testing.assert_allclose(np.asarray(m.weights)[order], law, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(m.means)[order], distinct, atol=1e-6)


def test_official_ring_equal_weight_option():
    m = data.official_lsgan_ring(duplicate_endpoint=False)
    means = np.asarray(m.means)
    assert m.num_modes == 8
    np.testing.assert_allclose(means[0], [0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(m.weights, 1 / 8, rtol=1e-6)
    pair = np.linalg.norm(means[:, None] - means[None], axis=-1) + np.eye(8) * 10
    assert pair.min() > 0.7  # 8 distinct modes
    # Same set of means as the PacGAN ring, in a different order (starts at (0,1), clockwise).
    ring = np.asarray(data.ring().means)
    nearest = _nearest_mode(means, ring)
    assert sorted(nearest.tolist()) == list(range(8))
    np.testing.assert_allclose(means, ring[nearest], atol=1e-6)


def test_official_ring_duplicate_endpoint_quirk():
    m = data.official_lsgan_ring(duplicate_endpoint=True)
    theta = np.linspace(0, 2 * np.pi, 9)[:8]
    np.testing.assert_allclose(m.means, np.stack([np.sin(theta), np.cos(theta)], -1), atol=1e-7)
    np.testing.assert_allclose(m.weights, [2 / 9] + [1 / 9] * 7, rtol=1e-6)
    np.testing.assert_allclose(float(jnp.sum(m.weights)), 1.0, rtol=1e-6)
    m2 = data.official_lsgan_ring(radius=2.0, std=0.02, duplicate_endpoint=True)
    np.testing.assert_allclose(m2.means[0], [0.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(m2.stds, 0.02, rtol=1e-6)


def test_grid_defaults_match_pacgan():
    m = data.grid()
    means = np.asarray(m.means)
    assert m.num_modes == 25
    np.testing.assert_allclose(m.stds, 0.05, rtol=1e-6)
    np.testing.assert_allclose(m.weights, 1 / 25, rtol=1e-6)
    expected = {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(p) for p in means.astype(int).tolist()} == expected
    np.testing.assert_array_equal(means, np.round(means))
    pair = np.linalg.norm(means[:, None] - means[None], axis=-1) + np.eye(25) * 10
    np.testing.assert_allclose(pair.min(), 2.0)
    assert data.grid(side=3, spacing=1.0).num_modes == 9


def test_registry_and_unknown_name():
    assert set(data.MIXTURES) == {"ring", "grid", "official_ring"}
    chex.assert_trees_all_equal(data.get_mixture("ring"), data.ring())
    chex.assert_trees_all_equal(
        data.get_mixture("official_ring", duplicate_endpoint=True),
        data.official_lsgan_ring(duplicate_endpoint=True),
    )
    chex.assert_trees_all_equal(data.get_mixture("grid", std=0.1), data.grid(std=0.1))
    with pytest.raises(ValueError, match=r"(?s)Did you mean 'grid'.*official_ring"):
        data.get_mixture("gird")
    with pytest.raises(ValueError, match="Valid names"):
        data.get_mixture("swiss_roll")


@pytest.mark.parametrize(
    "build, exc",
    [
        (lambda: data.ring(0), ValueError),
        (lambda: data.ring(2.5), TypeError),
        (lambda: data.ring(std=0.0), ValueError),
        (lambda: data.ring(radius=-1.0), ValueError),
        (lambda: data.grid(side=0), ValueError),
        (lambda: data.grid(spacing=float("nan")), ValueError),
        (lambda: data.official_lsgan_ring(duplicate_endpoint=1), TypeError),
        (lambda: data.make_mixture(np.zeros((3, 3)), stds=1.0), ValueError),
        (lambda: data.make_mixture(np.zeros((3, 2)), stds=[1.0, 1.0]), ValueError),
        (lambda: data.make_mixture(np.zeros((3, 2)), stds=1.0, weights=[1, 0, 1]), ValueError),
    ],
)
def test_bad_arguments_raise(build, exc):
    with pytest.raises(exc):
        build()


def test_make_mixture_normalizes_weights():
    m = data.make_mixture([[0, 0], [1, 1]], stds=[0.5, 0.25], weights=[3, 1])
    np.testing.assert_allclose(m.weights, [0.75, 0.25])
    np.testing.assert_allclose(m.stds, [0.5, 0.25])


# ---------------------------------------------------------------- sampling

_N = 20_000


@pytest.fixture(scope="module")
def official_samples():
    m = data.official_lsgan_ring(duplicate_endpoint=True)
    x = _sample_jit(m, jax.random.key(0), n=_N)
    return m, np.asarray(x)


def test_sample_shape_dtype(official_samples):
    _, x = official_samples
    assert x.shape == (_N, 2) and x.dtype == np.float32
    assert np.all(np.isfinite(x))


def test_component_frequencies_match_weights(official_samples):
    m, x = official_samples
    means, w = np.asarray(m.means), np.asarray(m.weights, np.float64)
    counts = np.bincount(_nearest_mode(x, means), minlength=8)
    expected = _N * w
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 26.1, (counts, expected)  # chi2(7 dof) 99.95 % quantile ~ 26.0
    np.testing.assert_allclose(counts / _N, w, atol=0.012)


def test_per_mode_std(official_samples):
    m, x = official_samples
    means = np.asarray(m.means)
    mode = _nearest_mode(x, means)
    for j in range(8):
        resid = x[mode == j] - means[j]
        np.testing.assert_allclose(resid.mean(0), 0.0, atol=0.002)
        np.testing.assert_allclose(resid.std(0), 0.01, rtol=0.06)


def test_grid_sample_std():
    m = data.grid()
    x = np.asarray(_sample_jit(m, jax.random.key(1), n=10_000))
    means = np.asarray(m.means)
    mode = _nearest_mode(x, means)
    assert len(np.unique(mode)) == 25
    np.testing.assert_allclose((x - means[mode]).std(0), 0.05, rtol=0.05)


_SMALL = 64  # one small sample size shared by the tests below, so compiles are reused


def test_jit_vmap_over_keys_match_eager_loop():
    m = data.ring()
    keys = jax.random.split(jax.random.key(3), 4)
    batched = jax.jit(jax.vmap(functools.partial(data.sample, m, n=_SMALL)))(keys)
    chex.assert_shape(batched, (4, _SMALL, 2))
    chex.assert_type(batched, jnp.float32)
    loop = np.stack([np.asarray(data.sample(m, k, _SMALL)) for k in keys])
    np.testing.assert_allclose(batched, loop, rtol=1e-6, atol=1e-7)
    assert not np.allclose(loop[0], loop[1])  # distinct keys, distinct streams
    # A raw uint32 key works too.
    raw = data.sample(m, jax.random.PRNGKey(3), _SMALL)
    chex.assert_shape(raw, (_SMALL, 2))


def test_sample_bad_arguments():
    m = data.ring()
    with pytest.raises(ValueError):
        data.sample(m, jax.random.key(0), -1)
    with pytest.raises(TypeError, match="static"):
        data.sample(m, jax.random.key(0), 2.5)
    with pytest.raises(TypeError, match="Mixture"):
        data.sample((m.means, m.stds, m.weights), jax.random.key(0), 4)
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        data.sample(m._replace(means=jnp.zeros((8, 3))), jax.random.key(0), 4)


def test_fixed_dataset_and_sampling_from_it():
    assert mixtures.FIXED_DATASET_SIZE == 100_000
    m = data.ring()
    pts = data.make_fixed_dataset(m, jax.random.key(0), size=_SMALL)
    chex.assert_shape(pts, (_SMALL, 2))
    np.testing.assert_array_equal(pts, data.sample(m, jax.random.key(0), _SMALL))
    keys = jax.random.split(jax.random.key(1), 3)
    batches = jax.jit(jax.vmap(lambda k: data.sample_from_dataset(pts, k, 50)))(keys)
    chex.assert_shape(batches, (3, 50, 2))
    pts_np = np.asarray(pts)
    for b, k in zip(np.asarray(batches), keys, strict=True):
        # Every row is a row of the dataset, and vmap equals the per-key call.
        d = np.abs(b[:, None, :] - pts_np[None]).sum(-1).min(1)
        np.testing.assert_array_equal(d, 0.0)
        np.testing.assert_array_equal(b, data.sample_from_dataset(pts, k, 50))
    # Uniform over indices: 20k draws from 64 points hit every point.
    many = np.asarray(data.sample_from_dataset(pts, jax.random.key(2), 20_000))
    assert len(np.unique(many[:, 0])) == _SMALL
    with pytest.raises(ValueError):
        data.sample_from_dataset(pts[0], jax.random.key(0), 4)
    with pytest.raises(ValueError):
        data.make_fixed_dataset(m, jax.random.key(0), size=0)


def test_mixture_study_variants_train_on_the_data_they_name():
    from experiments import mixture as study

    official = study.get_config("official")
    m = data.get_mixture(official.data.name, **official.data.kwargs)
    np.testing.assert_allclose(m.weights, [2 / 9] + [1 / 9] * 7, rtol=1e-6)
    assert "2/9" in official.data.label
    default = study.get_config("default")
    m = data.get_mixture(default.data.name, **default.data.kwargs)
    np.testing.assert_allclose(m.weights, 1 / 8, rtol=1e-6)
    assert default.data.label.startswith("ring: 8 equal-weight modes")
    for variant in ("pacgan_ring", "pacgan_grid", "welfert", "smoke"):
        c = study.get_config(variant)
        k = data.get_mixture(c.data.name, **c.data.kwargs).num_modes
        assert f"{k} equal-weight modes" in c.data.label or c.data.name == "official_ring"
