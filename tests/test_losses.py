"""Tests for lsgan_jax.losses: jitted losses against an independent NumPy oracle."""

from __future__ import annotations

import doctest
import functools
import math
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from lsgan_jax import losses

# ------------------------------------------------------------------------------------------
# NumPy oracle (float64, written from the equations, not from the library)
# ------------------------------------------------------------------------------------------


def _np_softplus(x):
    return np.logaddexp(0.0, x)


# name -> (function, is_discriminator_loss, elementwise real term, elementwise fake term, kwargs)
# For generator losses only the fake term is used.
CASES = {
    "lsgan_d_zero_one": (
        losses.lsgan_discriminator_loss,
        True,
        lambda r: 0.5 * (r - 1.0) ** 2,
        lambda f: 0.5 * (f - 0.0) ** 2,
        {},
    ),
    "lsgan_d_pearson": (
        losses.lsgan_discriminator_loss,
        True,
        lambda r: 0.5 * (r - 1.0) ** 2,
        lambda f: 0.5 * (f + 1.0) ** 2,
        {"a": -1.0, "b": 1.0},
    ),
    "lsgan_g_zero_one": (
        losses.lsgan_generator_loss,
        False,
        None,
        lambda f: 0.5 * (f - 1.0) ** 2,
        {},
    ),
    "lsgan_g_c": (
        losses.lsgan_generator_loss,
        False,
        None,
        lambda f: 0.5 * (f - 0.3) ** 2,
        {"c": 0.3},
    ),
    "minimax_d": (
        losses.minimax_discriminator_loss,
        True,
        lambda r: _np_softplus(-r),
        lambda f: _np_softplus(f),
        {},
    ),
    "minimax_g": (
        losses.minimax_generator_loss,
        False,
        None,
        lambda f: np.log(1.0 - 1.0 / (1.0 + np.exp(-f))),  # log(1 - sigmoid(f))
        {},
    ),
    "non_saturating_g": (
        losses.non_saturating_generator_loss,
        False,
        None,
        lambda f: -np.log(1.0 / (1.0 + np.exp(-f))),  # -log sigmoid(f)
        {},
    ),
    "wasserstein_d": (
        losses.wasserstein_discriminator_loss,
        True,
        lambda r: -r,
        lambda f: f,
        {},
    ),
    "wasserstein_g": (losses.wasserstein_generator_loss, False, None, lambda f: -f, {}),
    "hinge_d": (
        losses.hinge_discriminator_loss,
        True,
        lambda r: np.maximum(0.0, 1.0 - r),
        lambda f: np.maximum(0.0, 1.0 + f),
        {},
    ),
    "hinge_g": (losses.hinge_generator_loss, False, None, lambda f: -f, {}),
}

D_LOSSES = [
    losses.lsgan_discriminator_loss,
    losses.minimax_discriminator_loss,
    losses.wasserstein_discriminator_loss,
    losses.hinge_discriminator_loss,
]
G_LOSSES = [
    losses.lsgan_generator_loss,
    losses.minimax_generator_loss,
    losses.non_saturating_generator_loss,
    losses.wasserstein_generator_loss,
    losses.hinge_generator_loss,
]
ALL_LOSSES = D_LOSSES + G_LOSSES

SHAPES = [(8,), (8, 1), (8, 4, 4, 1)]
REDUCTIONS = ["mean", "sum", "none"]


def _np_reduce(x, reduction):
    if reduction == "mean":
        return np.mean(x)
    if reduction == "sum":
        return np.sum(x)
    return x


def _oracle(case, real, fake, reduction):
    _, is_d, real_term, fake_term, _ = CASES[case]
    fake_value = _np_reduce(fake_term(np.asarray(fake, np.float64)), reduction)
    if not is_d:
        return fake_value
    return _np_reduce(real_term(np.asarray(real, np.float64)), reduction) + fake_value


def _call(fn, is_d, real, fake, **kwargs):
    return fn(real, fake, **kwargs) if is_d else fn(fake, **kwargs)


def _logits(shape, seed):
    rng = np.random.default_rng(seed)
    return (2.0 * rng.standard_normal(shape)).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Values against the oracle
# ------------------------------------------------------------------------------------------


def _all_reductions(fn, is_d, real, fake, **kwargs):
    """One jitted call returning every reduction (fewer compilations keep the file fast)."""
    return {r: _call(fn, is_d, real, fake, reduction=r, **kwargs) for r in REDUCTIONS}


class OracleTest(chex.TestCase):
    """Every loss and reduction against the NumPy oracle, jitted and not (chex.variants)."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(case=sorted(CASES), shape=SHAPES)
    def test_matches_numpy_oracle(self, case, shape):
        fn, is_d, _, _, kwargs = CASES[case]
        real, fake = _logits(shape, 0), _logits(shape, 1)
        outs = self.variant(functools.partial(_all_reductions, fn, is_d, **kwargs))(real, fake)
        for reduction in REDUCTIONS:
            got, want = outs[reduction], _oracle(case, real, fake, reduction)
            chex.assert_type(got, jnp.float32)
            chex.assert_shape(got, np.shape(want))
            np.testing.assert_allclose(
                np.asarray(got), want, rtol=1e-5, atol=1e-5, err_msg=reduction
            )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c][1]))
def test_discriminator_real_and_fake_may_differ_in_shape(case, reduction):
    fn, _, _, _, kwargs = CASES[case]
    real, fake = _logits((8,), 2), _logits((16, 2, 2, 1), 3)
    got = jax.jit(functools.partial(fn, reduction=reduction, **kwargs))(real, fake)
    np.testing.assert_allclose(
        np.asarray(got), _oracle(case, real, fake, reduction), rtol=1e-5, atol=1e-5
    )


def test_mean_is_mean_of_real_plus_mean_of_fake():
    # Unequal batch sizes: the real and fake terms are averaged separately, not pooled.
    real = np.array([3.0], np.float32)
    fake = np.array([0.0, 0.0, 0.0], np.float32)
    got = losses.lsgan_discriminator_loss(real, fake)
    assert float(got) == pytest.approx(0.5 * 4.0 + 0.0)


def test_integer_logits_are_promoted_to_float():
    out = losses.lsgan_generator_loss(jnp.array([0, 1, 2]), c=1)
    assert jnp.issubdtype(out.dtype, jnp.floating)
    assert float(out) == pytest.approx(0.5 * (1 + 0 + 1) / 3)


# ------------------------------------------------------------------------------------------
# dtypes
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=lambda d: d.__name__)
@pytest.mark.parametrize("fn", ALL_LOSSES, ids=lambda f: f.__name__)
def test_dtype_preserved(fn, dtype):
    # float32 is checked by test_matches_numpy_oracle.
    is_d = fn in D_LOSSES
    real = jnp.asarray(_logits((8, 1), 4), dtype)
    fake = jnp.asarray(_logits((8, 1), 5), dtype)
    outs = jax.jit(functools.partial(_all_reductions, fn, is_d))(real, fake)
    for reduction, out in outs.items():
        assert out.dtype == dtype, reduction
        assert out.shape == ((8, 1) if reduction == "none" else ()), reduction
        assert bool(jnp.all(jnp.isfinite(out))), reduction


def test_bf16_value_close_to_float32():
    real, fake = _logits((64,), 6), _logits((64,), 7)
    want = losses.lsgan_discriminator_loss(real, fake, a=-1.0, b=1.0)
    got = losses.lsgan_discriminator_loss(
        jnp.asarray(real, jnp.bfloat16), jnp.asarray(fake, jnp.bfloat16), a=-1.0, b=1.0
    )
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(float(got), float(want), rtol=2e-2)


def test_bf16_with_traced_float32_labels_stays_bf16():
    fake = jnp.asarray(_logits((8, 1), 8), jnp.bfloat16)

    @jax.jit
    def both(real, fake, a, b, c):
        return (
            losses.lsgan_discriminator_loss(real, fake, a=a, b=b),
            losses.lsgan_generator_loss(fake, c=c),
        )

    d, g = both(fake, fake, jnp.float32(-1.0), jnp.float32(1.0), jnp.float32(0.0))
    assert d.dtype == jnp.bfloat16
    assert g.dtype == jnp.bfloat16


# ------------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_lsgan_gradients_match_analytic(shape):
    real, fake = _logits(shape, 9), _logits(shape, 10)
    n = real.size
    a, b, c = -1.0, 1.0, 0.25

    g_grad = jax.jit(jax.grad(lambda f: losses.lsgan_generator_loss(f, c=c)))(fake)
    np.testing.assert_allclose(np.asarray(g_grad), (fake - c) / n, rtol=1e-5, atol=1e-7)

    g_grad_sum = jax.grad(lambda f: losses.lsgan_generator_loss(f, c=c, reduction="sum"))(fake)
    np.testing.assert_allclose(np.asarray(g_grad_sum), fake - c, rtol=1e-5, atol=1e-6)

    d_real, d_fake = jax.jit(
        jax.grad(lambda r, f: losses.lsgan_discriminator_loss(r, f, a=a, b=b), argnums=(0, 1))
    )(real, fake)
    np.testing.assert_allclose(np.asarray(d_real), (real - b) / n, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(d_fake), (fake - a) / n, rtol=1e-5, atol=1e-7)


def test_lsgan_gradient_with_respect_to_labels():
    fake = _logits((8,), 11)
    grad_c = jax.grad(lambda c: losses.lsgan_generator_loss(fake, c=c))(0.5)
    assert float(grad_c) == pytest.approx(-np.mean(fake - 0.5), rel=1e-5)


def test_cross_entropy_losses_are_finite_for_large_logits():
    big = jnp.array([-200.0, -50.0, 0.0, 50.0, 200.0])
    for fn in [losses.minimax_generator_loss, losses.non_saturating_generator_loss]:
        assert bool(jnp.isfinite(fn(big)))
        assert bool(jnp.all(jnp.isfinite(jax.grad(fn)(big))))
    assert bool(jnp.isfinite(losses.minimax_discriminator_loss(big, big)))
    # softplus(200) = 200 exactly: no overflow to inf.
    assert float(losses.non_saturating_generator_loss(jnp.array([-200.0]))) == pytest.approx(200)


# ------------------------------------------------------------------------------------------
# vmap over traced a/b/c (what a sweep does)
# ------------------------------------------------------------------------------------------


def test_vmap_over_traced_coding_equals_loop():
    real, fake = _logits((8, 1), 12), _logits((8, 1), 13)
    codings = np.array(
        [[0.0, 1.0, 1.0], [-1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [-3.0, -1.0, -2.0], [0.2, 0.9, 0.5]],
        np.float32,
    )

    @jax.jit
    def sweep(a, b, c):
        return jax.vmap(
            lambda a, b, c: (
                losses.lsgan_discriminator_loss(real, fake, a=a, b=b),
                losses.lsgan_generator_loss(fake, c=c),
            )
        )(a, b, c)

    d_vmapped, g_vmapped = sweep(codings[:, 0], codings[:, 1], codings[:, 2])
    for i, (a, b, c) in enumerate(codings.tolist()):
        d = losses.lsgan_discriminator_loss(real, fake, a=a, b=b)
        g = losses.lsgan_generator_loss(fake, c=c)
        np.testing.assert_allclose(float(d_vmapped[i]), float(d), rtol=1e-6)
        np.testing.assert_allclose(float(g_vmapped[i]), float(g), rtol=1e-6)


def test_vmap_over_coding_pytree_through_dispatch():
    real, fake = _logits((8,), 14), _logits((8,), 15)
    stacked = losses.LSCoding(
        a=jnp.array([0.0, -1.0]), b=jnp.array([1.0, 1.0]), c=jnp.array([1.0, 0.0])
    )
    d = jax.vmap(lambda cd: losses.discriminator_loss("lsgan", real, fake, coding=cd))(stacked)
    g = jax.vmap(lambda cd: losses.generator_loss("lsgan", fake, coding=cd))(stacked)
    for i, coding in enumerate([losses.ZERO_ONE, losses.PEARSON_CHI2]):
        want_d = losses.lsgan_discriminator_loss(real, fake, a=coding.a, b=coding.b)
        np.testing.assert_allclose(float(d[i]), float(want_d), rtol=1e-6)
        want_g = losses.lsgan_generator_loss(fake, c=coding.c)
        np.testing.assert_allclose(float(g[i]), float(want_g), rtol=1e-6)


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", D_LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shapes", [((8,), (4,)), ((8,), (8, 1)), ((8, 1), (8, 4, 4, 1))], ids=str)
def test_none_reduction_with_mismatched_shapes_raises(fn, shapes):
    real, fake = jnp.zeros(shapes[0]), jnp.zeros(shapes[1])
    with pytest.raises(ValueError, match="same shape"):
        fn(real, fake, reduction="none")
    with pytest.raises(ValueError, match="same shape"):
        jax.jit(functools.partial(fn, reduction="none"))(real, fake)


@pytest.mark.parametrize("bad", ["avg", "MEAN", None, "sum_by_nonzero_weights"])
@pytest.mark.parametrize("fn", ALL_LOSSES, ids=lambda f: f.__name__)
def test_unknown_reduction_raises(fn, bad):
    args = (jnp.zeros(4), jnp.zeros(4)) if fn in D_LOSSES else (jnp.zeros(4),)
    with pytest.raises(ValueError, match="'mean', 'sum', 'none'"):
        fn(*args, reduction=bad)


def test_label_that_would_broadcast_the_logits_raises():
    with pytest.raises(ValueError, match="scalar label"):
        losses.lsgan_generator_loss(jnp.zeros((8, 1)), c=jnp.zeros(8))
    # A per-element label of the logits' own shape is fine.
    out = losses.lsgan_generator_loss(jnp.zeros((8, 1)), c=jnp.ones((8, 1)), reduction="none")
    assert out.shape == (8, 1)


# ------------------------------------------------------------------------------------------
# Paper facts and peer semantics
# ------------------------------------------------------------------------------------------


def test_codings():
    assert losses.PEARSON_CHI2 == losses.LSCoding(-1.0, 1.0, 0.0)
    assert losses.ZERO_ONE == losses.LSCoding(0.0, 1.0, 1.0)
    a, b, c = losses.PEARSON_CHI2
    assert b - c == 1.0 and b - a == 2.0
    assert losses.LSCoding._fields == ("a", "b", "c")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_equilibrium_values(shape):
    # paper.md §1.3: at p_g = p_d, D* = (a + b)/2 everywhere.
    half = jnp.full(shape, 0.5)
    assert float(losses.lsgan_discriminator_loss(half, half, a=0.0, b=1.0)) == pytest.approx(0.25)
    assert float(losses.lsgan_generator_loss(half, c=1.0)) == pytest.approx(0.125)
    zero = jnp.zeros(shape)
    a, b, c = losses.PEARSON_CHI2
    assert float(losses.lsgan_discriminator_loss(zero, zero, a=a, b=b)) == pytest.approx(1.0)
    assert float(losses.lsgan_generator_loss(zero, c=c)) == pytest.approx(0.0)


def test_tfgan_least_squares_semantics():
    # TF-GAN least_squares_generator_loss(real_label=1) = mean ½(D(G) − 1)²;
    # least_squares_discriminator_loss(real_label=1, fake_label=0)
    #     = mean ½(D(x) − 1)² + mean ½D(G)².
    real, fake = _logits((8, 3), 16), _logits((8, 3), 17)
    r, f = real.astype(np.float64), fake.astype(np.float64)
    want_g = np.mean(0.5 * (f - 1.0) ** 2)
    want_d = np.mean(0.5 * (r - 1.0) ** 2) + np.mean(0.5 * f**2)
    np.testing.assert_allclose(float(losses.lsgan_generator_loss(fake)), want_g, rtol=1e-6)
    np.testing.assert_allclose(
        float(losses.lsgan_discriminator_loss(real, fake)), want_d, rtol=1e-6
    )


# Inputs and expected values pinned in tensorflow/gan
# tensorflow_gan/python/losses/losses_impl_test.py (_LossesTest.init_constants and setUp).
_TFGAN_REAL = np.array([-5.0, 1.4, 12.5, 2.7], np.float32)
_TFGAN_GEN = np.array([10.0, 4.4, -5.5, 3.6], np.float32)


@pytest.mark.parametrize("shape", [(4,), (2, 2)], ids=str)
def test_tfgan_pinned_values(shape):
    r, g = _TFGAN_REAL.reshape(shape), _TFGAN_GEN.reshape(shape)
    # LeastSquaresLossTest.
    assert float(losses.lsgan_generator_loss(g)) == pytest.approx(17.69625, abs=1e-4)
    assert float(losses.lsgan_discriminator_loss(r, g)) == pytest.approx(41.73375, abs=1e-4)
    # ModifiedLossTest generator (label_smoothing=0): the non-saturating loss.
    assert float(losses.non_saturating_generator_loss(g)) == pytest.approx(1.38582, abs=1e-4)
    # MinimaxLossTest generator: TF-GAN adds the constant -softplus(-1); we do not.
    softplus_m1 = math.log1p(math.exp(-1.0))
    assert float(losses.minimax_generator_loss(g)) == pytest.approx(
        -4.82408 + softplus_m1, abs=1e-4
    )
    # WassersteinLossTest and HingeWassersteinLossTest.
    assert float(losses.wasserstein_generator_loss(g)) == pytest.approx(-3.125, abs=1e-5)
    assert float(losses.wasserstein_discriminator_loss(r, g)) == pytest.approx(0.225, abs=1e-5)
    assert float(losses.hinge_generator_loss(g)) == pytest.approx(-3.125, abs=1e-5)
    assert float(losses.hinge_discriminator_loss(r, g)) == pytest.approx(6.75, abs=1e-5)
    # Reduction NONE keeps the per-element shape.
    assert losses.lsgan_discriminator_loss(r, g, reduction="none").shape == shape


def test_sigmoid_on_discriminator_output_is_a_different_loss():
    """Documents the bug we avoid (compare_gan squares sigmoid(D) − label)."""
    fake = jnp.array([-10.0, -6.0, 4.0, 8.0])  # D confident: fakes are fake / fakes look real
    raw = losses.lsgan_generator_loss(fake, c=1.0)
    squashed = losses.lsgan_generator_loss(jax.nn.sigmoid(fake), c=1.0)
    assert abs(float(raw) - float(squashed)) > 1.0
    # Through a sigmoid the gradient on a confidently rejected fake all but vanishes; on raw
    # outputs it is (f − c)/N, the non-vanishing gradient LSGAN is about.
    raw_grad = jax.grad(lambda f: losses.lsgan_generator_loss(f))(fake)
    squashed_grad = jax.grad(lambda f: losses.lsgan_generator_loss(jax.nn.sigmoid(f)))(fake)
    assert float(raw_grad[0]) == pytest.approx((-10.0 - 1.0) / 4)
    assert abs(float(squashed_grad[0])) < 1e-4


# ------------------------------------------------------------------------------------------
# Registry and coding validation
# ------------------------------------------------------------------------------------------


def test_registry_names_and_pairs():
    assert set(losses.LOSSES) == {"lsgan", "nsgan", "minimax", "wgan", "hinge"}
    assert losses.get_loss_pair("lsgan") == losses.LossPair(
        losses.lsgan_discriminator_loss, losses.lsgan_generator_loss, True
    )
    assert losses.get_loss_pair("nsgan") == (
        losses.minimax_discriminator_loss,
        losses.non_saturating_generator_loss,
        False,
    )
    assert losses.get_loss_pair("minimax").generator is losses.minimax_generator_loss
    assert losses.get_loss_pair("wgan").discriminator is losses.wasserstein_discriminator_loss
    assert losses.get_loss_pair("hinge").discriminator is losses.hinge_discriminator_loss
    assert [n for n, p in losses.LOSSES.items() if p.uses_coding] == ["lsgan"]


@pytest.mark.parametrize(
    "name, suggestion", [("lsgn", "lsgan"), ("LSGAN", "lsgan"), ("wgan-gp", "wgan"), ("zzz", None)]
)
def test_unknown_loss_name(name, suggestion):
    with pytest.raises(ValueError) as err:
        losses.get_loss_pair(name)
    message = str(err.value)
    for valid in losses.LOSSES:
        assert valid in message
    if suggestion is None:
        assert "Did you mean" not in message
    else:
        assert f"Did you mean {suggestion!r}" in message
    with pytest.raises(ValueError):
        losses.discriminator_loss(name, jnp.zeros(2), jnp.zeros(2))
    with pytest.raises(ValueError):
        losses.generator_loss(name, jnp.zeros(2))


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_dispatch_matches_direct_calls(name):
    real, fake = _logits((8, 1), 18), _logits((8, 1), 19)
    pair = losses.get_loss_pair(name)
    coding = losses.PEARSON_CHI2
    for reduction in REDUCTIONS:
        d = losses.discriminator_loss(name, real, fake, coding=coding, reduction=reduction)
        g = losses.generator_loss(name, fake, coding=coding, reduction=reduction)
        if pair.uses_coding:
            want_d = pair.discriminator(real, fake, a=-1.0, b=1.0, reduction=reduction)
            want_g = pair.generator(fake, c=0.0, reduction=reduction)
        else:  # the coding is ignored
            want_d = pair.discriminator(real, fake, reduction=reduction)
            want_g = pair.generator(fake, reduction=reduction)
        np.testing.assert_allclose(np.asarray(d), np.asarray(want_d), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(g), np.asarray(want_g), rtol=1e-6)


def test_dispatch_defaults_to_zero_one():
    real, fake = _logits((8,), 20), _logits((8,), 21)
    np.testing.assert_allclose(
        float(losses.discriminator_loss("lsgan", real, fake)),
        float(losses.lsgan_discriminator_loss(real, fake, a=0.0, b=1.0)),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        float(losses.generator_loss("lsgan", fake)),
        float(losses.lsgan_generator_loss(fake, c=1.0)),
        rtol=1e-6,
    )


def test_validate_coding():
    with pytest.raises(ValueError, match="cannot separate real from fake") as err:
        losses.validate_coding(0, 0, 1)
    assert "PEARSON_CHI2" in str(err.value) and "ZERO_ONE" in str(err.value)
    with pytest.raises(ValueError):
        losses.validate_coding(0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="not finite"):
        losses.validate_coding(float("nan"), 1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert losses.validate_coding(*losses.PEARSON_CHI2) == losses.PEARSON_CHI2
        assert losses.validate_coding(*losses.ZERO_ONE) == losses.ZERO_ONE
        assert losses.validate_coding(0, 2, 1) == losses.LSCoding(0.0, 2.0, 1.0)


def test_validate_coding_rejects_traced_values():
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda a: losses.validate_coding(a, 1.0, 1.0))(0.0)


def test_public_names_and_docs():
    for name in losses.__all__:
        assert hasattr(losses, name), name
    for fn in [*ALL_LOSSES, losses.validate_coding, losses.get_loss_pair]:
        assert fn.__doc__ and "Example" in fn.__doc__, fn.__name__
    for fn in [losses.lsgan_discriminator_loss, losses.lsgan_generator_loss]:
        assert "sigmoid" in fn.__doc__.lower()
        assert "1611.04076" in fn.__doc__ and "1712.06391" in fn.__doc__


def test_docstring_examples_run():
    result = doctest.testmod(losses, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# ------------------------------------------------------------------------------------------
# Weights (TF-GAN's semantics), with and without jit (chex.variants)
# ------------------------------------------------------------------------------------------


def _np_weighted(x, w, reduction):
    """TF's compute_weighted_loss: NONE w·l, SUM Σw·l, SUM_BY_NONZERO_WEIGHTS Σw·l / #(w≠0)."""
    x = np.asarray(x, np.float64)
    w = np.broadcast_to(np.asarray(w, np.float64), x.shape)
    if reduction == "none":
        return w * x
    if reduction == "sum":
        return np.sum(w * x)
    count = np.count_nonzero(w)
    return np.sum(w * x) / count if count else 0.0


def _weighted_oracle(case, real, fake, w_real, w_fake, reduction):
    _, is_d, real_term, fake_term, _ = CASES[case]
    fake_value = _np_weighted(fake_term(np.asarray(fake, np.float64)), w_fake, reduction)
    if not is_d:
        return fake_value
    return _np_weighted(real_term(np.asarray(real, np.float64)), w_real, reduction) + fake_value


def _weights(kind, shape, seed):
    rng = np.random.default_rng(seed)
    if kind == "scalar":
        return np.float32(0.7)
    if kind == "per_example":  # (B, 1, ..., 1), some examples switched off
        w = rng.uniform(0.0, 2.0, (shape[0],) + (1,) * (len(shape) - 1)).astype(np.float32)
        w[::3] = 0.0
        return w
    w = rng.uniform(0.0, 2.0, shape).astype(np.float32)  # "full": one weight per element
    w[rng.random(shape) < 0.3] = 0.0
    return w


def _weighted_call(fn, is_d, real, fake, w_real, w_fake, reduction, kwargs):
    if is_d:
        return fn(
            real, fake, reduction=reduction, real_weights=w_real, fake_weights=w_fake, **kwargs
        )
    return fn(fake, reduction=reduction, weights=w_fake, **kwargs)


class WeightedLossTest(chex.TestCase):
    """Every loss and reduction with weights against the NumPy oracle, jitted and not."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(
        case=sorted(CASES),
        shape=[(6,), (6, 1), (6, 2, 2, 1)],
        kind=["scalar", "per_example", "full"],
    )
    def test_weighted_matches_oracle(self, case, shape, kind):
        fn, is_d, _, _, kwargs = CASES[case]
        real, fake = _logits(shape, 0), _logits(shape, 1)
        w_real, w_fake = _weights(kind, shape, 2), _weights(kind, shape, 3)

        @self.variant
        def all_reductions(real, fake, w_real, w_fake):
            return {
                r: _weighted_call(fn, is_d, real, fake, w_real, w_fake, r, kwargs)
                for r in REDUCTIONS
            }

        outs = all_reductions(real, fake, w_real, w_fake)
        for reduction in REDUCTIONS:
            want = _weighted_oracle(case, real, fake, w_real, w_fake, reduction)
            chex.assert_shape(outs[reduction], np.shape(want))
            chex.assert_type(outs[reduction], jnp.float32)
            np.testing.assert_allclose(
                np.asarray(outs[reduction]), want, rtol=1e-5, atol=1e-5, err_msg=reduction
            )

    @chex.variants(with_jit=True, without_jit=True)
    def test_all_zero_weights_give_zero_and_finite_gradient(self):
        fake = _logits((5, 1), 4)

        @self.variant
        def loss_and_grad(fake):
            fn = functools.partial(losses.lsgan_generator_loss, weights=jnp.zeros((5, 1)))
            return jax.value_and_grad(fn)(fake)

        value, grad = loss_and_grad(fake)
        assert float(value) == 0.0
        chex.assert_tree_all_finite(grad)
        np.testing.assert_array_equal(np.asarray(grad), 0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_unit_weights_equal_no_weights(self):
        real, fake = _logits((8, 1), 5), _logits((8, 1), 6)
        ones = np.ones((8, 1), np.float32)

        @self.variant
        def both(real, fake):
            return (
                losses.lsgan_discriminator_loss(real, fake, real_weights=ones, fake_weights=ones),
                losses.lsgan_discriminator_loss(real, fake),
            )

        weighted, plain = both(real, fake)
        np.testing.assert_allclose(weighted, plain, rtol=1e-6)


def test_weighted_mean_divides_by_nonzero_count_not_weight_sum():
    """TF-GAN's default SUM_BY_NONZERO_WEIGHTS, not TF's MEAN (Σw·l / Σw)."""
    fake = _logits((6,), 7)
    w = np.array([0.0, 1.0, 3.0, 0.0, 0.5, 2.0], np.float32)
    got = float(losses.wasserstein_generator_loss(fake, weights=w))
    elementwise = -fake.astype(np.float64)
    np.testing.assert_allclose(got, np.sum(w * elementwise) / 4, rtol=1e-6)
    assert not np.isclose(got, np.sum(w * elementwise) / np.sum(w))


def test_weights_keep_the_logits_dtype():
    fake = jnp.asarray(_logits((4, 1), 8), jnp.bfloat16)
    out = losses.lsgan_generator_loss(fake, weights=np.ones((4, 1), np.float32))
    chex.assert_type(out, jnp.bfloat16)
    out = losses.lsgan_discriminator_loss(
        fake, fake, real_weights=np.float32(2.0), reduction="none"
    )
    chex.assert_type(out, jnp.bfloat16)
    chex.assert_shape(out, (4, 1))


@pytest.mark.parametrize(
    "logits_shape, weights_shape",
    [((8, 1), (8,)), ((8,), (4,)), ((8, 1), (8, 2)), ((8,), (8, 1)), ((8, 4, 4, 1), (8, 1))],
    ids=str,
)
def test_weights_that_do_not_follow_tf_rule_raise(logits_shape, weights_shape):
    logits, w = _logits(logits_shape, 9), np.ones(weights_shape, np.float32)
    with pytest.raises(ValueError, match="weights"):
        losses.lsgan_generator_loss(logits, weights=w)
    with pytest.raises(ValueError, match="fake_weights"):
        losses.hinge_discriminator_loss(logits, logits, fake_weights=w)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_dispatch_passes_weights(name):
    real, fake = _logits((6, 1), 10), _logits((6, 1), 11)
    wr, wf = _weights("per_example", (6, 1), 12), _weights("per_example", (6, 1), 13)
    pair = losses.get_loss_pair(name)
    np.testing.assert_allclose(
        losses.discriminator_loss(name, real, fake, real_weights=wr, fake_weights=wf),
        pair.discriminator(real, fake, real_weights=wr, fake_weights=wf),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        losses.generator_loss(name, fake, weights=wf),
        pair.generator(fake, weights=wf),
        rtol=1e-6,
    )
