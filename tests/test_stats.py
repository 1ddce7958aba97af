"""lsgan_jax.stats against SciPy, closed forms and simulation oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from lsgan_jax import stats


@pytest.mark.parametrize("k,n", [(0, 3), (3, 3), (1, 3), (0, 10), (7, 10), (65, 200), (1, 1)])
@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_wilson_interval_equals_scipy(k, n, confidence):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    np.testing.assert_allclose(
        stats.wilson_interval(k, n, confidence=confidence), (ref.low, ref.high), atol=1e-12
    )


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError, match="successes"):
        stats.wilson_interval(4, 3)
    with pytest.raises(TypeError, match="integer"):
        stats.wilson_interval(1.5, 3)
    with pytest.raises(ValueError, match="confidence"):
        stats.wilson_interval(1, 3, confidence=95)


@pytest.mark.parametrize("values", [[6, 7, 6], [8.0, 8.0, 7.0, 5.0, 8.0, 6.0], [0.1, 0.3]])
def test_t_interval_equals_scipy(values):
    v = np.asarray(values, float)
    ref = sps.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=sps.sem(v))
    np.testing.assert_allclose(stats.t_interval(v), ref, rtol=1e-12)
    assert stats.t_interval([5, 5, 5]) == (5.0, 5.0)
    with pytest.raises(ValueError, match="at least 2"):
        stats.t_interval([1.0])


def test_bootstrap_interval_matches_scipy_percentile_and_exact_enumeration():
    rng = np.random.default_rng(0)
    v = rng.normal(size=12)
    ours = stats.bootstrap_interval(v, n_resamples=40_000, seed=1)
    ref = sps.bootstrap(
        (v,), np.mean, method="percentile", n_resamples=40_000, random_state=2
    ).confidence_interval
    np.testing.assert_allclose(ours, (ref.low, ref.high), atol=0.02)
    # exact bootstrap distribution for 4 values: all 4**4 equally likely resamples
    small = np.array([1.0, 2.0, 4.0, 9.0])
    grid = np.stack(np.meshgrid(*[small] * 4, indexing="ij"), -1).reshape(-1, 4).mean(1)
    exact = np.quantile(grid, [0.025, 0.975])
    np.testing.assert_allclose(
        stats.bootstrap_interval(small, n_resamples=200_000), exact, atol=0.1
    )


@pytest.mark.parametrize(
    "table", [(3, 3, 0, 3), (10, 10, 1, 10), (2, 10, 3, 10), (65, 200, 44, 200), (0, 5, 0, 5)]
)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_fisher_exact_equals_scipy(table, alternative):
    ka, na, kb, nb = table
    ref = sps.fisher_exact([[ka, na - ka], [kb, nb - kb]], alternative=alternative).pvalue
    assert stats.fisher_exact(ka, na, kb, nb, alternative=alternative) == pytest.approx(
        ref, rel=1e-9, abs=1e-15
    )


def test_fisher_exact_random_tables_equal_scipy():
    rng = np.random.default_rng(3)
    for _ in range(50):
        na, nb = rng.integers(1, 40, size=2)
        ka, kb = rng.integers(0, na + 1), rng.integers(0, nb + 1)
        ref = sps.fisher_exact([[ka, na - ka], [kb, nb - kb]]).pvalue
        assert stats.fisher_exact(ka, na, kb, nb) == pytest.approx(ref, rel=1e-9, abs=1e-15)


def _scipy_perm(x, y, alternative, n_resamples=np.inf, rng=None):
    def diff(a, b, axis):
        return np.mean(a, axis=axis) - np.mean(b, axis=axis)

    return sps.permutation_test(
        (x, y), diff, permutation_type="independent", vectorized=True,
        alternative=alternative, n_resamples=n_resamples, rng=rng,
    ).pvalue  # fmt: skip


@pytest.mark.parametrize(
    "x,y",
    [([6, 7, 6], [6, 5, 7]), ([8, 8, 7, 8, 6], [5, 6, 6, 7, 4]), ([1.5, 2.5], [0.5, 0.1, 0.2])],
)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_permutation_test_exact_equals_scipy(x, y, alternative):
    ref = _scipy_perm(np.asarray(x, float), np.asarray(y, float), alternative)
    assert stats.permutation_test(x, y, alternative=alternative) == pytest.approx(ref, rel=1e-12)


def test_permutation_test_random_splits_agree_with_exact():
    rng = np.random.default_rng(4)
    x, y = rng.integers(3, 9, size=10).astype(float), rng.integers(2, 8, size=10).astype(float)
    exact = stats.permutation_test(x, y)
    mc = stats.permutation_test(x, y, max_exact=0, n_resamples=40_000, seed=5)
    assert mc == pytest.approx(exact, abs=0.01)
    ref = _scipy_perm(x, y, "two-sided")
    assert exact == pytest.approx(ref, rel=1e-12)
    # identical groups: p = 1; perfectly separated 5 vs 5: p = 2 / C(10, 5)
    assert stats.permutation_test([1, 1, 1], [1, 1, 1]) == 1.0
    assert stats.permutation_test(np.arange(5) + 10, np.arange(5)) == pytest.approx(2 / 252)


def test_seeds_for_means_matches_cohen_and_simulated_power():
    # Cohen (1988) Table 2.4.1: d = 0.5, alpha = .05 two-sided, power .80 -> 64 per group.
    x = np.array([-0.25, 0.25] * 50) * 2 + 0.5  # mean 0.5, pooled sd ~ 0.5025
    y = np.array([-0.25, 0.25] * 50) * 2
    sd = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
    d = 0.5 / sd
    n = stats.seeds_for_means(x, y)
    assert stats.power_means(d, int(n)) >= 0.8 > stats.power_means(d, int(n) - 1)
    assert stats.power_means(0.5, 64) >= 0.8 > stats.power_means(0.5, 63)
    # simulation oracle of the power function: pooled t tests at n = 20, d = 0.8
    rng = np.random.default_rng(6)
    a = rng.normal(0.8, 1.0, size=(20_000, 20))
    b = rng.normal(0.0, 1.0, size=(20_000, 20))
    sim = np.mean(sps.ttest_ind(a, b, axis=1).pvalue < 0.05)
    assert stats.power_means(0.8, 20) == pytest.approx(sim, abs=0.012)
    assert stats.seeds_for_means([1, 2, 3], [1, 2, 3]) == math.inf
    assert stats.seeds_for_means([5, 5], [6, 6]) == 2.0


def test_seeds_for_proportions_closed_form_and_simulated_power():
    # Fleiss et al. closed form by hand for 0.6 vs 0.4: (1.95996*0.5*sqrt2 + 0.84162*sqrt(.48))^2/.04
    z_a, z_b = 1.959963984540054, 0.8416212335729143
    expected = math.ceil((z_a * math.sqrt(0.5) + z_b * math.sqrt(0.48)) ** 2 / 0.04)
    n = stats.seeds_for_proportions(0.6, 0.4)
    assert n == expected == 97
    assert stats.power_proportions(0.6, 0.4, 97) >= 0.8 > stats.power_proportions(0.6, 0.4, 96)
    # simulation oracle: the pooled two-proportion z test at n per group rejects ~80 % of the time
    rng = np.random.default_rng(7)
    ka, kb = rng.binomial(97, 0.6, 40_000), rng.binomial(97, 0.4, 40_000)
    pooled = (ka + kb) / (2 * 97)
    z = (ka - kb) / 97 / np.sqrt(pooled * (1 - pooled) * 2 / 97)
    assert np.mean(np.abs(z) > z_a) == pytest.approx(0.8, abs=0.015)
    assert stats.seeds_for_proportions(0.3, 0.3) == math.inf
    with pytest.raises(ValueError, match="p_a"):
        stats.seeds_for_proportions(1.2, 0.3)


def test_compare_rows_and_verdict():
    row = stats.compare_counts(3, 3, 0, 3)
    assert row["p_fisher"] == pytest.approx(0.1)
    assert row["ci_a"][1] == 1.0 and row["ci_b"][0] == 0.0
    assert row["seeds_needed"] == 2.0
    vals = stats.compare_values([6, 7, 6], [6, 5, 7])
    assert vals["mean_a"] == pytest.approx(19 / 3) and vals["p_permutation"] == pytest.approx(
        _scipy_perm(np.array([6.0, 7, 6]), np.array([6.0, 5, 7]), "two-sided")
    )
    assert stats.verdict(0.049) == "different (p < 0.05)"
    assert stats.verdict(0.1) == "no detectable difference"
