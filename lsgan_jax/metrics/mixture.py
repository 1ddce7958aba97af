"""Mode-collapse metrics for 2-D Gaussian mixtures (VEEGAN / PacGAN protocol), in jittable jnp.

Given generated samples x_1..x_n ∈ R² and a mixture with means μ_j, stds σ_j and weights w_j
(j = 1..K, see :class:`lsgan_jax.data.Mixture`):

1. **Normalized distance** (PacGAN ``MetricLogger``)::

       d_j(x) = sqrt( Σ_dim (x − μ_j)² / σ_j² ) = ‖x − μ_j‖ / σ_j

2. **Assignment**: each sample goes to its nearest mode in normalized distance,
   m(x) = argmin_j d_j(x) (ties → lowest index). With equal stds this is the Euclidean nearest
   mean that VEEGAN and Welfert et al. use.
3. **High quality (HQ)**: x is HQ iff min_j d_j(x) < threshold, **strictly** (PacGAN
   ``dis_thre=3``: within 3 standard deviations). VEEGAN's notebook and Welfert et al. use ≤; the
   two differ only on a measure-zero set.
4. Metrics (all float32 scalars, so they average over runs):

   - ``modes_covered`` = #{j : some HQ sample has m(x) = j} (VEEGAN's "modes captured").
   - ``high_quality`` = #HQ / n, a fraction in [0, 1] (tables print it as a percentage).
   - ``reverse_kl`` = KL(p_HQ ‖ w) = Σ_{j: p_HQ,j > 0} p_HQ,j · log(p_HQ,j / w_j), natural log,
     where p_HQ,j = #{HQ x : m(x) = j} / #HQ is the normalized histogram of HQ samples over
     modes. With uniform weights this is log K − H(p_HQ), the "entropy of coverage" that PacGAN's
     ``MetricLogger`` logs, which we take as PacGAN Table 1's "reverse KL" (a derived reading;
     the paper's own wording is unverified). Terms with p_HQ,j = 0 contribute 0.
     **No HQ sample at all**: p_HQ is undefined; we return −log(min_j w_j), the supremum of
     KL(· ‖ w) over the simplex (a point mass on the least likely mode; log K for uniform
     weights). It is finite and NaN-free so it can be averaged, and it ranks "nothing near any
     mode" as at least as bad as total collapse onto one mode.
   - ``reverse_kl_all`` = KL(p_all ‖ w), the same but with the histogram of **all** n samples by
     nearest mode, HQ or not (the Self-Conditioned GAN variant, ``2d_mix/evaluation.py``).
     No +1 smoothing (unlike Welfert et al.'s logged KL).
   - ``all_modes`` = 1.0 if ``modes_covered == K`` else 0.0: "success" in the sense of Welfert
     et al. (all 8/8 ring modes covered); its mean over seeds is the success rate.

Protocols evaluate :data:`DEFAULT_NUM_EVAL_SAMPLES` = 2,500 samples (VEEGAN, PacGAN). Mode counts
grow with the number of samples, so compare only numbers taken at the same n.

``mixture_metrics`` is pure jnp: jit it, and ``jax.vmap`` it over a leading runs axis of samples
(``in_axes=(0, None)``) to evaluate a whole sweep at once.

References:
    - Srivastava, Valkov, Russell, Gutmann, Sutton. "VEEGAN: Reducing mode collapse in GANs using
      implicit variational learning." NeurIPS 2017 (HQ within 3 std; modes captured; 2,500
      samples).
    - Lin, Khetan, Fanti, Oh. "PacGAN: The power of two samples in generative adversarial
      networks." NeurIPS 2018; code fjxmlzn/PacGAN ``MetricLogger`` (normalized distance,
      ``dis_thre=3``, strict <, entropy of the HQ-mode histogram).
    - Liu, Wang, Bau, Zhu, Torralba. "Diverse image generation via self-conditioned GANs." CVPR
      2020; code stevliu/self-conditioned-gan ``2d_mix`` (reverse KL over all samples).
    - Welfert, Otstot, Kurri, Sankar. "Towards addressing GAN training instabilities:
      dual-objective GANs with tunable parameters" ((αD, αG)-GANs); code
      SankarLab/AlphaGan-Papers-Results (success = all 8/8 ring modes covered; LSGAN 32.5 % over
      200 seeds).
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from lsgan_jax.data.mixtures import Mixture

__all__ = [
    "DEFAULT_NUM_EVAL_SAMPLES",
    "DEFAULT_THRESHOLD",
    "METRIC_NAMES",
    "assign_to_modes",
    "mixture_metrics",
    "normalized_distances",
]

#: Number of generated samples per evaluation in the VEEGAN and PacGAN protocols.
DEFAULT_NUM_EVAL_SAMPLES = 2500

#: High-quality threshold in standard deviations (VEEGAN; PacGAN ``dis_thre=3``).
DEFAULT_THRESHOLD = 3.0

#: Keys of the dict returned by :func:`mixture_metrics`, in a stable order.
METRIC_NAMES = ("modes_covered", "high_quality", "reverse_kl", "reverse_kl_all", "all_modes")


def _mixture_arrays(mixture: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    try:
        means, stds, weights = mixture.means, mixture.stds, mixture.weights
    except AttributeError:
        raise TypeError(
            "mixture must be a lsgan_jax.data.Mixture (means, stds, weights), e.g. from "
            f"lsgan_jax.data.get_mixture('ring'); got {type(mixture).__name__}."
        ) from None
    means, stds, weights = jnp.asarray(means), jnp.asarray(stds), jnp.asarray(weights)
    if means.ndim != 2 or means.shape[0] < 1:
        raise ValueError(f"mixture.means must have shape (K, D) with K >= 1, got {means.shape}.")
    k = means.shape[0]
    if stds.shape != (k,) or weights.shape != (k,):
        raise ValueError(
            f"mixture.stds and mixture.weights must have shape ({k},), got {stds.shape} and "
            f"{weights.shape}."
        )
    return means, stds, weights


def _check_samples(samples: Any, dim: int) -> jax.Array:
    samples = jnp.asarray(samples)
    if samples.ndim != 2 or samples.shape[1] != dim:
        hint = (
            " For a leading runs axis use jax.vmap(mixture_metrics, in_axes=(0, None))."
            if samples.ndim == 3
            else ""
        )
        raise ValueError(f"samples must have shape (n, {dim}), got {samples.shape}.{hint}")
    if samples.shape[0] < 1:
        raise ValueError("samples must contain at least one point (n >= 1).")
    return samples


def normalized_distances(samples: jax.Array, mixture: Mixture) -> jax.Array:
    """Normalized distances of every sample to every mode.

    d_j(x) = sqrt(Σ_dim (x − μ_j)² / σ_j²) = ‖x − μ_j‖ / σ_j   (PacGAN ``MetricLogger``).

    Args:
        samples: ``(n, 2)`` points.
        mixture: the reference mixture (σ_j are standard deviations).

    Returns:
        ``(n, K)`` array, at least float32.
    """
    means, stds, _ = _mixture_arrays(mixture)
    samples = _check_samples(samples, means.shape[1])
    dtype = jnp.promote_types(jnp.result_type(samples, means), jnp.float32)
    diff = samples.astype(dtype)[:, None, :] - means.astype(dtype)[None, :, :]
    scaled = diff / stds.astype(dtype)[None, :, None]
    return jnp.sqrt(jnp.sum(jnp.square(scaled), axis=-1))


def assign_to_modes(samples: jax.Array, mixture: Mixture) -> tuple[jax.Array, jax.Array]:
    """Nearest mode of each sample and its normalized distance.

    m(x) = argmin_j d_j(x) (lowest index on ties), dist(x) = min_j d_j(x); see
    :func:`normalized_distances`. A sample is high quality iff ``dist < threshold``.

    Args:
        samples: ``(n, 2)`` points.
        mixture: the reference mixture.

    Returns:
        ``(mode_index, distance)``: int32 ``(n,)`` and float ``(n,)``.
    """
    d = normalized_distances(samples, mixture)
    return jnp.argmin(d, axis=-1).astype(jnp.int32), jnp.min(d, axis=-1)


def _kl_to_weights(counts: jax.Array, total: jax.Array, weights: jax.Array) -> jax.Array:
    """KL(counts/total ‖ weights), 0·log 0 = 0; assumes total > 0 where the result is used."""
    p = counts / jnp.maximum(total, 1.0)
    positive = p > 0
    safe_p = jnp.where(positive, p, 1.0)
    terms = jnp.where(positive, p * (jnp.log(safe_p) - jnp.log(weights)), 0.0)
    return jnp.sum(terms)


def mixture_metrics(
    samples: jax.Array,
    mixture: Mixture,
    *,
    threshold: float | jax.Array = DEFAULT_THRESHOLD,
) -> dict[str, jax.Array]:
    """VEEGAN/PacGAN mode-collapse metrics of generated samples against a mixture.

    With d_j(x) = ‖x − μ_j‖/σ_j, m(x) = argmin_j d_j(x) and HQ(x) = [min_j d_j(x) < threshold]
    (strict), over n samples::

        modes_covered  = #{j : ∃ x with HQ(x) and m(x) = j}
        high_quality   = (1/n) Σ_x HQ(x)
        reverse_kl     = Σ_{j: p_j > 0} p_j log(p_j / w_j),  p_j = #{x: HQ(x), m(x)=j} / #HQ
                         (= log K − H(p) for uniform w);  −log(min_j w_j) if #HQ = 0
        reverse_kl_all = Σ_{j: q_j > 0} q_j log(q_j / w_j),  q_j = #{x: m(x)=j} / n
        all_modes      = 1.0 if modes_covered == K else 0.0

    See the module docstring for sources and the no-HQ convention. Pure jnp: jittable, and
    vmappable over a leading runs axis with ``jax.vmap(mixture_metrics, in_axes=(0, None))``.

    Args:
        samples: ``(n, 2)`` generated points, n >= 1 (usually
            :data:`DEFAULT_NUM_EVAL_SAMPLES`).
        mixture: the data mixture (a :class:`lsgan_jax.data.Mixture`); its weights enter both
            KLs, so the official LSGAN duplicate-endpoint ring (weights 2/9, 1/9, …) is handled.
        threshold: HQ radius in standard deviations (default 3; may be traced).

    Returns:
        Dict with keys :data:`METRIC_NAMES`, each a float32 scalar.

    Raises:
        ValueError: if ``samples`` is not ``(n, 2)`` with n >= 1, the mixture arrays have
            inconsistent shapes, or a concrete ``threshold`` is negative or not finite.
    """
    means, stds, weights = _mixture_arrays(mixture)
    samples = _check_samples(samples, means.shape[1])
    if isinstance(threshold, numbers.Real) and not (0 <= float(threshold) < float("inf")):
        raise ValueError(f"threshold must be finite and >= 0 (in stds), got {threshold}.")
    k = means.shape[0]
    n = samples.shape[0]

    mode, dist = assign_to_modes(samples, mixture)
    hq = dist < threshold
    one_hot = jax.nn.one_hot(mode, k, dtype=jnp.float32)  # (n, K)
    counts_all = jnp.sum(one_hot, axis=0)
    counts_hq = jnp.sum(one_hot * hq[:, None].astype(jnp.float32), axis=0)
    num_hq = jnp.sum(counts_hq)

    weights = weights.astype(jnp.float32)
    modes_covered = jnp.sum(counts_hq > 0).astype(jnp.float32)
    no_hq_value = -jnp.log(jnp.min(weights))
    reverse_kl = jnp.where(num_hq > 0, _kl_to_weights(counts_hq, num_hq, weights), no_hq_value)
    reverse_kl_all = _kl_to_weights(counts_all, jnp.float32(n), weights)
    return {
        "modes_covered": modes_covered,
        "high_quality": (num_hq / n).astype(jnp.float32),
        "reverse_kl": reverse_kl.astype(jnp.float32),
        "reverse_kl_all": reverse_kl_all.astype(jnp.float32),
        "all_modes": (modes_covered == k).astype(jnp.float32),
    }
