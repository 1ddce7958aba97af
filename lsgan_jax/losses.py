"""Pure GAN losses on raw discriminator outputs.

Every function here takes the *raw* output of the discriminator (``D(x)`` for real samples,
``D(G(z))`` for generated ones; "logits" below), of any shape: ``(B,)``, ``(B, 1)`` or a patch map
``(B, H, W, 1)``. The functions are pure, ``jit``/``vmap``/``grad``-safe and dtype-preserving
(bfloat16 in, bfloat16 out; reductions accumulate in at least float32).

The least-squares (LSGAN) losses regress the raw outputs onto the labels ``a`` (fake), ``b`` (real)
and ``c`` (the value G wants D to give its samples). **They never apply a sigmoid**: squaring
``sigmoid(D) - label`` is the most common LSGAN bug in the wild (google/compare_gan does it) and
brings back the vanishing gradients LSGAN exists to avoid.

Reductions (``reduction=``):

* ``"mean"``: the mean over all elements. For the discriminator losses it is the mean of the real
  term plus the mean of the fake term, so the real and fake batches may differ in shape or size.
* ``"sum"``: the sum over all elements (real sum plus fake sum for the discriminator losses).
* ``"none"``: the elementwise loss. For the discriminator losses it is the real term plus the fake
  term elementwise, which requires equal shapes.

Weights (TF-GAN's semantics): every generator loss takes ``weights=``, every discriminator loss
``real_weights=`` and ``fake_weights=`` (TF-GAN's ``real_weights`` / ``generated_weights``), each
``None`` (no weighting, the default) or an array of rank 0 or of the logits' rank whose dimensions
are 1 or equal to the logits' (TF's rule for ``tf.compat.v1.losses.compute_weighted_loss``; e.g.
``(B, 1)`` per-example weights for ``(B, 1)`` or ``(B, H, W, 1)`` logits). The weights multiply
the elementwise loss ``l`` *before* the reduction, and with weights

* ``"mean"`` is ``Σ w·l / #{w ≠ 0}``, the count taken over ``w`` broadcast to ``l``'s shape, and 0
  when every weight is 0: TF-GAN's default reduction ``SUM_BY_NONZERO_WEIGHTS`` (its
  ``losses_impl`` passes the weights to ``compute_weighted_loss``). With all weights 1 this is
  the unweighted mean, with 0/1 weights the mean over the selected elements; note that it is not
  ``Σ w·l / Σ w`` (TF's ``MEAN``): weights of 2 everywhere double the loss, as in TF-GAN.
* ``"sum"`` is ``Σ w·l`` (TF's ``SUM``) and ``"none"`` is ``w·l`` (TF's ``NONE``).

For the discriminator losses each term is reduced with its own weights and the two are added,
as TF-GAN does (``loss_on_real + loss_on_generated``).

References:
    Mao, Li, Xie, Lau, Wang, Smolley. "Least Squares Generative Adversarial Networks". ICCV 2017,
    arXiv:1611.04076.
    Mao, Li, Xie, Lau, Wang, Smolley. "On the Effectiveness of Least Squares Generative Adversarial
    Networks". IEEE TPAMI 41(12), 2019, arXiv:1712.06391.
    Goodfellow et al. "Generative Adversarial Nets". NeurIPS 2014 (minimax / non-saturating).
    Arjovsky, Chintala, Bottou. "Wasserstein GAN". ICML 2017, arXiv:1701.07875.
    Lim, Ye. "Geometric GAN". arXiv:1705.02894, 2017 (hinge).
    TF-GAN: tensorflow/gan ``tensorflow_gan/python/losses/losses_impl.py`` (weights, reductions).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "LOSSES",
    "PEARSON_CHI2",
    "REDUCTIONS",
    "ZERO_ONE",
    "LSCoding",
    "LossPair",
    "Reduction",
    "discriminator_loss",
    "generator_loss",
    "get_loss_pair",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "validate_coding",
    "wasserstein_discriminator_loss",
    "wasserstein_generator_loss",
]

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


# --------------------------------------------------------------------------------------------
# Label codings
# --------------------------------------------------------------------------------------------


class LSCoding(NamedTuple):
    """The a-b-c label coding of the least-squares losses (Mao et al. 2017, Eq. 2).

    Attributes:
        a: label D regresses generated samples onto.
        b: label D regresses real samples onto.
        c: value G wants D to output for generated samples.

    Fields may be Python floats or (traced) JAX scalars; a ``LSCoding`` is a pytree, so a sweep can
    ``jax.vmap`` over a stacked coding.
    """

    a: ArrayLike
    b: ArrayLike
    c: ArrayLike


#: Coding with b - c = 1 and b - a = 2: minimizing the generator criterion then minimizes the
#: Pearson chi-squared divergence chi2_Pearson(p_data + p_g || 2 p_g) (Mao et al. 2017, Eq. 8).
PEARSON_CHI2 = LSCoding(a=-1.0, b=1.0, c=0.0)

#: The paper's 0-1 binary coding: fake -> 0, real -> 1, G wants 1 (Mao et al. 2017, Eq. 9; used by
#: the official ICCV code and by TF-GAN/CycleGAN defaults).
ZERO_ONE = LSCoding(a=0.0, b=1.0, c=1.0)


def validate_coding(a: float, b: float, c: float) -> LSCoding:
    """Checks an a-b-c coding given as Python numbers (e.g. from a config).

    Only for concrete values: inside ``jit``/``vmap`` the coding is traced and cannot be checked;
    validate the config before tracing.

    Args:
        a: fake label.
        b: real label.
        c: generator target.

    Returns:
        The coding as an ``LSCoding`` of Python floats.

    Raises:
        ValueError: if ``a == b`` (the discriminator would have no way to separate real from fake)
            or a label is not finite.
        TypeError: if a label is not a concrete number (e.g. a JAX tracer).

    Example:
        >>> validate_coding(-1.0, 1.0, 0.0)
        LSCoding(a=-1.0, b=1.0, c=0.0)
    """
    values = []
    for name, value in (("a", a), ("b", b), ("c", c)):
        try:
            values.append(float(value))
        except (TypeError, jax.errors.ConcretizationTypeError) as err:
            raise TypeError(
                f"validate_coding needs concrete numbers, got {name}={value!r}; call it on the "
                "config values before they are traced by jit/vmap."
            ) from err
    fa, fb, fc = values
    for name, value in zip("abc", values, strict=True):
        if not math.isfinite(value):
            raise ValueError(f"LSGAN label {name}={value} is not finite.")
    if fa == fb:
        raise ValueError(
            f"Invalid LSGAN coding a={fa}, b={fb}, c={fc}: the fake label a equals the real "
            "label b, so the discriminator cannot separate real from fake. Use losses.PEARSON_CHI2 "
            "(a=-1, b=1, c=0) or losses.ZERO_ONE (a=0, b=1, c=1)."
        )
    return LSCoding(fa, fb, fc)


# --------------------------------------------------------------------------------------------
# Helpers (shape/dtype checks are static: they run at trace time, never on values)
# --------------------------------------------------------------------------------------------


def _check_reduction(reduction: str) -> None:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"Unknown reduction {reduction!r}; valid choices are "
            f"{', '.join(map(repr, REDUCTIONS))}."
        )


def _as_float(x: ArrayLike, name: str) -> jax.Array:
    """Converts ``x`` to a floating JAX array (integers/bools go to the default float dtype)."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real-valued, got dtype {x.dtype}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def _label(value: ArrayLike, like: jax.Array, name: str) -> jax.Array:
    """Casts a label (Python float or traced scalar) to ``like``'s dtype; keeps its shape."""
    value = jnp.asarray(value, dtype=like.dtype)
    if jnp.broadcast_shapes(like.shape, value.shape) != like.shape:
        raise ValueError(
            f"Label {name} with shape {value.shape} would broadcast the logits of shape "
            f"{like.shape} to a different shape; pass a scalar label."
        )
    return value


def _check_weights(weights: ArrayLike | None, like: jax.Array, name: str) -> jax.Array | None:
    """``weights`` as an array of ``like``'s dtype, checked against TF's broadcasting rule."""
    if weights is None:
        return None
    w = _as_float(weights, name).astype(like.dtype)
    ok = w.ndim == 0 or (
        w.ndim == like.ndim and all(d in (1, n) for d, n in zip(w.shape, like.shape, strict=True))
    )
    if not ok:
        raise ValueError(
            f"{name} of shape {w.shape} must be a scalar or have the rank of the logits "
            f"{like.shape} with every dimension 1 or equal to theirs (TF-GAN's rule), e.g. "
            f"shape {(like.shape[0],) + (1,) * (like.ndim - 1) if like.ndim else ()} for "
            "per-example weights."
        )
    return w


def _reduce(x: jax.Array, reduction: str, weights: jax.Array | None = None) -> jax.Array:
    """Reduces in at least float32 (bf16 sums lose precision); the caller casts back.

    With ``weights``: ``w·x`` (``none``), ``Σ w·x`` (``sum``), ``Σ w·x / #{w ≠ 0}`` (``mean``,
    TF's ``SUM_BY_NONZERO_WEIGHTS``; 0 when no weight is nonzero).
    """
    if weights is not None:
        x = x * weights
    if reduction == "none":
        return x
    acc = jnp.promote_types(x.dtype, jnp.float32)
    if reduction == "sum":
        return jnp.sum(x, dtype=acc)
    if weights is None:
        return jnp.mean(x, dtype=acc)
    count = jnp.sum(jnp.broadcast_to(weights != 0, x.shape), dtype=acc)
    total = jnp.sum(x, dtype=acc)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.zeros((), acc))


def _generator_loss(
    fake: jax.Array,
    elementwise: jax.Array,
    reduction: str,
    weights: ArrayLike | None = None,
) -> jax.Array:
    w = _check_weights(weights, fake, "weights")
    return _reduce(elementwise, reduction, w).astype(fake.dtype)


def _discriminator_loss(
    real: jax.Array,
    fake: jax.Array,
    real_term: jax.Array,
    fake_term: jax.Array,
    reduction: str,
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
) -> jax.Array:
    out_dtype = jnp.result_type(real.dtype, fake.dtype)
    w_real = _check_weights(real_weights, real, "real_weights")
    w_fake = _check_weights(fake_weights, fake, "fake_weights")
    if reduction == "none":
        if real.shape != fake.shape:
            raise ValueError(
                "reduction='none' returns the elementwise real term + fake term, which needs "
                f"real_logits and fake_logits of the same shape; got {real.shape} and "
                f"{fake.shape}. Use reduction='mean' or 'sum', or reshape the inputs."
            )
        real_part = _reduce(real_term, "none", w_real).astype(out_dtype)
        fake_part = _reduce(fake_term, "none", w_fake).astype(out_dtype)
        return (real_part + fake_part).astype(out_dtype)
    total = _reduce(real_term, reduction, w_real) + _reduce(fake_term, reduction, w_fake)
    return total.astype(out_dtype)


# --------------------------------------------------------------------------------------------
# Least squares (LSGAN)
# --------------------------------------------------------------------------------------------


def lsgan_discriminator_loss(
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    *,
    a: ArrayLike = 0.0,
    b: ArrayLike = 1.0,
    reduction: Reduction = "mean",
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
) -> jax.Array:
    r"""LSGAN discriminator loss (Mao et al. 2017, Eq. 2).

    .. math::
        L_D = \tfrac12\,\mathbb{E}_x[(D(x) - b)^2] + \tfrac12\,\mathbb{E}_z[(D(G(z)) - a)^2]

    The inputs are the **raw** discriminator outputs. No sigmoid is applied, and none must be
    applied before calling: LSGAN's D is a linear regressor onto the labels. Squaring
    ``sigmoid(D) - label`` (as google/compare_gan does) is the most common LSGAN bug and brings back
    the vanishing gradients of the sigmoid cross-entropy loss.

    With ``a=0, b=1`` this is TF-GAN's ``least_squares_discriminator_loss`` (½ factor, mean
    reduction, raw logits).

    Args:
        real_logits: raw D outputs on real samples, any shape.
        fake_logits: raw D outputs on generated samples, any shape (may differ from
            ``real_logits`` unless ``reduction='none'``).
        a: label for generated samples; a Python float or a (traced) scalar.
        b: label for real samples; a Python float or a (traced) scalar.
        reduction: ``"mean"`` (mean of the real term + mean of the fake term), ``"sum"`` or
            ``"none"`` (elementwise real term + fake term).

        real_weights: optional weights of the real term (TF-GAN's ``real_weights``): rank 0
            or the rank of ``real_logits``, each dimension 1 or equal; see the module
            docstring for the weighted reductions.
        fake_weights: the same for the fake term (TF-GAN's ``generated_weights``).
    Returns:
        The loss: a scalar, or the elementwise loss for ``reduction='none'``; dtype of the inputs.

    Raises:
        ValueError: unknown ``reduction``, or ``reduction='none'`` with inputs of different shapes.

    References:
        Mao et al. "Least Squares Generative Adversarial Networks", ICCV 2017, arXiv:1611.04076.
        Mao et al. "On the Effectiveness of Least Squares Generative Adversarial Networks",
        IEEE TPAMI 2019, arXiv:1712.06391.

    Example:
        >>> import jax.numpy as jnp
        >>> d = jnp.full((4,), 0.5)  # equilibrium of the 0-1 coding: D* = 1/2
        >>> float(lsgan_discriminator_loss(d, d, a=0.0, b=1.0))
        0.25
    """
    _check_reduction(reduction)
    real = _as_float(real_logits, "real_logits")
    fake = _as_float(fake_logits, "fake_logits")
    real_term = 0.5 * jnp.square(real - _label(b, real, "b"))
    fake_term = 0.5 * jnp.square(fake - _label(a, fake, "a"))
    return _discriminator_loss(
        real, fake, real_term, fake_term, reduction, real_weights, fake_weights
    )


def lsgan_generator_loss(
    fake_logits: ArrayLike,
    *,
    c: ArrayLike = 1.0,
    reduction: Reduction = "mean",
    weights: ArrayLike | None = None,
) -> jax.Array:
    r"""LSGAN generator loss (Mao et al. 2017, Eq. 2).

    .. math::
        L_G = \tfrac12\,\mathbb{E}_z[(D(G(z)) - c)^2]

    The input is the **raw** discriminator output; no sigmoid is applied (see
    :func:`lsgan_discriminator_loss` for why that matters).

    With ``c=1`` this is TF-GAN's ``least_squares_generator_loss``.

    Args:
        fake_logits: raw D outputs on generated samples, any shape.
        c: the value G wants D to output for its samples; a Python float or a (traced) scalar.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

        weights: optional weights (TF-GAN's ``weights``): rank 0 or the rank of
            ``fake_logits``, each dimension 1 or equal; ``mean`` is then
            ``Σ w·l / #{w ≠ 0}`` (see the module docstring).
    Returns:
        The loss: a scalar, or the elementwise loss for ``reduction='none'``; dtype of the input.

    Raises:
        ValueError: unknown ``reduction``.

    References:
        Mao et al. "Least Squares Generative Adversarial Networks", ICCV 2017, arXiv:1611.04076.
        Mao et al. "On the Effectiveness of Least Squares Generative Adversarial Networks",
        IEEE TPAMI 2019, arXiv:1712.06391.

    Example:
        >>> import jax.numpy as jnp
        >>> float(lsgan_generator_loss(jnp.full((4,), 0.5), c=1.0))
        0.125
    """
    _check_reduction(reduction)
    fake = _as_float(fake_logits, "fake_logits")
    return _generator_loss(fake, 0.5 * jnp.square(fake - _label(c, fake, "c")), reduction, weights)


# --------------------------------------------------------------------------------------------
# Sigmoid cross-entropy (regular GAN)
# --------------------------------------------------------------------------------------------


def minimax_discriminator_loss(
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    *,
    reduction: Reduction = "mean",
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
) -> jax.Array:
    r"""Regular GAN discriminator loss: sigmoid cross-entropy on logits, no label smoothing.

    .. math::
        L_D = -\mathbb{E}_x[\log\sigma(D(x))] - \mathbb{E}_z[\log(1 - \sigma(D(G(z))))]
            = \mathbb{E}_x[\operatorname{softplus}(-D(x))]
              + \mathbb{E}_z[\operatorname{softplus}(D(G(z)))]

    Computed with ``jax.nn.softplus`` for numerical stability. Unlike TF-GAN's
    ``minimax_discriminator_loss`` (default ``label_smoothing=0.25``) there is no label smoothing.

    Args:
        real_logits: raw D outputs (logits) on real samples, any shape.
        fake_logits: raw D outputs (logits) on generated samples, any shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise; needs equal shapes).

        real_weights: optional weights of the real term (TF-GAN's ``real_weights``): rank 0
            or the rank of ``real_logits``, each dimension 1 or equal; see the module
            docstring for the weighted reductions.
        fake_weights: the same for the fake term (TF-GAN's ``generated_weights``).
    Returns:
        The loss, dtype of the inputs.

    Raises:
        ValueError: unknown ``reduction``, or ``reduction='none'`` with inputs of different shapes.

    References:
        Goodfellow et al. "Generative Adversarial Nets", NeurIPS 2014.
        Mao et al. ICCV 2017, arXiv:1611.04076 (the baseline LSGAN is compared against).

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(minimax_discriminator_loss(jnp.zeros(2), jnp.zeros(2))), 4)  # 2 log 2
        1.3863
    """
    _check_reduction(reduction)
    real = _as_float(real_logits, "real_logits")
    fake = _as_float(fake_logits, "fake_logits")
    return _discriminator_loss(
        real,
        fake,
        jax.nn.softplus(-real),
        jax.nn.softplus(fake),
        reduction,
        real_weights,
        fake_weights,
    )


def minimax_generator_loss(
    fake_logits: ArrayLike,
    *,
    reduction: Reduction = "mean",
    weights: ArrayLike | None = None,
) -> jax.Array:
    r"""Saturating (minimax) generator loss of the regular GAN.

    .. math::
        L_G = \mathbb{E}_z[\log(1 - \sigma(D(G(z))))]
            = -\mathbb{E}_z[\operatorname{softplus}(D(G(z)))]

    G minimizes this; its gradient vanishes when D confidently rejects the fakes. TF-GAN's version
    adds the constant ``-softplus(-1)``; this one does not (same gradients).

    Args:
        fake_logits: raw D outputs (logits) on generated samples, any shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

        weights: optional weights (TF-GAN's ``weights``): rank 0 or the rank of
            ``fake_logits``, each dimension 1 or equal; ``mean`` is then
            ``Σ w·l / #{w ≠ 0}`` (see the module docstring).
    Returns:
        The loss, dtype of the input.

    Raises:
        ValueError: unknown ``reduction``.

    References:
        Goodfellow et al. "Generative Adversarial Nets", NeurIPS 2014.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(minimax_generator_loss(jnp.zeros(2))), 4)  # -log 2
        -0.6931
    """
    _check_reduction(reduction)
    fake = _as_float(fake_logits, "fake_logits")
    return _generator_loss(fake, -jax.nn.softplus(fake), reduction, weights)


def non_saturating_generator_loss(
    fake_logits: ArrayLike,
    *,
    reduction: Reduction = "mean",
    weights: ArrayLike | None = None,
) -> jax.Array:
    r"""Non-saturating generator loss of the regular GAN (the "-log D trick").

    .. math::
        L_G = -\mathbb{E}_z[\log\sigma(D(G(z)))] = \mathbb{E}_z[\operatorname{softplus}(-D(G(z)))]

    Args:
        fake_logits: raw D outputs (logits) on generated samples, any shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

        weights: optional weights (TF-GAN's ``weights``): rank 0 or the rank of
            ``fake_logits``, each dimension 1 or equal; ``mean`` is then
            ``Σ w·l / #{w ≠ 0}`` (see the module docstring).
    Returns:
        The loss, dtype of the input.

    Raises:
        ValueError: unknown ``reduction``.

    References:
        Goodfellow et al. "Generative Adversarial Nets", NeurIPS 2014.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(non_saturating_generator_loss(jnp.zeros(2))), 4)  # log 2
        0.6931
    """
    _check_reduction(reduction)
    fake = _as_float(fake_logits, "fake_logits")
    return _generator_loss(fake, jax.nn.softplus(-fake), reduction, weights)


# --------------------------------------------------------------------------------------------
# Wasserstein and hinge
# --------------------------------------------------------------------------------------------


def wasserstein_discriminator_loss(
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    *,
    reduction: Reduction = "mean",
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
) -> jax.Array:
    r"""Wasserstein critic loss (no Lipschitz penalty; add one separately).

    .. math::
        L_D = \mathbb{E}_z[D(G(z))] - \mathbb{E}_x[D(x)]

    Args:
        real_logits: raw critic outputs on real samples, any shape.
        fake_logits: raw critic outputs on generated samples, any shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise ``f - r``; equal shapes).

        real_weights: optional weights of the real term (TF-GAN's ``real_weights``): rank 0
            or the rank of ``real_logits``, each dimension 1 or equal; see the module
            docstring for the weighted reductions.
        fake_weights: the same for the fake term (TF-GAN's ``generated_weights``).
    Returns:
        The loss, dtype of the inputs.

    Raises:
        ValueError: unknown ``reduction``, or ``reduction='none'`` with inputs of different shapes.

    References:
        Arjovsky, Chintala, Bottou. "Wasserstein GAN", ICML 2017, arXiv:1701.07875.

    Example:
        >>> import jax.numpy as jnp
        >>> float(wasserstein_discriminator_loss(jnp.array([2.0]), jnp.array([0.5])))
        -1.5
    """
    _check_reduction(reduction)
    real = _as_float(real_logits, "real_logits")
    fake = _as_float(fake_logits, "fake_logits")
    return _discriminator_loss(real, fake, -real, fake, reduction, real_weights, fake_weights)


def wasserstein_generator_loss(
    fake_logits: ArrayLike,
    *,
    reduction: Reduction = "mean",
    weights: ArrayLike | None = None,
) -> jax.Array:
    r"""Wasserstein generator loss.

    .. math::
        L_G = -\mathbb{E}_z[D(G(z))]

    Args:
        fake_logits: raw critic outputs on generated samples, any shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

        weights: optional weights (TF-GAN's ``weights``): rank 0 or the rank of
            ``fake_logits``, each dimension 1 or equal; ``mean`` is then
            ``Σ w·l / #{w ≠ 0}`` (see the module docstring).
    Returns:
        The loss, dtype of the input.

    Raises:
        ValueError: unknown ``reduction``.

    References:
        Arjovsky, Chintala, Bottou. "Wasserstein GAN", ICML 2017, arXiv:1701.07875.

    Example:
        >>> import jax.numpy as jnp
        >>> float(wasserstein_generator_loss(jnp.array([0.5, 1.5])))
        -1.0
    """
    _check_reduction(reduction)
    fake = _as_float(fake_logits, "fake_logits")
    return _generator_loss(fake, -fake, reduction, weights)


def hinge_discriminator_loss(
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    *,
    reduction: Reduction = "mean",
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
) -> jax.Array:
    r"""Hinge discriminator loss.

    .. math::
        L_D = \mathbb{E}_x[\max(0, 1 - D(x))] + \mathbb{E}_z[\max(0, 1 + D(G(z)))]

    Args:
        real_logits: raw D outputs on real samples, any shape.
        fake_logits: raw D outputs on generated samples, any shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise; needs equal shapes).

        real_weights: optional weights of the real term (TF-GAN's ``real_weights``): rank 0
            or the rank of ``real_logits``, each dimension 1 or equal; see the module
            docstring for the weighted reductions.
        fake_weights: the same for the fake term (TF-GAN's ``generated_weights``).
    Returns:
        The loss, dtype of the inputs.

    Raises:
        ValueError: unknown ``reduction``, or ``reduction='none'`` with inputs of different shapes.

    References:
        Lim, Ye. "Geometric GAN", arXiv:1705.02894, 2017.

    Example:
        >>> import jax.numpy as jnp
        >>> float(hinge_discriminator_loss(jnp.array([0.5]), jnp.array([0.5])))
        2.0
    """
    _check_reduction(reduction)
    real = _as_float(real_logits, "real_logits")
    fake = _as_float(fake_logits, "fake_logits")
    return _discriminator_loss(
        real,
        fake,
        jax.nn.relu(1.0 - real),
        jax.nn.relu(1.0 + fake),
        reduction,
        real_weights,
        fake_weights,
    )


def hinge_generator_loss(
    fake_logits: ArrayLike,
    *,
    reduction: Reduction = "mean",
    weights: ArrayLike | None = None,
) -> jax.Array:
    r"""Hinge generator loss (same formula as the Wasserstein generator loss).

    .. math::
        L_G = -\mathbb{E}_z[D(G(z))]

    Args:
        fake_logits: raw D outputs on generated samples, any shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

        weights: optional weights (TF-GAN's ``weights``): rank 0 or the rank of
            ``fake_logits``, each dimension 1 or equal; ``mean`` is then
            ``Σ w·l / #{w ≠ 0}`` (see the module docstring).
    Returns:
        The loss, dtype of the input.

    Raises:
        ValueError: unknown ``reduction``.

    References:
        Lim, Ye. "Geometric GAN", arXiv:1705.02894, 2017.

    Example:
        >>> import jax.numpy as jnp
        >>> float(hinge_generator_loss(jnp.array([0.5, 1.5])))
        -1.0
    """
    _check_reduction(reduction)
    fake = _as_float(fake_logits, "fake_logits")
    return _generator_loss(fake, -fake, reduction, weights)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


class LossPair(NamedTuple):
    """A discriminator loss, its generator loss, and whether they take an a-b-c coding.

    Attributes:
        discriminator: ``fn(real_logits, fake_logits, *, reduction, [a, b])``.
        generator: ``fn(fake_logits, *, reduction, [c])``.
        uses_coding: True when the pair takes the LSGAN labels (``a``, ``b`` for D; ``c`` for G).
    """

    discriminator: Callable[..., jax.Array]
    generator: Callable[..., jax.Array]
    uses_coding: bool


#: Loss pairs by name. ``nsgan``: minimax D + non-saturating G (the usual "GAN" baseline);
#: ``minimax``: minimax D + saturating G (the original formulation).
LOSSES: dict[str, LossPair] = {
    "lsgan": LossPair(lsgan_discriminator_loss, lsgan_generator_loss, True),
    "nsgan": LossPair(minimax_discriminator_loss, non_saturating_generator_loss, False),
    "minimax": LossPair(minimax_discriminator_loss, minimax_generator_loss, False),
    "wgan": LossPair(wasserstein_discriminator_loss, wasserstein_generator_loss, False),
    "hinge": LossPair(hinge_discriminator_loss, hinge_generator_loss, False),
}


def get_loss_pair(name: str) -> LossPair:
    """Looks up a loss pair by name.

    Args:
        name: one of ``lsgan``, ``nsgan``, ``minimax``, ``wgan``, ``hinge``.

    Returns:
        The ``LossPair``.

    Raises:
        ValueError: unknown name; the message lists the valid names and a close match if any.

    Example:
        >>> get_loss_pair("lsgan").uses_coding
        True
    """
    if isinstance(name, str) and name in LOSSES:
        return LOSSES[name]
    valid = sorted(LOSSES)
    message = f"Unknown GAN loss {name!r}; valid names are {', '.join(valid)}."
    if isinstance(name, str):
        lowered = {n.lower(): n for n in valid}
        close = difflib.get_close_matches(name.strip().lower(), list(lowered), n=1)
        if close:
            message += f" Did you mean {lowered[close[0]]!r}?"
    raise ValueError(message)


def _coding(coding: LSCoding | tuple | None) -> LSCoding:
    if coding is None:
        return ZERO_ONE
    a, b, c = coding
    return LSCoding(a, b, c)


def discriminator_loss(
    name: str,
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    *,
    coding: LSCoding | None = None,
    reduction: Reduction = "mean",
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
) -> jax.Array:
    """Discriminator loss chosen by name, for uniform calling from the trainer.

    Args:
        name: a key of :data:`LOSSES`.
        real_logits: raw D outputs on real samples.
        fake_logits: raw D outputs on generated samples.
        coding: the a-b-c labels, used only by ``lsgan`` (default :data:`ZERO_ONE`); ignored by the
            other losses so that a sweep can carry one hyperparameter pytree for every loss.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        real_weights: optional weights of the real term (TF-GAN's semantics, module docstring).
        fake_weights: optional weights of the fake term.

    Returns:
        The loss.

    Raises:
        ValueError: unknown name or reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> float(discriminator_loss("lsgan", jnp.zeros(2), jnp.zeros(2), coding=PEARSON_CHI2))
        1.0
    """
    pair = get_loss_pair(name)
    kw = dict(reduction=reduction, real_weights=real_weights, fake_weights=fake_weights)
    if pair.uses_coding:
        a, b, _ = _coding(coding)
        return pair.discriminator(real_logits, fake_logits, a=a, b=b, **kw)
    return pair.discriminator(real_logits, fake_logits, **kw)


def generator_loss(
    name: str,
    fake_logits: ArrayLike,
    *,
    coding: LSCoding | None = None,
    reduction: Reduction = "mean",
    weights: ArrayLike | None = None,
) -> jax.Array:
    """Generator loss chosen by name, for uniform calling from the trainer.

    Args:
        name: a key of :data:`LOSSES`.
        fake_logits: raw D outputs on generated samples.
        coding: the a-b-c labels, used only by ``lsgan`` (default :data:`ZERO_ONE`); ignored by the
            other losses.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        weights: optional weights (TF-GAN's semantics, module docstring).

    Returns:
        The loss.

    Raises:
        ValueError: unknown name or reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> float(generator_loss("lsgan", jnp.zeros(2), coding=PEARSON_CHI2))
        0.0
    """
    pair = get_loss_pair(name)
    if pair.uses_coding:
        _, _, c = _coding(coding)
        return pair.generator(fake_logits, c=c, reduction=reduction, weights=weights)
    return pair.generator(fake_logits, reduction=reduction, weights=weights)
