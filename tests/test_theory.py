"""Tests for lsgan_jax.theory: closed forms against NumPy oracles on discretized Gaussians."""

from __future__ import annotations

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsgan_jax import losses, theory

# ------------------------------------------------------------------------------------------
# Densities: two Gaussians discretized on a 1-D grid, normalized so that Σ p · dx = 1
# ------------------------------------------------------------------------------------------

X = np.linspace(-8.0, 8.0, 801)
DX = float(X[1] - X[0])


def _gauss(mu, sigma, x=X, dx=DX):
    p = np.exp(-0.5 * ((x - mu) / sigma) ** 2)
    return p / (p.sum() * dx)


PD = _gauss(-1.0, 1.0)
PG = _gauss(1.5, 0.7)


def _truncated(p, lo, hi):
    """A density with exact zeros outside [lo, hi] (renormalized)."""
    q = np.where((X >= lo) & (X <= hi), p, 0.0)
    return q / (q.sum() * DX)


# Supports overlap on [-1, 1]; both vanish outside [-3, 3].
PD_ZEROS = _truncated(PD, -3.0, 1.0)
PG_ZEROS = _truncated(PG, -1.0, 3.0)

F32 = lambda x: jnp.asarray(x, jnp.float32)

PEARSON_LIKE = [(-1.0, 1.0, 0.0), (0.0, 2.0, 1.0), (-3.0, -1.0, -2.0)]
OTHER_CODINGS = [(0.0, 1.0, 1.0), (0.2, 0.9, 0.5), (-1.0, 1.0, 1.0)]


# ------------------------------------------------------------------------------------------
# NumPy oracles (float64)
# ------------------------------------------------------------------------------------------


def np_d_star(pd, pg, a, b):
    s = pd + pg
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, (b * pd + a * pg) / s, 0.5 * (a + b))


def np_lsgan_criterion(pd, pg, a, b, c, dx=DX):
    d = np_d_star(pd, pg, a, b)
    return 0.5 * np.sum(pd * (d - c) ** 2 + pg * (d - c) ** 2) * dx


def np_triangular(p, q, dx=DX):
    s = p + q
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(np.where(s > 0, (p - q) ** 2 / s, 0.0)) * dx


def np_kl(p, q, dx=DX):
    mask = p > 0
    return np.sum(p[mask] * np.log(p[mask] / q[mask])) * dx


def np_jsd(p, q, dx=DX):
    m = 0.5 * (p + q)
    return 0.5 * np_kl(p, m, dx) + 0.5 * np_kl(q, m, dx)


def np_gan_value_at_optimum(pd, pg, dx=DX):
    """E_pd[log D*] + E_pg[log(1 − D*)] with D* = pd/(pd + pg), computed directly."""
    s = pd + pg
    total = 0.0
    mask = pd > 0
    total += np.sum(pd[mask] * np.log(pd[mask] / s[mask]))
    mask = pg > 0
    total += np.sum(pg[mask] * np.log(pg[mask] / s[mask]))
    return total * dx


# ------------------------------------------------------------------------------------------
# Optimal discriminator
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", PEARSON_LIKE + OTHER_CODINGS, ids=str)
def test_optimal_discriminator_matches_formula(coding):
    a, b, _ = coding
    got = jax.jit(lambda p, q: theory.optimal_discriminator(p, q, a=a, b=b))(F32(PD), F32(PG))
    np.testing.assert_allclose(np.asarray(got), np_d_star(PD, PG, a, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("coding", [(-1.0, 1.0), (0.0, 1.0), (0.3, -2.0)], ids=str)
def test_optimal_discriminator_minimizes_pointwise_objective(coding):
    a, b = coding
    cells = np.arange(250, 560, 10)  # where both densities carry mass
    pd, pg = PD[cells], PG[cells]
    d_star = np.asarray(theory.optimal_discriminator(F32(pd), F32(pg), a=a, b=b))

    # Dense grid search over D.
    grid = np.linspace(min(a, b) - 1.0, max(a, b) + 1.0, 20001)
    objective = pd[:, None] * (grid[None] - b) ** 2 + pg[:, None] * (grid[None] - a) ** 2
    best = grid[np.argmin(objective, axis=1)]
    np.testing.assert_allclose(d_star, best, atol=2e-3)

    # Stationary point with positive curvature.
    def pointwise(d, p, q):
        return p * (d - b) ** 2 + q * (d - a) ** 2

    first = jax.vmap(jax.grad(pointwise))(F32(d_star), F32(pd), F32(pg))
    second = jax.vmap(jax.grad(jax.grad(pointwise)))(F32(d_star), F32(pd), F32(pg))
    np.testing.assert_allclose(np.asarray(first), 0.0, atol=1e-5)
    assert bool(jnp.all(second > 0))


def test_optimal_discriminator_at_equal_densities_is_midpoint():
    for a, b, _ in PEARSON_LIKE + OTHER_CODINGS:
        got = theory.optimal_discriminator(F32(PD), F32(PD), a=a, b=b)
        np.testing.assert_allclose(np.asarray(got), 0.5 * (a + b), atol=1e-6)
    # Cells with no mass get the midpoint too (any D is optimal there).
    got = theory.optimal_discriminator(jnp.zeros(3), jnp.zeros(3), a=-1.0, b=1.0)
    np.testing.assert_array_equal(np.asarray(got), 0.0)


# ------------------------------------------------------------------------------------------
# The LSGAN criterion and the Pearson χ² identity
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", PEARSON_LIKE + OTHER_CODINGS, ids=str)
def test_lsgan_criterion_matches_oracle(coding):
    a, b, c = coding
    got = jax.jit(lambda p, q: theory.lsgan_criterion(p, q, a=a, b=b, c=c, dx=DX))(F32(PD), F32(PG))
    np.testing.assert_allclose(float(got), np_lsgan_criterion(PD, PG, a, b, c), rtol=1e-5)


@pytest.mark.parametrize("coding", PEARSON_LIKE, ids=str)
def test_pearson_identity_when_b_minus_c_1_and_b_minus_a_2(coding):
    a, b, c = coding
    assert b - c == 1.0 and b - a == 2.0
    pd, pg = F32(PD), F32(PG)
    two_c = 2.0 * float(theory.lsgan_criterion(pd, pg, a=a, b=b, c=c, dx=DX))
    want = np_triangular(PD, PG)  # Σ (pd − pg)²/(pd + pg) dx
    assert want > 0.1  # the two Gaussians are well apart
    np.testing.assert_allclose(two_c, want, rtol=1e-5)
    np.testing.assert_allclose(
        two_c, float(theory.pearson_chi2(pd + pg, 2.0 * pg, dx=DX)), rtol=1e-5
    )
    np.testing.assert_allclose(
        two_c, float(theory.triangular_discrimination(pd, pg, dx=DX)), rtol=1e-5
    )


@pytest.mark.parametrize("coding", [tuple(losses.ZERO_ONE), (0.2, 0.9, 0.5)], ids=str)
def test_pearson_identity_fails_for_other_codings(coding):
    a, b, c = coding
    two_c = 2.0 * float(theory.lsgan_criterion(F32(PD), F32(PG), a=a, b=b, c=c, dx=DX))
    assert abs(two_c - np_triangular(PD, PG)) > 0.05


def test_lsgan_criterion_is_the_expected_generator_loss_at_d_star():
    # C(G) = E_pd[½(D* − c)²] + E_pg[½(D* − c)²], with the losses module's elementwise G loss.
    for a, b, c in PEARSON_LIKE + OTHER_CODINGS:
        d_star = theory.optimal_discriminator(F32(PD), F32(PG), a=a, b=b)
        g = losses.lsgan_generator_loss(d_star, c=c, reduction="none")
        want = float(jnp.sum((F32(PD) + F32(PG)) * g) * DX)
        got = float(theory.lsgan_criterion(F32(PD), F32(PG), a=a, b=b, c=c, dx=DX))
        np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize(
    "coding, d_loss, g_loss",
    [(losses.ZERO_ONE, 0.25, 0.125), (losses.PEARSON_CHI2, 1.0, 0.0)],
    ids=["zero_one", "pearson"],
)
def test_equilibrium_losses_at_d_star_when_pg_equals_pd(coding, d_loss, g_loss):
    a, b, c = coding
    p = F32(PD)
    d_star = theory.optimal_discriminator(p, p, a=a, b=b)
    # Per-sample means (every D* value is the same) ...
    assert float(losses.lsgan_discriminator_loss(d_star, d_star, a=a, b=b)) == pytest.approx(
        d_loss, abs=1e-6
    )
    assert float(losses.lsgan_generator_loss(d_star, c=c)) == pytest.approx(g_loss, abs=1e-6)
    # ... and expectations under p (Σ p · loss · dx).
    d_elem = losses.lsgan_discriminator_loss(d_star, d_star, a=a, b=b, reduction="none")
    g_elem = losses.lsgan_generator_loss(d_star, c=c, reduction="none")
    assert float(jnp.sum(p * d_elem) * DX) == pytest.approx(d_loss, abs=1e-5)
    assert float(jnp.sum(p * g_elem) * DX) == pytest.approx(g_loss, abs=1e-5)


def test_lsgan_criterion_vmaps_over_traced_coding():
    codings = np.array(PEARSON_LIKE + OTHER_CODINGS, np.float32)
    pd, pg = F32(PD), F32(PG)
    got = jax.jit(jax.vmap(lambda a, b, c: theory.lsgan_criterion(pd, pg, a=a, b=b, c=c, dx=DX)))(
        codings[:, 0], codings[:, 1], codings[:, 2]
    )
    for i, (a, b, c) in enumerate(codings.tolist()):
        np.testing.assert_allclose(float(got[i]), np_lsgan_criterion(PD, PG, a, b, c), rtol=1e-5)


def test_two_dimensional_grid():
    x = np.linspace(-5.0, 5.0, 81)
    dx1 = float(x[1] - x[0])
    g1, g2 = _gauss(-1.0, 1.0, x, dx1), _gauss(1.0, 1.2, x, dx1)
    pd2, pg2 = np.outer(g1, g2), np.outer(g2, g2)  # both integrate to 1 with cell area dx1²
    a, b, c = losses.PEARSON_CHI2
    got = theory.lsgan_criterion(F32(pd2), F32(pg2), a=a, b=b, c=c, dx=dx1**2)
    np.testing.assert_allclose(float(got), 0.5 * np_triangular(pd2, pg2, dx1**2), rtol=1e-5)


# ------------------------------------------------------------------------------------------
# Divergences
# ------------------------------------------------------------------------------------------


def test_pearson_chi2_first_argument_is_the_denominator():
    p, q = F32(PD), F32(PG)
    mix = 0.5 * (PD + PG)
    got = float(theory.pearson_chi2(F32(mix), q, dx=DX))
    want = np.sum((PG - mix) ** 2 / mix) * DX  # ∫ (q − p)²/p
    np.testing.assert_allclose(got, want, rtol=1e-5)
    swapped = np.sum((PG - mix) ** 2 / PG) * DX
    assert abs(got - swapped) > 0.1 * want
    assert float(theory.pearson_chi2(p, p, dx=DX)) == pytest.approx(0.0, abs=1e-7)
    doc = theory.pearson_chi2.__doc__
    assert "first argument" in doc.lower() and "denominator" in doc


def test_pearson_chi2_with_zeros():
    p = jnp.array([0.0, 0.5, 0.5, 0.0])
    # p = q = 0 cells contribute 0.
    assert float(theory.pearson_chi2(p, jnp.array([0.0, 1.0, 0.0, 0.0]))) == pytest.approx(1.0)
    # q has mass where p has none: the divergence is infinite (not NaN).
    assert float(theory.pearson_chi2(p, jnp.array([1.0, 0.0, 1.0, 0.0]))) == math.inf
    grad = jax.grad(theory.pearson_chi2, argnums=(0, 1))(p, jnp.array([1.0, 0.0, 1.0, 0.0]))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grad)


def test_triangular_discrimination_matches_oracle_and_is_symmetric():
    got = float(theory.triangular_discrimination(F32(PD), F32(PG), dx=DX))
    np.testing.assert_allclose(got, np_triangular(PD, PG), rtol=1e-5)
    swapped = float(theory.triangular_discrimination(F32(PG), F32(PD), dx=DX))
    assert got == pytest.approx(swapped, rel=1e-6)


def test_jensen_shannon_matches_oracle():
    got = float(jax.jit(lambda p, q: theory.jensen_shannon(p, q, dx=DX))(F32(PD), F32(PG)))
    want = np_jsd(PD, PG)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert 0.0 < got < math.log(2.0)
    # Disjoint supports: JSD = log 2.
    js = theory.jensen_shannon(jnp.array([2.0, 0.0]), jnp.array([0.0, 2.0]), dx=0.5)
    assert float(js) == pytest.approx(math.log(2.0), rel=1e-6)


def test_gan_criterion():
    pd, pg = F32(PD), F32(PG)
    got = float(jax.jit(lambda p, q: theory.gan_criterion(p, q, dx=DX))(pd, pg))
    np.testing.assert_allclose(got, -math.log(4.0) + 2.0 * np_jsd(PD, PG), rtol=1e-5, atol=1e-6)
    # The GAN discriminator objective evaluated directly at its optimum D* = pd/(pd + pg).
    np.testing.assert_allclose(got, np_gan_value_at_optimum(PD, PG), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        float(theory.gan_criterion(pd, pd, dx=DX)), -math.log(4.0), rtol=1e-6, atol=1e-6
    )
    assert got > -math.log(4.0)


# ------------------------------------------------------------------------------------------
# Zeros in the densities: finite values and NaN-free gradients
# ------------------------------------------------------------------------------------------


def _all_quantities(pd, pg):
    a, b, c = losses.PEARSON_CHI2
    return {
        "d_star": jnp.sum(theory.optimal_discriminator(pd, pg, a=a, b=b)),
        "lsgan_pearson": theory.lsgan_criterion(pd, pg, a=a, b=b, c=c, dx=DX),
        "lsgan_zero_one": theory.lsgan_criterion(pd, pg, a=0.0, b=1.0, c=1.0, dx=DX),
        "pearson_chi2": theory.pearson_chi2(pd + pg, 2.0 * pg, dx=DX),
        "triangular": theory.triangular_discrimination(pd, pg, dx=DX),
        "jensen_shannon": theory.jensen_shannon(pd, pg, dx=DX),
        "gan_criterion": theory.gan_criterion(pd, pg, dx=DX),
    }


def test_zeros_in_densities_give_finite_values_and_gradients():
    assert np.sum((PD_ZEROS == 0) & (PG_ZEROS == 0)) > 0  # cells with no mass at all
    assert np.sum((PD_ZEROS == 0) & (PG_ZEROS > 0)) > 0  # and cells with one-sided mass
    pd, pg = F32(PD_ZEROS), F32(PG_ZEROS)
    values = jax.jit(_all_quantities)(pd, pg)
    for name, value in values.items():
        assert bool(jnp.isfinite(value)), name

    for name in values:
        grads = jax.jit(jax.grad(lambda p, q, n=name: _all_quantities(p, q)[n], argnums=(0, 1)))(
            pd, pg
        )
        for g in grads:
            assert bool(jnp.all(jnp.isfinite(g))), name

    # Values still match the oracles.
    a, b, c = losses.PEARSON_CHI2
    np.testing.assert_allclose(
        float(values["lsgan_pearson"]),
        np_lsgan_criterion(PD_ZEROS, PG_ZEROS, a, b, c),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        2.0 * float(values["lsgan_pearson"]), float(values["pearson_chi2"]), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(values["gan_criterion"]), np_gan_value_at_optimum(PD_ZEROS, PG_ZEROS), rtol=1e-5
    )
    # Disjoint supports: GAN criterion saturates at 0 (JSD = log 2).
    left, right = F32(_truncated(PD, -8.0, -1.0)), F32(_truncated(PG, 0.0, 8.0))
    assert float(theory.gan_criterion(left, right, dx=DX)) == pytest.approx(0.0, abs=1e-5)


def test_all_zero_densities():
    z = jnp.zeros(5)
    for name, value in _all_quantities(z, z).items():
        assert float(value) == 0.0 or name in ("d_star", "gan_criterion"), name
    assert float(theory.gan_criterion(z, z)) == pytest.approx(-math.log(4.0))


# ------------------------------------------------------------------------------------------
# Errors and docs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda p, q: theory.optimal_discriminator(p, q, a=0.0, b=1.0),
        lambda p, q: theory.lsgan_criterion(p, q, a=0.0, b=1.0, c=1.0),
        theory.pearson_chi2,
        theory.triangular_discrimination,
        theory.jensen_shannon,
        theory.gan_criterion,
    ],
)
def test_grid_mismatch_raises(fn):
    with pytest.raises(ValueError, match="same grid"):
        fn(jnp.ones(5), jnp.ones(6))


def test_docstring_examples_run():
    result = doctest.testmod(theory, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# ------------------------------------------------------------------------------------------
# Preconditions: checked on concrete values, documented as unchecked under transformations
# ------------------------------------------------------------------------------------------

_ALL = [
    ("optimal_discriminator", lambda p, q, **k: theory.optimal_discriminator(p, q, a=0.0, b=1.0)),
    ("lsgan_criterion", lambda p, q, **k: theory.lsgan_criterion(p, q, a=0.0, b=1.0, c=1.0, **k)),
    ("pearson_chi2", theory.pearson_chi2),
    ("triangular_discrimination", theory.triangular_discrimination),
    ("jensen_shannon", theory.jensen_shannon),
    ("gan_criterion", theory.gan_criterion),
]
_WITH_DX = [f for f in _ALL if f[0] != "optimal_discriminator"]


@pytest.mark.parametrize("name, fn", _ALL)
@pytest.mark.parametrize("bad", [-1e-3, np.nan, np.inf])
@pytest.mark.parametrize("which", [0, 1])
def test_invalid_density_values_raise(name, fn, bad, which):
    pd, pg = PD.copy(), PG.copy()
    (pd, pg)[which][123] = bad
    with pytest.raises(ValueError, match=r"finite and >= 0.*index \(123,\)"):
        fn(pd, pg)


def test_invalid_density_message_names_the_argument():
    pg = PG.copy()
    pg[7] = -0.5
    with pytest.raises(ValueError, match=r"^p_g must be a density.*found -0\.5"):
        theory.lsgan_criterion(PD, pg, a=0.0, b=1.0, c=1.0, dx=DX)
    with pytest.raises(ValueError, match=r"^q must be a density"):
        theory.pearson_chi2(PD, pg, dx=DX)


@pytest.mark.parametrize("name, fn", _WITH_DX)
@pytest.mark.parametrize("dx", [0.0, -DX, np.nan, np.inf])
def test_invalid_dx_raises(name, fn, dx):
    with pytest.raises(ValueError, match="dx is the grid cell size"):
        fn(PD, PG, dx=dx)


def test_valid_edge_values_pass():
    """Exact zeros are valid densities; a 2-D grid reports a 2-D index."""
    z = np.zeros_like(PD)
    assert np.isfinite(float(theory.triangular_discrimination(z, z, dx=DX)))
    grid = np.ones((3, 4))
    grid[2, 1] = -1.0
    with pytest.raises(ValueError, match=r"index \(2, 1\)"):
        theory.jensen_shannon(grid, np.ones((3, 4)))


def test_under_jit_values_are_not_checked_but_shapes_are():
    """Documented behaviour: traced values cannot be checked, so a negative density passes jit
    and gives a meaningless (here negative) χ²; a shape mismatch is still caught at trace time."""
    p = F32(np.array([0.5, 0.5]))
    q = F32(np.array([-1.0, 0.0]))
    with pytest.raises(ValueError):
        theory.pearson_chi2(p, q)
    out = jax.jit(theory.pearson_chi2)(p, q)
    assert float(out) == pytest.approx(np.sum((np.asarray(q) - 0.5) ** 2 / 0.5))
    with pytest.raises(ValueError, match="same grid"):
        jax.jit(theory.pearson_chi2)(jnp.ones(3), jnp.ones(4))
    # Traced dx (vmap over cell sizes) is fine and not checked.
    dxs = jnp.array([0.5, 1.0])
    np.testing.assert_allclose(
        jax.vmap(lambda d: theory.triangular_discrimination(PD, PG, dx=d))(dxs),
        [np_triangular(PD, PG, 0.5), np_triangular(PD, PG, 1.0)],
        rtol=1e-5,
    )
