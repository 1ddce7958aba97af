"""Tests for lsgan_jax.metrics.mixture against an independent NumPy oracle."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsgan_jax import data, metrics

_metrics_jit = jax.jit(metrics.mixture_metrics)


def _np_sample(mixture, n, seed, std_scale=1.0):
    """NumPy mixture sampler (keeps these tests independent of lsgan_jax.data.sample)."""
    rng = np.random.default_rng(seed)
    w = np.asarray(mixture.weights, np.float64)
    comp = rng.choice(len(w), size=n, p=w / w.sum())
    std = np.asarray(mixture.stds)[comp, None] * std_scale
    return np.asarray(mixture.means)[comp] + std * rng.normal(size=(n, 2))


def oracle(samples, means, stds, weights, threshold=3.0):
    """Plain-loop reference of the PacGAN/VEEGAN metrics (float64)."""
    samples = np.asarray(samples, np.float64)
    means, stds = np.asarray(means, np.float64), np.asarray(stds, np.float64)
    weights = np.asarray(weights, np.float64)
    k = len(means)
    hq_counts, all_counts = np.zeros(k), np.zeros(k)
    for x in samples:
        d = np.array([math.hypot(*(x - means[j])) / stds[j] for j in range(k)])
        j = int(np.argmin(d))
        all_counts[j] += 1
        if d[j] < threshold:
            hq_counts[j] += 1

    def kl(counts):
        p = counts / counts.sum()
        return sum(p[j] * math.log(p[j] / weights[j]) for j in range(k) if p[j] > 0)

    covered = int((hq_counts > 0).sum())
    return {
        "modes_covered": covered,
        "high_quality": hq_counts.sum() / len(samples),
        "reverse_kl": kl(hq_counts) if hq_counts.sum() > 0 else -math.log(weights.min()),
        "reverse_kl_all": kl(all_counts),
        "all_modes": float(covered == k),
    }


def _check(samples, mixture, threshold=3.0, atol=1e-5):
    got = _metrics_jit(jnp.asarray(samples, jnp.float32), mixture, threshold=threshold)
    assert set(got) == set(metrics.METRIC_NAMES)
    for v in got.values():
        chex.assert_shape(v, ())
        chex.assert_type(v, jnp.float32)
        assert np.isfinite(v)
    want = oracle(samples, mixture.means, mixture.stds, mixture.weights, threshold)
    for name in metrics.METRIC_NAMES:
        np.testing.assert_allclose(got[name], want[name], atol=atol, err_msg=name)
    return {k: float(v) for k, v in got.items()}


def test_default_constants():
    assert metrics.DEFAULT_NUM_EVAL_SAMPLES == 2500
    assert metrics.DEFAULT_THRESHOLD == 3.0


def test_samples_at_means_cover_everything():
    m = data.ring()
    got = _check(np.repeat(np.asarray(m.means), 3, axis=0), m)
    assert got["modes_covered"] == 8 and got["high_quality"] == 1.0 and got["all_modes"] == 1.0
    assert abs(got["reverse_kl"]) < 1e-6 and abs(got["reverse_kl_all"]) < 1e-6


def test_total_collapse_on_one_mode():
    m = data.ring()
    x = np.asarray(m.means[3]) + np.random.default_rng(0).normal(scale=0.005, size=(100, 2))
    got = _check(x, m)
    assert got["modes_covered"] == 1 and got["all_modes"] == 0.0
    np.testing.assert_allclose(got["reverse_kl"], math.log(8), rtol=1e-6)
    np.testing.assert_allclose(got["reverse_kl_all"], math.log(8), rtol=1e-6)


def test_exactly_three_std_is_not_high_quality():
    # Dyadic values make the distance exactly 3 sigma in float32: 0.75 / 0.25 = 3.
    m = data.make_mixture([[0.0, 0.0], [4.0, 0.0]], stds=0.25)
    on_boundary = np.array([[0.75, 0.0], [0.0, -0.75], [4.0, 0.75]])
    got = _check(on_boundary, m)
    assert got["high_quality"] == 0.0 and got["modes_covered"] == 0.0
    # No HQ sample: reverse_kl is the documented upper bound -log(min w) = log 2.
    np.testing.assert_allclose(got["reverse_kl"], math.log(2), rtol=1e-6)
    # All-sample histogram is (2/3, 1/3).
    want_all = 2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3)
    np.testing.assert_allclose(got["reverse_kl_all"], want_all, rtol=1e-5)
    just_inside = np.array([[0.7499, 0.0]])
    assert _check(just_inside, m)["high_quality"] == 1.0
    # The threshold is a (traceable) keyword.
    assert _check(on_boundary, m, threshold=3.5)["modes_covered"] == 2.0


def test_far_point_is_not_high_quality():
    m = data.grid()
    x = np.array([[0.0, 0.0], [100.0, 100.0], [1.0, 1.0]])  # (1,1) is ~28 sigma from any mode
    got = _check(x, m)
    np.testing.assert_allclose(got["high_quality"], 1 / 3, rtol=1e-6)
    assert got["modes_covered"] == 1.0


def test_partial_coverage():
    m = data.ring()
    means = np.asarray(m.means)
    rng = np.random.default_rng(1)
    hq = np.concatenate([means[j] + rng.normal(scale=0.005, size=(10, 2)) for j in (0, 2, 4, 6)])
    junk = np.array([[0.1, 0.05], [3.0, 3.0]])  # low quality, nearest mode assigned anyway
    got = _check(np.concatenate([hq, junk]), m)
    assert got["modes_covered"] == 4.0 and got["all_modes"] == 0.0
    np.testing.assert_allclose(got["high_quality"], 40 / 42, rtol=1e-6)
    np.testing.assert_allclose(got["reverse_kl"], math.log(2), rtol=1e-5)  # log 8 - log 4


@pytest.mark.parametrize(
    "mixture",
    [data.ring(), data.grid(), data.official_lsgan_ring(duplicate_endpoint=True)],
    ids=["ring", "grid", "official_dup"],
)
def test_random_samples_match_oracle(mixture):
    # Mixture samples with inflated noise (many near the 3-sigma boundary) plus uniform junk.
    near = _np_sample(mixture, 400, seed=11, std_scale=2.5)
    far = np.random.default_rng(12).uniform(-5.0, 5.0, size=(100, 2))
    x = np.concatenate([near, far])
    got = _check(x, mixture)
    assert 0.0 < got["high_quality"] < 1.0


def test_vmap_over_runs_equals_per_run():
    m = data.ring()
    runs = np.stack([_np_sample(m, 200, seed=s, std_scale=3.0) for s in range(4)])
    runs[1] = runs[1, :1]  # run 1: total collapse onto one point
    runs[2] = 100.0  # run 2: nothing high quality
    batched = jax.jit(jax.vmap(metrics.mixture_metrics, in_axes=(0, None)))(runs, m)
    for name in metrics.METRIC_NAMES:
        chex.assert_shape(batched[name], (4,))
    for r in range(4):
        single = _metrics_jit(runs[r], m)
        for name in metrics.METRIC_NAMES:
            np.testing.assert_allclose(batched[name][r], single[name], rtol=1e-6, err_msg=name)
    assert batched["modes_covered"][2] == 0.0
    np.testing.assert_allclose(batched["reverse_kl"][2], math.log(8), rtol=1e-6)


def test_official_duplicate_endpoint_weights_enter_reverse_kl():
    m = data.official_lsgan_ring(duplicate_endpoint=True)
    # One sample per distinct mode: p_HQ uniform, w = (2/9, 1/9, ..., 1/9).
    got = _check(np.asarray(m.means), m)
    want = 1 / 8 * math.log((1 / 8) / (2 / 9)) + 7 / 8 * math.log((1 / 8) / (1 / 9))
    np.testing.assert_allclose(got["reverse_kl"], want, rtol=1e-5)
    np.testing.assert_allclose(got["reverse_kl_all"], want, rtol=1e-5)
    assert got["reverse_kl"] > 0
    # Samples distributed exactly like the weights: KL = 0.
    x = np.asarray(m.means)[np.array([0, 0, 1, 2, 3, 4, 5, 6, 7])]
    assert abs(_check(x, m)["reverse_kl"]) < 1e-6
    # No HQ sample: -log(min w) = log 9.
    np.testing.assert_allclose(_check(np.full((3, 2), 50.0), m)["reverse_kl"], math.log(9))


def test_assign_to_modes_and_distances():
    m = data.make_mixture([[0.0, 0.0], [4.0, 0.0]], stds=[0.5, 2.0])
    x = jnp.array([[1.0, 0.0], [2.5, 0.0]])
    d = metrics.normalized_distances(x, m)
    np.testing.assert_allclose(d, [[2.0, 1.5], [5.0, 0.75]])
    mode, dist = metrics.assign_to_modes(x, m)
    # Assignment uses the *normalized* distance (PacGAN), so x=(1,0) goes to the wide mode 1.
    np.testing.assert_array_equal(mode, [1, 1])
    np.testing.assert_allclose(dist, [1.5, 0.75])


def test_bad_inputs():
    m = data.ring()
    with pytest.raises(ValueError, match="vmap"):
        metrics.mixture_metrics(jnp.zeros((2, 5, 2)), m)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        metrics.mixture_metrics(jnp.zeros((5, 3)), m)
    with pytest.raises(ValueError, match="at least one"):
        metrics.mixture_metrics(jnp.zeros((0, 2)), m)
    with pytest.raises(ValueError, match="threshold"):
        metrics.mixture_metrics(jnp.zeros((5, 2)), m, threshold=-1.0)
    with pytest.raises(TypeError, match="Mixture"):
        metrics.mixture_metrics(jnp.zeros((5, 2)), np.zeros((8, 2)))
