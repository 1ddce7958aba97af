"""Image-quality metrics on feature vectors: FID, KID, IS, precision/recall, density/coverage.

Everything here is NumPy/SciPy on ``(N, D)`` feature arrays (float64 inside), so it runs in any
feature space: Inception pool3 from :mod:`lsgan_jax.metrics.inception`, or toy features in tests.

Every number carries its protocol (peers.md §7: FID moves with sample counts, the reference split,
the Inception weights and the resize). Metric functions return a :class:`MetricResult` whose
:class:`Protocol` records ``n_real``, ``n_fake``, ``split``, ``resize``, ``weights``, the feature
layer and the metric's settings (``k``, KID subsets, IS splits). The feature space is always
stated by the caller (:class:`FeatureSpace`; an extractor's ``.space``), never assumed.

References:
    FID: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", NeurIPS 2017 (computed as pytorch-fid's / TTUR's
    ``calculate_frechet_distance``).
    KID: Bińkowski et al., "Demystifying MMD GANs", ICLR 2018 (subsets as torch-fidelity).
    IS: Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016.
    Precision/recall: Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing
    Generative Models", NeurIPS 2019.
    Density/coverage: Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative
    Models", ICML 2020.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.linalg
import scipy.special

from lsgan_jax.cache import default_cache_dir
from lsgan_jax.metrics import fid_weights

RESIZE_PYTORCH_FID = "bilinear-299 (pytorch-fid)"
WEIGHTS_RANDOM = "random (test only)"
POOL3 = "inception-v3 pool3 (2048)"

__all__ = [
    "POOL3",
    "RESIZE_PYTORCH_FID",
    "WEIGHTS_RANDOM",
    "DensityCoverage",
    "FeatureSpace",
    "MetricResult",
    "PrecisionRecall",
    "Protocol",
    "ReferenceStats",
    "cache_reference_stats",
    "density_coverage",
    "feature_statistics",
    "fid_from_features",
    "fid_from_stats",
    "frechet_distance",
    "inception_score",
    "kid",
    "load_reference_stats",
    "precision_recall",
    "reference_stats_path",
]


# --------------------------------------------------------------------------------------------
# Protocol records
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
    """Which features a metric was computed in.

    Attributes:
        weights: Network weights, e.g. ``"pt_inception-2015-12-05 (sha256 6726825d0af5f729…)"``
            or :data:`WEIGHTS_RANDOM`.
        resize: Resize in front of the network, e.g. :data:`RESIZE_PYTORCH_FID`.
        features: Layer / feature description, e.g. :data:`POOL3`.
    """

    weights: str
    resize: str = RESIZE_PYTORCH_FID
    features: str = POOL3

    @classmethod
    def pytorch_fid(cls) -> FeatureSpace:
        """pytorch-fid's protocol: published weights (by sha256), bilinear 299, pool3."""
        return cls(weights=fid_weights.weights_tag(fid_weights.PYTORCH_FID_WEIGHTS_SHA256))

    def slug(self) -> str:
        """Short file-name-safe id of this space (for cache files)."""
        text = f"{self.features}|{self.resize}|{self.weights}"
        return f"{_safe(self.features)[:24]}-{_stable_hash(text)}"


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How a number was measured. Report it next to the number.

    Attributes:
        n_real: Real (reference) samples, 0 when the metric has none (IS).
        n_fake: Generated samples.
        split: Reference split (``"train"``, ``"test"``, …); ``"none"`` for IS.
        resize: Resize in front of the network.
        weights: Network weights.
        features: Feature layer.
        settings: Metric settings as ``((name, value), …)`` (``k``, KID subsets, IS splits).
    """

    n_real: int
    n_fake: int
    split: str
    resize: str
    weights: str
    features: str
    settings: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(
        cls, *, n_real: int, n_fake: int, split: str, space: FeatureSpace, **settings: Any
    ) -> Protocol:
        """Builds a protocol from a feature space and metric settings."""
        return cls(
            int(n_real),
            int(n_fake),
            str(split),
            space.resize,
            space.weights,
            space.features,
            tuple(sorted(settings.items())),
        )

    def as_dict(self) -> dict[str, Any]:
        """Flat dict for ``summary.json`` / logs."""
        out = {k: getattr(self, k) for k in ("n_real", "n_fake", "split", "resize", "weights")}
        out["features"] = self.features
        out.update(dict(self.settings))
        return out

    def __str__(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.settings)
        return (
            f"n_real={self.n_real} n_fake={self.n_fake} split={self.split} resize={self.resize} "
            f"weights={self.weights} features={self.features}{extra}"
        )


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """A metric value with its protocol (and a spread where the metric has one).

    Attributes:
        name: ``"fid"``, ``"kid"``, ``"is"``, ``"precision"``, ``"recall"``, ``"density"``,
            ``"coverage"``.
        value: The number (KID: mean over subsets; IS: mean over splits).
        protocol: How it was measured.
        std: Standard deviation over KID subsets / IS splits, else ``None``.
    """

    name: str
    value: float
    protocol: Protocol
    std: float | None = None

    def __float__(self) -> float:
        return float(self.value)

    def as_dict(self) -> dict[str, Any]:
        """``{name: value, name_std: std, protocol fields…}`` for ``summary.json``."""
        out: dict[str, Any] = {self.name: self.value}
        if self.std is not None:
            out[f"{self.name}_std"] = self.std
        out.update(self.protocol.as_dict())
        return out

    def __str__(self) -> str:
        spread = f" ± {self.std:.4g}" if self.std is not None else ""
        return f"{self.name} = {self.value:.4f}{spread} [{self.protocol}]"


class PrecisionRecall(NamedTuple):
    """Improved precision and recall (Kynkäänniemi et al. 2019)."""

    precision: MetricResult
    recall: MetricResult


class DensityCoverage(NamedTuple):
    """Density and coverage (Naeem et al. 2020)."""

    density: MetricResult
    coverage: MetricResult


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _stable_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _features(x: Any, name: str, *, min_rows: int = 1) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, D) features, got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: real {a.shape[1]} vs fake {b.shape[1]}")


def _check_space(space: Any) -> FeatureSpace:
    if not isinstance(space, FeatureSpace):
        raise TypeError(
            "space must be a FeatureSpace (e.g. extractor.space or FeatureSpace.pytorch_fid()), "
            f"got {type(space).__name__}"
        )
    return space


# --------------------------------------------------------------------------------------------
# FID
# --------------------------------------------------------------------------------------------


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features, as pytorch-fid: ``np.cov(rowvar=False)`` (ddof 1).

    Args:
        features: ``(N, D)``, N >= 2.

    Returns:
        ``(mu (D,), sigma (D, D))`` in float64.
    """
    x = _features(features, "features", min_rows=2)
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, *, eps: float = 1e-6) -> float:
    """Fréchet distance between two Gaussians.

    ``d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2})`` with ``scipy.linalg.sqrtm``, exactly as
    pytorch-fid's ``calculate_frechet_distance``: if the square root is not finite (singular
    product, e.g. fewer samples than dimensions) ``eps·I`` is added to both covariances; a
    complex result with imaginary diagonal above 1e-3 is an error, smaller imaginary parts are
    dropped.

    Args:
        mu1: ``(D,)`` mean of the first Gaussian.
        sigma1: ``(D, D)`` covariance.
        mu2: ``(D,)`` mean of the second Gaussian.
        sigma2: ``(D, D)`` covariance.
        eps: Diagonal offset used only when the plain square root fails.

    Returns:
        The squared Fréchet distance (what the literature calls FID when the inputs are
        Inception pool3 statistics).

    Raises:
        ValueError: Shape mismatch, or a square root with a large imaginary component.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != mu2.shape or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"shape mismatch: mu1 {mu1.shape}, mu2 {mu2.shape}, sigma1 {sigma1.shape}, "
            f"sigma2 {sigma2.shape}"
        )
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(d) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"matrix square root has imaginary component {np.max(np.abs(covmean.imag)):.3g}"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(
    real_features: Any, fake_features: Any, *, split: str, space: FeatureSpace
) -> MetricResult:
    """FID between real and generated features.

    Args:
        real_features: ``(N_real, D)`` reference features.
        fake_features: ``(N_fake, D)`` generated features.
        split: The reference split (``"train"``/``"test"``…): part of the protocol.
        space: Feature space of both (e.g. ``extractor.space``).

    Returns:
        :class:`MetricResult` ``"fid"``.
    """
    space = _check_space(space)
    real = _features(real_features, "real_features", min_rows=2)
    fake = _features(fake_features, "fake_features", min_rows=2)
    _same_dim(real, fake)
    value = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    protocol = Protocol.make(n_real=len(real), n_fake=len(fake), split=split, space=space)
    return MetricResult("fid", value, protocol)


# --------------------------------------------------------------------------------------------
# Reference statistics cache
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReferenceStats:
    """Cached Gaussian statistics of a reference set.

    Attributes:
        name: Dataset name.
        split: Split.
        mu: ``(D,)`` mean.
        sigma: ``(D, D)`` covariance.
        n: Number of samples.
        space: Feature space they were computed in.
    """

    name: str
    split: str
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    space: FeatureSpace


def _stats_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "fid_stats"


def reference_stats_path(
    name: str, split: str, *, space: FeatureSpace, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Cache file of a dataset/split in a feature space.

    Returns:
        ``<cache>/fid_stats/<name>_<split>_<space slug>.npz``.
    """
    space = _check_space(space)
    return _stats_dir(cache_dir) / f"{_safe(name)}_{_safe(split)}_{space.slug()}.npz"


def cache_reference_stats(
    name: str,
    split: str,
    features: Any,
    *,
    space: FeatureSpace,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Computes and stores ``mu``, ``sigma``, ``n`` and the protocol strings of reference features.

    Args:
        name: Dataset name (e.g. ``"cifar10"``).
        split: Split the features come from (e.g. ``"test"``).
        features: ``(N, D)`` features of the whole split (or the subset you report).
        space: Their feature space (stored; a lookup in another space will not find them).
        cache_dir: Base cache directory (default :func:`lsgan_jax.cache.default_cache_dir`).

    Returns:
        Path of the written ``.npz``.
    """
    mu, sigma = feature_statistics(features)
    path = reference_stats_path(name, split, space=space, cache_dir=cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stats-", suffix=".npz")
    os.close(fd)
    try:
        np.savez(
            tmp,
            mu=mu,
            sigma=sigma,
            n=np.int64(np.asarray(features).shape[0]),
            name=np.array(name),
            split=np.array(split),
            weights=np.array(space.weights),
            resize=np.array(space.resize),
            features=np.array(space.features),
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_reference_stats(
    name: str, split: str, *, space: FeatureSpace, cache_dir: str | os.PathLike[str] | None = None
) -> ReferenceStats:
    """Loads statistics written by :func:`cache_reference_stats`.

    Raises:
        FileNotFoundError: Not cached for this name/split/space; the message says how to make it.
    """
    path = reference_stats_path(name, split, space=space, cache_dir=cache_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"no reference statistics for {name!r} split {split!r} in {space} at {path}; "
            "compute features of the reference set and call cache_reference_stats(...) first"
        )
    with np.load(path) as z:
        stored = FeatureSpace(str(z["weights"]), str(z["resize"]), str(z["features"]))
        if stored != space:
            raise ValueError(f"{path} holds statistics in {stored}, not {space}")
        return ReferenceStats(
            str(z["name"]), str(z["split"]), z["mu"], z["sigma"], int(z["n"]), stored
        )


def fid_from_stats(
    reference: ReferenceStats, fake_features: Any, *, space: FeatureSpace
) -> MetricResult:
    """FID of generated features against cached reference statistics.

    Args:
        reference: From :func:`load_reference_stats`.
        fake_features: ``(N_fake, D)``.
        space: Feature space of ``fake_features``; must equal the reference's.

    Returns:
        :class:`MetricResult` ``"fid"`` with the reference's ``n`` and split.
    """
    space = _check_space(space)
    if space != reference.space:
        raise ValueError(
            f"generated features are in {space} but the reference statistics are in "
            f"{reference.space}: the FID would not be comparable"
        )
    fake = _features(fake_features, "fake_features", min_rows=2)
    if fake.shape[1] != reference.mu.shape[0]:
        raise ValueError(f"feature dim {fake.shape[1]} != reference dim {reference.mu.shape[0]}")
    value = frechet_distance(reference.mu, reference.sigma, *feature_statistics(fake))
    protocol = Protocol.make(
        n_real=reference.n, n_fake=len(fake), split=reference.split, space=space,
        reference=reference.name,
    )  # fmt: skip
    return MetricResult("fid", value, protocol)


# --------------------------------------------------------------------------------------------
# KID
# --------------------------------------------------------------------------------------------


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    m, n = len(x), len(y)
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * k_xy.sum() / (m * n))


def kid(
    real_features: Any,
    fake_features: Any,
    *,
    split: str,
    space: FeatureSpace,
    n_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 2020,
) -> MetricResult:
    """Kernel Inception Distance: unbiased MMD² with ``k(x, y) = (x·y / d + 1)³``, over subsets.

    Per subset ``s`` (``m`` fake rows, then ``m`` real rows, each drawn without replacement by
    ``np.random.RandomState(seed).choice`` -- torch-fidelity's draws, order and defaults:
    ``input1`` is the generated set, 100 subsets of 1000, seed 2020, ``(x·y/d + 1)³``; so the
    value equals ``torch_fidelity.metric_kid.kid_features_to_metric(fake, real)`` on the same
    features)

        MMD²_u = Σ_{i≠j} k(x_i, x_j) / (m(m−1)) + Σ_{i≠j} k(y_i, y_j) / (m(m−1))
                 − 2 Σ_{i,j} k(x_i, y_j) / m²

    and KID = mean over subsets, ``std`` = their standard deviation (ddof 0). Can be slightly
    negative when the distributions match. ``subset_size`` is clipped to the smaller set (as
    clean-fid does; torch-fidelity refuses instead); the protocol records the size used.

    Args:
        real_features: ``(N_real, D)``.
        fake_features: ``(N_fake, D)``.
        split: Reference split.
        space: Feature space.
        n_subsets: Number of subsets.
        subset_size: Rows per subset (clipped to ``min(N_real, N_fake)``).
        degree: Polynomial degree (3).
        gamma: Kernel scale, default ``1 / D``.
        coef0: Kernel offset (1).
        seed: Subset RNG seed.

    Returns:
        :class:`MetricResult` ``"kid"`` with ``std``.
    """
    space = _check_space(space)
    real = _features(real_features, "real_features", min_rows=2)
    fake = _features(fake_features, "fake_features", min_rows=2)
    _same_dim(real, fake)
    if n_subsets < 1 or subset_size < 2:
        raise ValueError(
            f"need n_subsets >= 1 and subset_size >= 2, got {n_subsets}, {subset_size}"
        )
    m = min(subset_size, len(real), len(fake))
    g = 1.0 / real.shape[1] if gamma is None else float(gamma)
    rng = np.random.RandomState(seed)
    mmds = np.empty(n_subsets)
    for s in range(n_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]  # torch-fidelity: input1 (generated)
        y = real[rng.choice(len(real), m, replace=False)]  # first, then input2 (reference)
        mmds[s] = _mmd2_unbiased(x, y, degree, g, coef0)
    protocol = Protocol.make(
        n_real=len(real), n_fake=len(fake), split=split, space=space,
        kid_subsets=n_subsets, kid_subset_size=m, kid_degree=degree, kid_seed=seed,
    )  # fmt: skip
    return MetricResult("kid", float(mmds.mean()), protocol, std=float(mmds.std()))


# --------------------------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------------------------


def inception_score(
    logits: Any,
    *,
    space: FeatureSpace,
    splits: int = 10,
    shuffle: bool = True,
    seed: int = 2020,
) -> MetricResult:
    """Inception Score ``exp(E_x KL(p(y|x) ‖ p(y)))``, mean and std over ``splits`` chunks.

    ``p(y|x) = softmax(logits)`` over all 1008 outputs of the FID graph; ``p(y)`` is the mean
    over the chunk. Pass ``logits_unbiased`` (pool3 @ W without the fc bias): that is what the
    original IS code (openai/improved-gan) and torch-fidelity use. The rows are first permuted
    with ``RandomState(seed).permutation(N)`` (``shuffle=True``, torch-fidelity's default
    ``samples_shuffle``), then cut into consecutive chunks ``i·N//splits`` …
    ``(i+1)·N//splits``: the defaults (10 splits, shuffled, seed 2020) give
    ``torch_fidelity.metric_isc.isc_features_to_metric`` on the same logits.

    Args:
        logits: ``(N, C)`` class logits of generated images.
        space: Feature space (weights/resize) of the logits.
        splits: Number of chunks (10).
        shuffle: Permute before splitting (default True, as torch-fidelity).
        seed: Permutation seed.

    Returns:
        :class:`MetricResult` ``"is"`` with ``std``; ``n_real = 0``, ``split = "none"``.
    """
    space = _check_space(space)
    z = _features(logits, "logits", min_rows=max(int(splits), 1))
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    n = len(z)
    if shuffle:
        z = z[np.random.RandomState(seed).permutation(n)]
    log_p = z - scipy.special.logsumexp(z, axis=1, keepdims=True)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        log_q = np.log(p[lo:hi].mean(axis=0, keepdims=True))
        kl = (p[lo:hi] * (log_p[lo:hi] - log_q)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    protocol = Protocol.make(
        n_real=0, n_fake=n, split="none", space=space,
        is_splits=splits, is_shuffle=shuffle,
    )  # fmt: skip
    return MetricResult("is", float(np.mean(scores)), protocol, std=float(np.std(scores)))


# --------------------------------------------------------------------------------------------
# k-NN manifold metrics
# --------------------------------------------------------------------------------------------

_MAX_BLOCK_ELEMENTS = 1 << 24  # 128 MiB of float64 per distance block


def _sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    d = (a * a).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _blocks(n_rows: int, n_cols: int):
    step = max(1, _MAX_BLOCK_ELEMENTS // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _kth_nn_sq_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row (self excluded)."""
    if len(x) <= k:
        raise ValueError(f"need more than k={k} samples for k-NN radii, got {len(x)}")
    x_sq = (x * x).sum(axis=1)
    out = np.empty(len(x))
    for sl in _blocks(len(x), len(x)):
        d = _sq_dists(x[sl], x, x_sq)
        d[np.arange(d.shape[0]), np.arange(sl.start, sl.stop)] = 0.0  # self exactly at 0
        out[sl] = np.partition(d, k, axis=1)[:, k]
    return out


def _inside_any_ball(points: np.ndarray, centers: np.ndarray, sq_radii: np.ndarray) -> np.ndarray:
    """Whether each point lies in some ball ``‖p − c_i‖ <= r_i`` (closed)."""
    c_sq = (centers * centers).sum(axis=1)
    out = np.empty(len(points), dtype=bool)
    for sl in _blocks(len(points), len(centers)):
        out[sl] = (_sq_dists(points[sl], centers, c_sq) <= sq_radii[None, :]).any(axis=1)
    return out


def precision_recall(
    real_features: Any,
    fake_features: Any,
    *,
    split: str,
    space: FeatureSpace,
    k: int = 3,
) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    The real manifold is the union of balls around each real feature with radius the distance
    to its k-th nearest real neighbour (self excluded); likewise for the fake manifold.
    ``precision`` = fraction of fake samples inside the real manifold (fidelity), ``recall`` =
    fraction of real samples inside the fake manifold (diversity). Balls are closed (``<=``), as
    in the authors' code and torch-fidelity. Distances in float64, computed in blocks.

    Args:
        real_features: ``(N_real, D)``, ``N_real > k``.
        fake_features: ``(N_fake, D)``, ``N_fake > k``.
        split: Reference split.
        space: Feature space.
        k: Neighbourhood size (3, the paper's).

    Returns:
        :class:`PrecisionRecall` of two :class:`MetricResult`.
    """
    space = _check_space(space)
    real = _features(real_features, "real_features")
    fake = _features(fake_features, "fake_features")
    _same_dim(real, fake)
    precision = float(_inside_any_ball(fake, real, _kth_nn_sq_radius(real, k)).mean())
    recall = float(_inside_any_ball(real, fake, _kth_nn_sq_radius(fake, k)).mean())
    protocol = Protocol.make(n_real=len(real), n_fake=len(fake), split=split, space=space, k=k)
    return PrecisionRecall(
        MetricResult("precision", precision, protocol), MetricResult("recall", recall, protocol)
    )


def density_coverage(
    real_features: Any,
    fake_features: Any,
    *,
    split: str,
    space: FeatureSpace,
    k: int = 5,
) -> DensityCoverage:
    """Density and coverage (Naeem et al. 2020).

    With ``r_i`` the distance from real sample ``X_i`` to its k-th nearest real neighbour,

        density  = 1/(k M) Σ_j Σ_i 1[‖Y_j − X_i‖ < r_i]          (M fake samples Y_j)
        coverage = 1/N Σ_i 1[min_j ‖Y_j − X_i‖ < r_i]             (N real samples X_i)

    (strict ``<`` as the authors' ``prdc`` code). For identical distributions E[density] = 1 and
    coverage ≈ 1 − 2^{−k}; density can exceed 1.

    Args:
        real_features: ``(N_real, D)``, ``N_real > k``.
        fake_features: ``(N_fake, D)``.
        split: Reference split.
        space: Feature space.
        k: Neighbourhood size (5, the paper's).

    Returns:
        :class:`DensityCoverage` of two :class:`MetricResult`.
    """
    space = _check_space(space)
    real = _features(real_features, "real_features")
    fake = _features(fake_features, "fake_features")
    _same_dim(real, fake)
    r2 = _kth_nn_sq_radius(real, k)
    fake_sq = (fake * fake).sum(axis=1)
    real_sq = (real * real).sum(axis=1)
    count = 0
    for sl in _blocks(len(fake), len(real)):
        count += int((_sq_dists(fake[sl], real, real_sq) < r2[None, :]).sum())
    covered = np.empty(len(real), dtype=bool)
    for sl in _blocks(len(real), len(fake)):
        covered[sl] = _sq_dists(real[sl], fake, fake_sq).min(axis=1) < r2[sl]
    protocol = Protocol.make(n_real=len(real), n_fake=len(fake), split=split, space=space, k=k)
    return DensityCoverage(
        MetricResult("density", count / (k * len(fake)), protocol),
        MetricResult("coverage", float(covered.mean()), protocol),
    )
