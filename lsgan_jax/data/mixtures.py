"""On-device samplers for 2-D mixtures of isotropic Gaussians (ring, grid).

The mode-collapse benchmarks of ALI, VEEGAN, PacGAN and the official LSGAN mixture experiment all
train on a mixture of ``K`` isotropic Gaussians in the plane,

    p_data(x) = Σ_{j=1..K} w_j · N(x; μ_j, σ_j² I₂),

with means μ_j ∈ R², **standard deviations** σ_j > 0 and weights w_j > 0, Σ_j w_j = 1.

**Standard deviation, not variance.** :class:`Mixture` stores σ_j (the std), and
every ``std=`` argument in this module is a std. PacGAN's configs give *variances* (ring
``1e-4`` = std ``0.01``; grid ``0.0025`` = std ``0.05``); poolio/unrolled_gan, VEEGAN and the
official LSGAN code give stds. Convert with ``std = sqrt(variance)``.

Everything here is pure ``jax.numpy``: :func:`sample`, :func:`make_fixed_dataset` and
:func:`sample_from_dataset` are jittable (with a static sample count), accept traced keys, and
can be ``jax.vmap``-ed over keys (one independent stream per run of a sweep). A :class:`Mixture`
is a pure array pytree, so it can be passed into jitted functions or vmapped over as well.

The trainer samples the *global* batch and slices it per device, so nothing here knows about
device axes.

References:
    - Lin, Khetan, Fanti, Oh. "PacGAN: The power of two samples in generative adversarial
      networks." NeurIPS 2018. Code: fjxmlzn/PacGAN (ring: std 0.01, radius 1, first mode at
      (1, 0); grid: {-4, -2, 0, 2, 4}^2, std 0.05; 100,000 fixed training points).
    - Srivastava et al. "VEEGAN: Reducing mode collapse in GANs using implicit variational
      learning." NeurIPS 2017.
    - Mao et al. "Least Squares Generative Adversarial Networks." ICCV 2017 / TPAMI 2019. Code:
      xudonmao/LSGAN ``stability_comparison/mixture_gaussian/ls.py`` (based on poolio/unrolled_gan).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FIXED_DATASET_SIZE",
    "MIXTURES",
    "Mixture",
    "get_mixture",
    "grid",
    "make_fixed_dataset",
    "make_mixture",
    "official_lsgan_ring",
    "ring",
    "sample",
    "sample_from_dataset",
]

#: Size of PacGAN's (and ALI's) fixed training set of mixture points.
FIXED_DATASET_SIZE = 100_000


class Mixture(NamedTuple):
    """A mixture of ``K`` isotropic 2-D Gaussians, as a pure array pytree.

        p(x) = Σ_j w_j · N(x; μ_j, σ_j² I₂)

    Attributes:
        means: ``(K, 2)`` component means μ_j.
        stds: ``(K,)`` per-component isotropic **standard deviations** σ_j (not
            variances; the covariance of component ``j`` is ``stds[j]**2 * I``).
        weights: ``(K,)`` mixing weights w_j > 0 summing to 1.

    Build one with :func:`ring`, :func:`grid`, :func:`official_lsgan_ring`,
    :func:`get_mixture` or :func:`make_mixture` (which validates its input). It holds no name or
    other Python data, so it can be an argument of ``jax.jit`` / ``jax.vmap``.
    """

    means: jax.Array
    stds: jax.Array
    weights: jax.Array

    @property
    def num_modes(self) -> int:
        """Number of components ``K`` (static: read from the array shape)."""
        return self.means.shape[-2]


def _check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a Python int >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value}.")
    return float(value)


def make_mixture(
    means: Any,
    *,
    stds: Any,
    weights: Any | None = None,
) -> Mixture:
    """Builds a validated :class:`Mixture` from array-likes (float32 arrays).

    Args:
        means: ``(K, 2)`` component means.
        stds: isotropic **standard deviation(s)**: a scalar (shared by all modes) or ``(K,)``.
        weights: ``(K,)`` positive weights; normalized to sum to 1. ``None`` means uniform
            weights w_j = 1/K.

    Returns:
        The mixture, with float32 ``means``, ``stds`` and ``weights``.

    Raises:
        ValueError: on wrong shapes, non-finite values, non-positive stds or weights.
    """
    means_np = np.asarray(means, dtype=np.float64)
    if means_np.ndim != 2 or means_np.shape[1] != 2 or means_np.shape[0] < 1:
        raise ValueError(f"means must have shape (K, 2) with K >= 1, got {means_np.shape}.")
    k = means_np.shape[0]
    stds_np = np.asarray(stds, dtype=np.float64)
    if stds_np.shape not in ((), (k,)):
        raise ValueError(f"stds must be a scalar or have shape ({k},), got {stds_np.shape}.")
    stds_np = np.broadcast_to(stds_np, (k,)).copy()
    if weights is None:
        weights_np = np.full((k,), 1.0 / k)
    else:
        weights_np = np.asarray(weights, dtype=np.float64)
        if weights_np.shape != (k,):
            raise ValueError(
                f"weights must have shape ({k},) to match means, got {weights_np.shape}."
            )
    if not np.all(np.isfinite(means_np)):
        raise ValueError("means must be finite.")
    if not (np.all(np.isfinite(stds_np)) and np.all(stds_np > 0)):
        raise ValueError(
            f"stds must be finite and > 0 (they are stds, not variances), got {stds_np}."
        )
    if not (np.all(np.isfinite(weights_np)) and np.all(weights_np > 0)):
        raise ValueError(f"weights must be finite and > 0, got {weights_np}.")
    weights_np = weights_np / weights_np.sum()
    return Mixture(
        means=jnp.asarray(means_np, dtype=jnp.float32),
        stds=jnp.asarray(stds_np, dtype=jnp.float32),
        weights=jnp.asarray(weights_np, dtype=jnp.float32),
    )


def ring(num_modes: int = 8, *, radius: float = 1.0, std: float = 0.01) -> Mixture:
    """PacGAN's 2D-ring: ``num_modes`` equal-weight modes on a circle.

        μ_i = r·(cos(2πi/K), sin(2πi/K)),  i = 0..K−1,   σ_i = std,   w_i = 1/K.

    The angles are 2πi/K (no ``linspace(0, 2π, K)`` endpoint duplication), so all
    ``K`` modes are distinct; the first mode is at ``(r, 0)``. Defaults are PacGAN's (radius 1,
    std 0.01, i.e. variance 1e-4).

    Args:
        num_modes: number of modes ``K`` (>= 1).
        radius: ring radius ``r`` (> 0).
        std: per-mode isotropic standard deviation (> 0), not the variance.

    Returns:
        The mixture (float32 arrays).

    References:
        Lin et al., PacGAN, NeurIPS 2018 (fjxmlzn/PacGAN ``2DRing`` config).
    """
    k = _check_positive_int("num_modes", num_modes)
    r = _check_positive_float("radius", radius)
    s = _check_positive_float("std", std)
    theta = 2.0 * np.pi * np.arange(k) / k
    means = r * np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    return make_mixture(means, stds=s)


def official_lsgan_ring(
    *, radius: float = 1.0, std: float = 0.01, duplicate_endpoint: bool = True
) -> Mixture:
    """The ring of the official LSGAN mixture experiment (xudonmao/LSGAN ``ls.py``).

    The official code (forked from poolio/unrolled_gan) calls
    ``sample_mog(batch, n_mixture=9, std=0.01, radius=1.0)`` with
    θ = linspace(0, 2π, 9) and means r·(sin θ, cos θ).
    Because ``linspace`` includes both 0 and 2π, the first and last of the 9 centres coincide at
    ``(0, r)``: there are **8 distinct modes** (starting at ``(0, r)``, going clockwise) and the
    ``(0, r)`` mode is drawn twice as often: weights 2/9 for ``(0, r)`` and 1/9 for each of the
    other seven. This is what ``official_ring`` (and ``--variant=official`` of the mixture
    study) trains on.

    Args:
        radius: ring radius ``r`` (> 0).
        std: per-mode isotropic standard deviation (> 0), not the variance.
        duplicate_endpoint: ``True`` (default): the official data exactly, as 8 modes with
            weights ``(2/9, 1/9, ..., 1/9)`` (the duplicated centre is merged into one mode,
            because the mode metrics count *distinct* modes; sampling a merged mode with weight
            2/9 is the same law as sampling one of 9 centres uniformly). ``False``: the same 8
            centres with equal weights 1/8 -- the same distribution as :func:`ring` (PacGAN's
            ring) with the modes listed in another order; prefer ``ring`` for equal weights.

    Returns:
        The mixture (float32 arrays), ``K = 8``.

    References:
        Mao et al., LSGAN, ICCV 2017 / TPAMI 2019; xudonmao/LSGAN
        ``stability_comparison/mixture_gaussian/ls.py``; poolio/unrolled_gan.
    """
    r = _check_positive_float("radius", radius)
    s = _check_positive_float("std", std)
    if not isinstance(duplicate_endpoint, bool):
        raise TypeError(f"duplicate_endpoint must be a bool, got {duplicate_endpoint!r}.")
    theta = np.linspace(0.0, 2.0 * np.pi, 9)[:8]
    means = r * np.stack([np.sin(theta), np.cos(theta)], axis=-1)
    if duplicate_endpoint:
        weights = np.array([2.0] + [1.0] * 7) / 9.0
    else:
        weights = None
    return make_mixture(means, stds=s, weights=weights)


def grid(*, side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
    """PacGAN/ALI/VEEGAN 2D-grid: ``side × side`` equal-weight modes centred at the origin.

        μ_ab = spacing·(a − (side−1)/2, b − (side−1)/2),  a, b = 0..side−1,   w = 1/side².

    Defaults give the usual 25 modes at {−4, −2, 0, 2, 4}² with std 0.05 (variance
    0.0025). Mode order: row-major in ``(a, b)``, i.e. the x coordinate varies slowest.

    Args:
        side: number of modes per axis (>= 1).
        spacing: distance between neighbouring means (> 0).
        std: per-mode isotropic standard deviation (> 0), not the variance.

    Returns:
        The mixture (float32 arrays), ``K = side**2``.

    References:
        Lin et al., PacGAN, NeurIPS 2018; Dumoulin et al., ALI, ICLR 2017; Srivastava et al.,
        VEEGAN, NeurIPS 2017.
    """
    n = _check_positive_int("side", side)
    d = _check_positive_float("spacing", spacing)
    s = _check_positive_float("std", std)
    coords = d * (np.arange(n) - (n - 1) / 2.0)
    xx, yy = np.meshgrid(coords, coords, indexing="ij")
    means = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    return make_mixture(means, stds=s)


#: Registry of named mixtures; values are constructors returning a :class:`Mixture`.
MIXTURES: dict[str, Callable[..., Mixture]] = {
    "ring": ring,
    "grid": grid,
    "official_ring": official_lsgan_ring,
}


def get_mixture(name: str, **kwargs: Any) -> Mixture:
    """Builds a registered mixture by name.

    Args:
        name: a key of :data:`MIXTURES` (``"ring"``, ``"grid"``, ``"official_ring"``).
        **kwargs: forwarded to the constructor (e.g. ``std=0.02``).

    Returns:
        The mixture.

    Raises:
        ValueError: for an unknown name; the message lists the valid names and a close match.
    """
    try:
        ctor = MIXTURES[name]
    except (KeyError, TypeError):
        valid = sorted(MIXTURES)
        close = difflib.get_close_matches(str(name), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown mixture {name!r}.{hint} Valid names: {valid}.") from None
    return ctor(**kwargs)


def _check_num_samples(n: Any, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(
            f"{what} must be a static Python int (the output shape depends on it), got {n!r}. "
            f"Under jax.jit, pass it via static_argnames / functools.partial."
        )
    if n < 0:
        raise ValueError(f"{what} must be >= 0, got {n}.")
    return int(n)


def _check_mixture(mixture: Any) -> Mixture:
    if not isinstance(mixture, Mixture):
        raise TypeError(
            f"mixture must be a lsgan_jax.data.Mixture (use ring(), grid(), get_mixture(...)), "
            f"got {type(mixture).__name__}."
        )
    mixture = Mixture(*(jnp.asarray(leaf) for leaf in mixture))
    k = mixture.means.shape[0] if mixture.means.ndim == 2 else None
    if mixture.means.ndim != 2 or mixture.means.shape[1] != 2:
        raise ValueError(f"mixture.means must have shape (K, 2), got {mixture.means.shape}.")
    if mixture.stds.shape != (k,) or mixture.weights.shape != (k,):
        raise ValueError(
            f"mixture.stds and mixture.weights must have shape ({k},), got "
            f"{mixture.stds.shape} and {mixture.weights.shape}."
        )
    return mixture


def sample(mixture: Mixture, key: jax.Array, n: int) -> jax.Array:
    """Draws ``n`` i.i.d. points from the mixture, on device.

        c ~ Categorical(w),   x = μ_c + σ_c·ε,   ε ~ N(0, I₂).

    The component is drawn with ``jax.random.categorical`` on ``log w``; the key is split once
    into a component key and a noise key. Jittable (``n`` static), works with traced keys, and
    ``jax.vmap(sample, in_axes=(None, 0, None))`` over a batch of keys gives the same values as a
    Python loop over those keys.

    Args:
        mixture: the mixture (see :class:`Mixture`).
        key: a PRNG key (raw ``uint32[2]`` or typed ``jax.random.key``).
        n: number of points (static Python int >= 0).

    Returns:
        ``(n, 2)`` array in the mixture's dtype (float32 for the built-in constructors).
    """
    mixture = _check_mixture(mixture)
    n = _check_num_samples(n)
    dtype = jnp.result_type(mixture.means)
    comp_key, noise_key = jax.random.split(key)
    comps = jax.random.categorical(comp_key, jnp.log(mixture.weights), shape=(n,))
    noise = jax.random.normal(noise_key, (n, 2), dtype=dtype)
    return mixture.means[comps] + mixture.stds[comps, None].astype(dtype) * noise


def make_fixed_dataset(
    mixture: Mixture, key: jax.Array, size: int = FIXED_DATASET_SIZE
) -> jax.Array:
    """Draws PacGAN's fixed training set once: ``size`` i.i.d. mixture points.

    PacGAN (after ALI's ``GaussianMixtureDistribution``) trains on a fixed set of 100,000 points
    instead of fresh samples every step. Pair with :func:`sample_from_dataset`.

    Args:
        mixture: the mixture.
        key: a PRNG key (may be traced / vmapped).
        size: number of points (static Python int >= 1); default 100,000.

    Returns:
        ``(size, 2)`` array of points (same as ``sample(mixture, key, size)``).
    """
    size = _check_num_samples(size, "size")
    if size < 1:
        raise ValueError("size must be >= 1.")
    return sample(mixture, key, size)


def sample_from_dataset(points: jax.Array, key: jax.Array, n: int) -> jax.Array:
    """Draws ``n`` rows of a fixed dataset uniformly **with replacement**, on device.

        i_1, …, i_n ~iid Uniform{0, …, N−1},   batch = (points[i_1], …, points[i_n]).

    PacGAN iterates over its 100k points in shuffled epochs (each point once per epoch; for
    PacGAN-m the m packed points use independent ``randint`` index draws). Sampling indices with
    replacement is our on-device approximation of that epoch scheme: it keeps the whole loop
    inside ``lax.scan`` with no host iterator state, and it has the same marginal distribution per
    batch, but a point may appear twice in an epoch's worth of steps and another not at all.

    Args:
        points: ``(N, D)`` dataset, e.g. from :func:`make_fixed_dataset`.
        key: a PRNG key (may be traced / vmapped).
        n: batch size (static Python int >= 0).

    Returns:
        ``(n, D)`` array of rows of ``points``.
    """
    n = _check_num_samples(n)
    points = jnp.asarray(points)
    if points.ndim != 2 or points.shape[0] < 1:
        raise ValueError(f"points must have shape (N, D) with N >= 1, got {points.shape}.")
    idx = jax.random.randint(key, (n,), 0, points.shape[0])
    return points[idx]
