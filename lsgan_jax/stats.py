r"""Small statistics for comparing GAN runs over seeds: intervals, exact tests, seeds needed.

Every function is pure (NumPy/SciPy on host values), typed, and documented with the equation it
computes. They serve the result tables (mixture studies, stability, small variance, sweeps):

* a 95 % interval for a **rate** (runs that cover all modes, runs that collapse):
  :func:`wilson_interval`;
* a 95 % interval for a **mean** over seeds (modes covered, high-quality fraction):
  :func:`t_interval`, or :func:`bootstrap_interval` when the t approximation is doubtful;
* a p-value for "is loss A different from loss B": :func:`fisher_exact` on 2×2 counts
  (all-modes / collapse counts) and :func:`permutation_test` on a per-seed metric (modes
  covered);
* how many seeds per group a study needs to detect the observed difference with 80 % power
  at α = 0.05 (two-sided): :func:`seeds_for_proportions` and :func:`seeds_for_means`.

A table must not claim a difference its test does not support: :func:`compare_counts` and
:func:`compare_values` bundle the numbers a comparison row prints, and :func:`verdict` turns a
p-value into the only wording the reports use.

References:
    - E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
      JASA 22 (1927).
    - R. A. Fisher, "The logic of inductive inference", JRSS 98 (1935) (the exact test).
    - B. Efron, R. Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall (1993).
    - J. L. Fleiss, B. Levin, M. C. Paik, "Statistical Methods for Rates and Proportions",
      3rd ed., Wiley (2003), §4.2 (sample size for two proportions).
    - J. Cohen, "Statistical Power Analysis for the Behavioral Sciences", 2nd ed. (1988)
      (power of the two-sample t test; d = 0.5 needs 64 per group).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import special
from scipy import stats as sps

__all__ = [
    "ALPHA",
    "POWER",
    "bootstrap_interval",
    "compare_counts",
    "compare_values",
    "fisher_exact",
    "permutation_test",
    "power_means",
    "power_proportions",
    "seeds_for_means",
    "seeds_for_proportions",
    "t_interval",
    "verdict",
    "wilson_interval",
]

#: Significance level of every test and interval in the reports (two-sided).
ALPHA = 0.05
#: Target power of the "seeds needed" columns.
POWER = 0.8
#: Largest number of group splits a permutation test enumerates exactly.
MAX_EXACT_SPLITS = 200_000
#: Upper end of the seeds-per-group search (a larger answer is reported as "> MAX_SEEDS").
MAX_SEEDS = 100_000


def _check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    return float(confidence)


def _check_counts(successes: int, n: int, what: str = "") -> tuple[int, int]:
    for name, v in ((f"{what}successes", successes), (f"{what}n", n)):
        if isinstance(v, bool) or not float(v).is_integer():
            raise TypeError(f"{name} must be an integer count, got {v!r}.")
    successes, n = int(successes), int(n)
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= {what}successes <= {what}n and n >= 1, got {successes}/{n}.")
    return successes, n


def _values(x: Sequence[float] | np.ndarray, name: str, *, min_len: int = 1) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64).ravel()
    if v.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} value(s), got {v.size}.")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {v}.")
    return v


def _z(q: float) -> float:
    return float(sps.norm.ppf(q))


# ------------------------------------------------------------------------------------------
# Intervals
# ------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    r"""Wilson score interval for a binomial rate p from ``successes`` out of ``n``.

    With p̂ = k/n and z = Φ⁻¹(1 − (1 − confidence)/2):

        centre = (p̂ + z²/(2n)) / (1 + z²/n)
        half   = z/(1 + z²/n) · sqrt(p̂(1 − p̂)/n + z²/(4n²))
        interval = [centre − half, centre + half]  (clipped to [0, 1])

    Unlike the Wald interval it never collapses to a point at k = 0 or k = n, which is the
    usual case with few seeds.

    Args:
        successes: number of successes k (0 <= k <= n).
        n: number of trials (>= 1).
        confidence: coverage, default 0.95.

    Returns:
        ``(low, high)``.

    References:
        Wilson (1927); equals ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
    """
    k, n = _check_counts(successes, n)
    z = _z(1.0 - (1.0 - _check_confidence(confidence)) / 2.0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(
    values: Sequence[float] | np.ndarray, *, confidence: float = 0.95
) -> tuple[float, float]:
    r"""Student-t interval for the mean of ``values`` (i.i.d. seeds).

        x̄ ± t_{n−1, 1−(1−confidence)/2} · s/√n,   s² = Σ(x_i − x̄)²/(n − 1)

    With all values equal (s = 0) the interval is the point ``(x̄, x̄)``.

    Args:
        values: per-seed values (at least 2).
        confidence: coverage, default 0.95.

    Returns:
        ``(low, high)``.

    References:
        Student (1908); equals ``scipy.stats.t.interval(confidence, n − 1, x̄, s/√n)``.
    """
    v = _values(values, "values", min_len=2)
    conf = _check_confidence(confidence)
    n = v.size
    mean, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(n))
    half = float(sps.t.ppf(1.0 - (1.0 - conf) / 2.0, n - 1)) * se
    return mean - half, mean + half


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    r"""Percentile bootstrap interval for the mean of ``values``.

    Draw B resamples x*_b of size n with replacement, compute their means m_b, and return the
    (α/2, 1 − α/2) empirical quantiles of {m_b}, α = 1 − confidence (NumPy's default linear
    quantile interpolation). With n seeds there are only C(2n − 1, n) distinct resamples, so
    for a handful of seeds the interval is too narrow: prefer :func:`t_interval` there.

    Args:
        values: per-seed values (at least 2).
        confidence: coverage, default 0.95.
        n_resamples: number of bootstrap resamples B.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``(low, high)``.

    References:
        Efron & Tibshirani (1993), ch. 13; agrees with
        ``scipy.stats.bootstrap(method="percentile")`` up to Monte-Carlo error.
    """
    v = _values(values, "values", min_len=2)
    alpha = 1.0 - _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}.")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_resamples, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------


def fisher_exact(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, alternative: str = "two-sided"
) -> float:
    r"""Fisher's exact test on the 2×2 table [[k_a, n_a − k_a], [k_b, n_b − k_b]].

    Given the margins, k_a follows the hypergeometric law
    P(k) = C(K, k)·C(N − K, n_a − k)/C(N, n_a), N = n_a + n_b, K = k_a + k_b. The p-value is

    * two-sided: Σ P(k) over all k with P(k) ≤ P(k_a)·(1 + 1e−7) (the "as or less likely"
      rule, with SciPy's relative tolerance);
    * "greater" (rate of A larger): P(k ≥ k_a); "less": P(k ≤ k_a).

    Args:
        successes_a, n_a: successes and runs of group A (e.g. LSGAN runs covering all modes).
        successes_b, n_b: the same for group B (e.g. the GAN).
        alternative: "two-sided", "greater" or "less".

    Returns:
        The p-value.

    References:
        Fisher (1935); equals ``scipy.stats.fisher_exact`` on the same table.
    """
    ka, na = _check_counts(successes_a, n_a, "a: ")
    kb, nb = _check_counts(successes_b, n_b, "b: ")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative={alternative!r}; choose 'two-sided', 'greater' or 'less'.")
    big_n, big_k = na + nb, ka + kb
    support = np.arange(max(0, big_k - nb), min(na, big_k) + 1)
    log_p = (
        special.gammaln(big_k + 1)
        - special.gammaln(support + 1)
        - special.gammaln(big_k - support + 1)
        + special.gammaln(big_n - big_k + 1)
        - special.gammaln(na - support + 1)
        - special.gammaln(big_n - big_k - na + support + 1)
        - (special.gammaln(big_n + 1) - special.gammaln(na + 1) - special.gammaln(big_n - na + 1))
    )
    pmf = np.exp(log_p)
    if alternative == "greater":
        p = pmf[support >= ka].sum()
    elif alternative == "less":
        p = pmf[support <= ka].sum()
    else:
        p_obs = pmf[support == ka][0]
        p = pmf[pmf <= p_obs * (1.0 + 1e-7)].sum()
    return float(min(1.0, p))


def permutation_test(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    alternative: str = "two-sided",
    n_resamples: int = 99_999,
    seed: int = 0,
    max_exact: int = MAX_EXACT_SPLITS,
) -> float:
    r"""Permutation test of equal means for two independent groups (statistic x̄ − ȳ).

    Under H₀ (exchangeable labels) every split of the pooled n_x + n_y values into groups of
    sizes n_x and n_y is equally likely. With T = x̄ − ȳ and its null distribution {T_s}:

        p_greater = #{T_s ≥ T_obs − γ}/S,  p_less = #{T_s ≤ T_obs + γ}/S,
        p_two-sided = min(1, 2·min(p_less, p_greater)),   γ = 100·ε_machine·|T_obs|

    The null distribution is enumerated exactly over all C(n_x + n_y, n_x) splits when there
    are at most ``max_exact`` of them; otherwise ``n_resamples`` random splits are drawn and
    both counts get +1 in numerator and denominator (the observed split is one of them).

    Args:
        x, y: per-seed values of the two groups (each at least 1 value).
        alternative: "two-sided", "greater" (mean of x larger) or "less".
        n_resamples: random splits when enumeration is too large.
        seed: seed of ``numpy.random.default_rng`` for the random splits.
        max_exact: enumerate exactly up to this many splits.

    Returns:
        The p-value.

    References:
        Fisher (1935), §21; equals ``scipy.stats.permutation_test(..., permutation_type=
        "independent")`` with the difference of means (exactly, when both enumerate).
    """
    xv, yv = _values(x, "x"), _values(y, "y")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative={alternative!r}; choose 'two-sided', 'greater' or 'less'.")
    pooled = np.concatenate([xv, yv])
    nx, n = xv.size, pooled.size
    total = pooled.sum()

    def stat(sum_x: np.ndarray | float) -> np.ndarray | float:
        return sum_x / nx - (total - sum_x) / (n - nx)

    observed = float(stat(xv.sum()))
    exact = math.comb(n, nx) <= max_exact
    if exact:
        sums = np.fromiter(
            (pooled[list(c)].sum() for c in itertools.combinations(range(n), nx)),
            dtype=np.float64,
            count=math.comb(n, nx),
        )
        adjust = 0
    else:
        rng = np.random.default_rng(seed)
        sums = np.empty(n_resamples)
        for lo in range(0, n_resamples, 4096):  # random splits in chunks (bounded memory)
            hi = min(lo + 4096, n_resamples)
            idx = np.argsort(rng.random((hi - lo, n)), axis=1)[:, :nx]
            sums[lo:hi] = pooled[idx].sum(axis=1)
        adjust = 1
    null = stat(sums)
    gamma = abs(100.0 * np.finfo(np.float64).eps * observed)
    count = null.size + adjust
    p_less = (np.count_nonzero(null <= observed + gamma) + adjust) / count
    p_greater = (np.count_nonzero(null >= observed - gamma) + adjust) / count
    if alternative == "less":
        return float(p_less)
    if alternative == "greater":
        return float(p_greater)
    return float(min(1.0, 2.0 * min(p_less, p_greater)))


# ------------------------------------------------------------------------------------------
# Power and seeds needed
# ------------------------------------------------------------------------------------------


def power_proportions(p_a: float, p_b: float, n: int, *, alpha: float = ALPHA) -> float:
    r"""Power of the two-sided two-proportion z test with ``n`` runs per group.

    Normal approximation (Fleiss et al. 2003, §4.2), p̄ = (p_a + p_b)/2, q = 1 − p:

        power(n) = Φ( (|p_a − p_b|·√n − z_{1−α/2}·√(2 p̄ q̄)) / √(p_a q_a + p_b q_b) )

    (the far rejection tail is ignored, as in the textbook formula).

    Args:
        p_a, p_b: the two true rates.
        n: runs per group.
        alpha: two-sided significance level.

    Returns:
        The power in [0, 1].
    """
    for name, p in (("p_a", p_a), ("p_b", p_b)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}.")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    diff = abs(p_a - p_b)
    if diff == 0.0:
        return alpha
    pbar = (p_a + p_b) / 2.0
    sd_alt = math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    num = diff * math.sqrt(n) - _z(1 - alpha / 2) * math.sqrt(2 * pbar * (1 - pbar))
    if sd_alt == 0.0:  # 0 vs 1: the z statistic is deterministic
        return 1.0 if num > 0 else 0.0
    return float(sps.norm.cdf(num / sd_alt))


def seeds_for_proportions(
    p_a: float, p_b: float, *, power: float = POWER, alpha: float = ALPHA
) -> float:
    r"""Runs per group for the two-proportion z test to reach ``power`` at rates p_a, p_b.

    Closed form of the normal approximation (Fleiss et al. 2003, eq. 4.14 without continuity
    correction):

        n = ⌈ (z_{1−α/2}·√(2 p̄ q̄) + z_{power}·√(p_a q_a + p_b q_b))² / (p_a − p_b)² ⌉

    Args:
        p_a, p_b: the rates (e.g. the observed all-modes rates of LSGAN and the GAN).
        power: target power (0.8).
        alpha: two-sided level (0.05).

    Returns:
        The number of runs per group (>= 2), or ``math.inf`` when p_a == p_b (no effect to
        detect).
    """
    for name, p in (("p_a", p_a), ("p_b", p_b)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}.")
    if p_a == p_b:
        return math.inf
    pbar = (p_a + p_b) / 2.0
    num = _z(1 - alpha / 2) * math.sqrt(2 * pbar * (1 - pbar)) + _z(power) * math.sqrt(
        p_a * (1 - p_a) + p_b * (1 - p_b)
    )
    return float(max(2, math.ceil((num / (p_a - p_b)) ** 2 - 1e-9)))


def power_means(effect_size: float, n: int, *, alpha: float = ALPHA) -> float:
    r"""Exact power of the two-sided pooled two-sample t test with ``n`` seeds per group.

    With Cohen's d = |μ_a − μ_b|/σ, the statistic follows a noncentral t with ν = 2n − 2
    degrees of freedom and noncentrality δ = d·√(n/2):

        power = P(T_{ν,δ} > t_{ν,1−α/2}) + P(T_{ν,δ} < −t_{ν,1−α/2})

    Args:
        effect_size: Cohen's d (>= 0).
        n: seeds per group (>= 2).
        alpha: two-sided level.

    Returns:
        The power.

    References:
        Cohen (1988), ch. 2.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}.")
    d = abs(float(effect_size))
    nu, delta = 2 * n - 2, d * math.sqrt(n / 2.0)
    crit = float(sps.t.ppf(1 - alpha / 2, nu))
    return float(sps.nct.sf(crit, nu, delta) + sps.nct.cdf(-crit, nu, delta))


def seeds_for_means(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    power: float = POWER,
    alpha: float = ALPHA,
) -> float:
    r"""Seeds per group for the two-sided t test to reach ``power`` at the observed effect.

    d = |x̄ − ȳ| / s_p with the pooled standard deviation
    s_p² = ((n_x − 1)s_x² + (n_y − 1)s_y²)/(n_x + n_y − 2); the answer is the smallest n with
    :func:`power_means` (d, n) ≥ ``power``.

    Args:
        x, y: per-seed values of the two groups (each at least 2).
        power: target power (0.8).
        alpha: two-sided level (0.05).

    Returns:
        Seeds per group; ``math.inf`` when the means are equal; 2 when they differ and both
        groups have zero spread (any test separates them); ``math.inf`` beyond ``MAX_SEEDS``.
    """
    xv, yv = _values(x, "x", min_len=2), _values(y, "y", min_len=2)
    diff = abs(xv.mean() - yv.mean())
    if diff == 0.0:
        return math.inf
    pooled_var = ((xv.size - 1) * xv.var(ddof=1) + (yv.size - 1) * yv.var(ddof=1)) / (
        xv.size + yv.size - 2
    )
    if pooled_var == 0.0:
        return 2.0
    d = diff / math.sqrt(pooled_var)
    lo, hi = 2, 2
    while power_means(d, hi, alpha=alpha) < power:
        if hi >= MAX_SEEDS:
            return math.inf
        lo, hi = hi, min(2 * hi, MAX_SEEDS)
    while lo < hi:  # smallest n in [lo, hi] with enough power (power increases with n)
        mid = (lo + hi) // 2
        if power_means(d, mid, alpha=alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return float(hi)


# ------------------------------------------------------------------------------------------
# Comparison rows
# ------------------------------------------------------------------------------------------


def verdict(p_value: float, *, alpha: float = ALPHA) -> str:
    """The only words a report uses for a test: a difference is claimed iff p < alpha.

    Returns:
        ``"different (p < α)"`` or ``"no detectable difference"``.
    """
    return f"different (p < {alpha:g})" if p_value < alpha else "no detectable difference"


def compare_counts(successes_a: int, n_a: int, successes_b: int, n_b: int) -> dict:
    """Rates, Wilson intervals, Fisher's two-sided p and seeds needed for one 2×2 comparison.

    Returns:
        ``{"rate_a", "ci_a", "rate_b", "ci_b", "p_fisher", "seeds_needed"}`` (intervals 95 %;
        seeds per group for 80 % power at the observed rates, :func:`seeds_for_proportions`).
    """
    ka, na = _check_counts(successes_a, n_a, "a: ")
    kb, nb = _check_counts(successes_b, n_b, "b: ")
    return {
        "rate_a": ka / na,
        "ci_a": wilson_interval(ka, na),
        "rate_b": kb / nb,
        "ci_b": wilson_interval(kb, nb),
        "p_fisher": fisher_exact(ka, na, kb, nb),
        "seeds_needed": seeds_for_proportions(ka / na, kb / nb),
    }


def compare_values(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> dict:
    """Means, t intervals, permutation p and seeds needed for one per-seed metric.

    Returns:
        ``{"mean_a", "ci_a", "mean_b", "ci_b", "p_permutation", "seeds_needed"}`` (95 % t
        intervals; two-sided permutation test on the difference of means; seeds per group for
        80 % power of the t test at the observed effect, :func:`seeds_for_means`).
    """
    xv, yv = _values(x, "x", min_len=2), _values(y, "y", min_len=2)
    return {
        "mean_a": float(xv.mean()),
        "ci_a": t_interval(xv),
        "mean_b": float(yv.mean()),
        "ci_b": t_interval(yv),
        "p_permutation": permutation_test(xv, yv),
        "seeds_needed": seeds_for_means(xv, yv),
    }
