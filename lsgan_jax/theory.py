"""Closed forms behind LSGAN: the optimal discriminator, the generator criterion, divergences.

Densities are arrays of values on a common grid (any shape; e.g. a 1-D grid or a 2-D image of a
density), and integrals are Riemann sums over *all* elements: ``∫ f dx ≈ Σ f · dx`` with ``dx`` the
cell size (cell area/volume on a multi-dimensional grid). Densities must be non-negative; the
identities that compare with the regular GAN assume they are normalized (``Σ p · dx = 1``).

Preconditions are checked with one clear ``ValueError``: the densities must have the same shape,
be finite and ``>= 0``, and ``dx`` must be finite and ``> 0``. Shapes are checked always. The
*values* can only be checked when they are concrete, i.e. when a function is called outside any JAX
transformation. Under ``jit``, ``vmap`` or ``grad`` they are tracers without values, so nothing is
checked and a violated precondition silently gives a meaningless number (a negative χ², NaN from a
log, a sign flip from a negative ``dx``); validate inputs before entering the transformation (one
eager call does it).

Cells where both densities vanish carry no mass and contribute 0 to every integral, without NaN in
the values or in the gradients (``jnp.where`` with a safe denominator). Everything is pure ``jnp``
and can be ``jit``-ed, ``vmap``-ed and differentiated.

The LSGAN argument (Mao et al. 2017, §3.2.2): for a fixed G, the a-b-c discriminator objective is
minimized pointwise by ``D*(x) = (b·p_d(x) + a·p_g(x)) / (p_d(x) + p_g(x))``. Substituting D* into
the (extended) generator objective gives

    2·C(G) = ∫ ((b−c)·p_d + (a−c)·p_g)² / (p_d + p_g) dx,

and when ``b − c = 1`` and ``b − a = 2`` (:data:`lsgan_jax.losses.PEARSON_CHI2`)

    2·C(G) = χ²_Pearson(p_d + p_g ‖ 2·p_g) = ∫ (p_d − p_g)² / (p_d + p_g) dx,

which is :func:`pearson_chi2` ``(p_d + p_g, 2·p_g)`` and also the triangular discrimination
:func:`triangular_discrimination` ``(p_d, p_g)``.

References:
    Mao, Li, Xie, Lau, Wang, Smolley. "Least Squares Generative Adversarial Networks". ICCV 2017,
    arXiv:1611.04076.
    Mao, Li, Xie, Lau, Wang, Smolley. "On the Effectiveness of Least Squares Generative Adversarial
    Networks". IEEE TPAMI 41(12), 2019, arXiv:1712.06391.
    Goodfellow et al. "Generative Adversarial Nets". NeurIPS 2014 (C(G) = −log 4 + 2·JSD).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "gan_criterion",
    "jensen_shannon",
    "lsgan_criterion",
    "optimal_discriminator",
    "pearson_chi2",
    "triangular_discrimination",
]


def _float(x: ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def _concrete(x: ArrayLike) -> np.ndarray | None:
    """Host values of `x`, or None when `x` is traced (inside jit/vmap/grad: no values yet)."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def _pair(
    p: ArrayLike,
    q: ArrayLike,
    *,
    names: tuple[str, str] = ("p", "q"),
    dx: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The two densities as one float dtype, after checking the module's preconditions.

    Shapes are checked always (they are static under every transformation). The values -- both
    densities finite and ``>= 0``, ``dx`` finite and ``> 0`` -- are checked when they are concrete
    and skipped when they are traced.
    """
    for name, value in zip(names, (p, q), strict=True):
        host = _concrete(value)
        if host is None:
            continue
        bad = ~(np.isfinite(host) & (host >= 0)) if host.size else np.zeros(0, bool)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} must be a density on the grid (finite and >= 0 everywhere); "
                f"found {host[idx] if idx else host.item()} at index {idx}."
            )
    if dx is not None:
        host = _concrete(dx)
        if host is not None and not (np.isfinite(host) & (host > 0)).all():
            raise ValueError(
                f"dx is the grid cell size and must be finite and > 0; got {host.tolist()}."
            )
    p, q = _float(p), _float(q)
    if p.shape != q.shape:
        raise ValueError(
            f"Densities must be given on the same grid (same shape); got {names[0]}.shape="
            f"{p.shape} and {names[1]}.shape={q.shape}."
        )
    dtype = jnp.result_type(p.dtype, q.dtype)
    return p.astype(dtype), q.astype(dtype)


def _safe_ratio(num: jax.Array, den: jax.Array, where_zero: ArrayLike) -> jax.Array:
    """``num / den`` where ``den > 0``, else ``where_zero``; NaN-free values and gradients."""
    positive = den > 0
    safe_den = jnp.where(positive, den, jnp.ones_like(den))
    return jnp.where(positive, num / safe_den, where_zero)


def optimal_discriminator(
    p_data: ArrayLike, p_g: ArrayLike, *, a: ArrayLike, b: ArrayLike
) -> jax.Array:
    r"""The LSGAN discriminator that minimizes the a-b-c objective for a fixed generator.

    .. math::
        D^*(x) = \frac{b\,p_d(x) + a\,p_g(x)}{p_d(x) + p_g(x)}

    It is the pointwise minimizer of :math:`p_d (D - b)^2 + p_g (D - a)^2`. Where
    :math:`p_d + p_g = 0` every D is optimal; this returns the midpoint :math:`(a + b)/2`, the
    value D* takes wherever :math:`p_d = p_g`.

    Args:
        p_data: data density on the grid.
        p_g: generator density on the same grid.
        a: fake label (Python float or traced scalar).
        b: real label.

    Returns:
        D* on the grid, same shape as the densities.

    Raises:
        ValueError: if the densities have different shapes, or (for concrete values; see the
            module docstring for jit) a density is negative or not finite.

    References:
        Mao et al. ICCV 2017 (arXiv:1611.04076), Eq. 4; TPAMI 2019 (arXiv:1712.06391).

    Example:
        >>> import jax.numpy as jnp
        >>> optimal_discriminator(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0]), a=-1.0, b=1.0)
        Array([0., 0.], dtype=float32)
    """
    pd, pg = _pair(p_data, p_g, names=("p_data", "p_g"))
    a = jnp.asarray(a, pd.dtype)
    b = jnp.asarray(b, pd.dtype)
    return _safe_ratio(b * pd + a * pg, pd + pg, 0.5 * (a + b))


def lsgan_criterion(
    p_data: ArrayLike,
    p_g: ArrayLike,
    *,
    a: ArrayLike,
    b: ArrayLike,
    c: ArrayLike,
    dx: ArrayLike = 1.0,
) -> jax.Array:
    r"""The LSGAN generator criterion C(G) at the optimal discriminator D*.

    .. math::
        C(G) = \tfrac12\,\mathbb{E}_{p_d}[(D^* - c)^2] + \tfrac12\,\mathbb{E}_{p_g}[(D^* - c)^2]
             = \tfrac12 \int \frac{\big((b - c)\,p_d + (a - c)\,p_g\big)^2}{p_d + p_g}\,dx

    (the generator objective extended with the G-independent term
    :math:`\tfrac12\mathbb{E}_{p_d}[(D(x) - c)^2]`, as in the paper's proof). When ``b − c = 1``
    and ``b − a = 2`` (:data:`lsgan_jax.losses.PEARSON_CHI2`),
    ``2·C(G) = pearson_chi2(p_d + p_g, 2·p_g)``. Cells with ``p_d + p_g = 0`` contribute 0.

    Args:
        p_data: data density on the grid.
        p_g: generator density on the same grid.
        a: fake label.
        b: real label.
        c: generator target.
        dx: grid cell size (area/volume for multi-dimensional grids).

    Returns:
        The scalar C(G) (a Riemann sum over all grid cells).

    Raises:
        ValueError: if the densities have different shapes, or (for concrete values; see the
            module docstring for jit) a density is negative or not finite, or ``dx <= 0``.

    References:
        Mao et al. ICCV 2017 (arXiv:1611.04076), §3.2.2 "Relation to f-divergence";
        TPAMI 2019 (arXiv:1712.06391).

    Example:
        >>> import jax.numpy as jnp
        >>> p = jnp.array([0.5, 0.5])
        >>> float(lsgan_criterion(p, p, a=0.0, b=1.0, c=1.0))  # D* = 1/2: ½·(½·¼ + ½·¼)·2 cells
        0.25
    """
    pd, pg = _pair(p_data, p_g, names=("p_data", "p_g"), dx=dx)
    a = jnp.asarray(a, pd.dtype)
    b = jnp.asarray(b, pd.dtype)
    c = jnp.asarray(c, pd.dtype)
    num = jnp.square((b - c) * pd + (a - c) * pg)
    return 0.5 * jnp.sum(_safe_ratio(num, pd + pg, 0.0)) * dx


def pearson_chi2(p: ArrayLike, q: ArrayLike, *, dx: ArrayLike = 1.0) -> jax.Array:
    r"""Pearson χ² divergence, paper's notation: **the FIRST argument is the denominator**.

    .. math::
        \chi^2_{\mathrm{Pearson}}(p \,\|\, q) = \int \frac{(q - p)^2}{p}\,dx

    **Argument order**: ``p`` (the FIRST argument) is the one in the denominator. This follows
    Mao et al., who write :math:`2C(G) = \chi^2_{\mathrm{Pearson}}(p_d + p_g \,\|\, 2p_g)
    = \int \frac{(2p_g - (p_d + p_g))^2}{p_d + p_g} dx`. Many texts put the *second* argument in
    the denominator; swap the arguments to get that convention. The identity is

        ``2 * lsgan_criterion(pd, pg, a=a, b=b, c=c) == pearson_chi2(pd + pg, 2 * pg)``

    whenever ``b − c = 1`` and ``b − a = 2`` (e.g. :data:`lsgan_jax.losses.PEARSON_CHI2`).

    Cells with ``p = q = 0`` contribute 0. Cells with ``p = 0 < |q|`` make the divergence
    ``+inf`` (``q`` is not absolutely continuous w.r.t. ``p``); gradients stay NaN-free.

    Args:
        p: the denominator density (first argument), non-negative.
        q: the other density, on the same grid.
        dx: grid cell size.

    Returns:
        The scalar divergence.

    Raises:
        ValueError: if the densities have different shapes, or (for concrete values; see the
            module docstring for jit) a density is negative or not finite, or ``dx <= 0``.

    References:
        Mao et al. ICCV 2017 (arXiv:1611.04076), §3.2.2; TPAMI 2019 (arXiv:1712.06391).

    Example:
        >>> import jax.numpy as jnp
        >>> float(pearson_chi2(jnp.array([0.5, 0.5]), jnp.array([1.0, 0.0])))  # (0.25 + 0.25)/0.5
        1.0
    """
    p, q = _pair(p, q, dx=dx)
    where_zero = jnp.where(q == 0, 0.0, jnp.inf).astype(p.dtype)
    return jnp.sum(_safe_ratio(jnp.square(q - p), p, where_zero)) * dx


def triangular_discrimination(p: ArrayLike, q: ArrayLike, *, dx: ArrayLike = 1.0) -> jax.Array:
    r"""Triangular discrimination (symmetric): :math:`\Delta(p, q) = \int (p - q)^2/(p + q)\,dx`.

    Equals ``2·lsgan_criterion(p, q, ...)`` for any coding with ``b − c = 1`` and ``b − a = 2``.
    Cells with ``p + q = 0`` contribute 0.

    Args:
        p: a density on the grid.
        q: a density on the same grid.
        dx: grid cell size.

    Returns:
        The scalar divergence.

    Raises:
        ValueError: if the densities have different shapes, or (for concrete values; see the
            module docstring for jit) a density is negative or not finite, or ``dx <= 0``.

    References:
        Topsøe. "Some inequalities for information divergence and related measures of
        discrimination", IEEE Trans. Inf. Theory 46(4), 2000.
        Mao et al. ICCV 2017 (arXiv:1611.04076), §3.2.2.

    Example:
        >>> import jax.numpy as jnp
        >>> float(triangular_discrimination(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])))
        2.0
    """
    p, q = _pair(p, q, dx=dx)
    return jnp.sum(_safe_ratio(jnp.square(p - q), p + q, 0.0)) * dx


def _kl_to_mixture(p: jax.Array, m: jax.Array) -> jax.Array:
    """Elementwise ``p·log(p/m)`` with ``0·log 0 = 0``; m ≥ p/2 > 0 wherever p > 0."""
    positive = p > 0
    safe_p = jnp.where(positive, p, jnp.ones_like(p))
    safe_m = jnp.where(positive, m, jnp.ones_like(m))
    return jnp.where(positive, p * (jnp.log(safe_p) - jnp.log(safe_m)), 0.0)


def jensen_shannon(p: ArrayLike, q: ArrayLike, *, dx: ArrayLike = 1.0) -> jax.Array:
    r"""Jensen–Shannon divergence in nats.

    .. math::
        \mathrm{JSD}(p \,\|\, q) = \tfrac12 \mathrm{KL}(p \,\|\, m)
            + \tfrac12 \mathrm{KL}(q \,\|\, m), \qquad m = \tfrac12 (p + q)

    With ``0·log 0 = 0``; lies in ``[0, log 2]`` for normalized densities.

    Args:
        p: a density on the grid.
        q: a density on the same grid.
        dx: grid cell size.

    Returns:
        The scalar divergence.

    Raises:
        ValueError: if the densities have different shapes, or (for concrete values; see the
            module docstring for jit) a density is negative or not finite, or ``dx <= 0``.

    References:
        Lin. "Divergence measures based on the Shannon entropy",
        IEEE Trans. Inf. Theory 37(1), 1991.

    Example:
        >>> import jax.numpy as jnp, math
        >>> js = jensen_shannon(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]))
        >>> math.isclose(float(js), math.log(2), rel_tol=1e-6)
        True
    """
    p, q = _pair(p, q, dx=dx)
    m = 0.5 * (p + q)
    return 0.5 * jnp.sum(_kl_to_mixture(p, m) + _kl_to_mixture(q, m)) * dx


def gan_criterion(p_data: ArrayLike, p_g: ArrayLike, *, dx: ArrayLike = 1.0) -> jax.Array:
    r"""The regular GAN generator criterion at its optimal discriminator.

    .. math::
        C(G) = \mathbb{E}_{p_d}[\log D^*] + \mathbb{E}_{p_g}[\log(1 - D^*)]
             = -\log 4 + 2\,\mathrm{JSD}(p_d \,\|\, p_g),
        \qquad D^* = \frac{p_d}{p_d + p_g}

    The second form (computed here) equals the first for normalized densities. C(G) reaches its
    minimum ``−log 4`` exactly when ``p_g = p_d``.

    Args:
        p_data: data density on the grid (normalized: ``Σ p_data · dx = 1``).
        p_g: generator density on the same grid (normalized).
        dx: grid cell size.

    Returns:
        The scalar C(G).

    Raises:
        ValueError: if the densities have different shapes, or (for concrete values; see the
            module docstring for jit) a density is negative or not finite, or ``dx <= 0``.

    References:
        Goodfellow et al. "Generative Adversarial Nets", NeurIPS 2014, Theorem 1.

    Example:
        >>> import jax.numpy as jnp, math
        >>> p = jnp.array([0.25, 0.75])
        >>> math.isclose(float(gan_criterion(p, p)), -math.log(4), rel_tol=1e-6)
        True
    """
    _pair(p_data, p_g, names=("p_data", "p_g"), dx=dx)  # errors name these arguments
    return -math.log(4.0) + 2.0 * jensen_shannon(p_data, p_g, dx=dx)
