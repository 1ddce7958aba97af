"""Evaluation metrics as pure functions: 2-D mixture mode-collapse metrics (``mixture``), image
metrics (``image_metrics``: FID/KID/IS, precision/recall, density/coverage), the Inception network
and its weights (``inception``, ``fid_weights``), the offline digits classifier
(``digits_classifier``) and the metrics measured with it (``classifier_metrics``). The in-loop
evaluators that use them live in :mod:`lsgan_jax.evaluators`.

Keep this file light: it must not import heavy optional dependencies.
"""

from lsgan_jax.metrics.fid_weights import (
    PYTORCH_FID_WEIGHTS_SHA256,
    PYTORCH_FID_WEIGHTS_URL,
    WeightsUnavailableError,
    load_pytorch_fid_weights,
)
from lsgan_jax.metrics.image_metrics import (
    DensityCoverage,
    FeatureSpace,
    MetricResult,
    PrecisionRecall,
    Protocol,
    ReferenceStats,
    cache_reference_stats,
    density_coverage,
    feature_statistics,
    fid_from_features,
    fid_from_stats,
    frechet_distance,
    inception_score,
    kid,
    load_reference_stats,
    precision_recall,
    reference_stats_path,
)
from lsgan_jax.metrics.mixture import (
    DEFAULT_NUM_EVAL_SAMPLES,
    DEFAULT_THRESHOLD,
    METRIC_NAMES,
    assign_to_modes,
    mixture_metrics,
    normalized_distances,
)

__all__ = [
    "PYTORCH_FID_WEIGHTS_SHA256",
    "PYTORCH_FID_WEIGHTS_URL",
    "DensityCoverage",
    "FeatureSpace",
    "MetricResult",
    "PrecisionRecall",
    "Protocol",
    "ReferenceStats",
    "WeightsUnavailableError",
    "cache_reference_stats",
    "density_coverage",
    "feature_statistics",
    "fid_from_features",
    "fid_from_stats",
    "frechet_distance",
    "inception_score",
    "kid",
    "load_pytorch_fid_weights",
    "load_reference_stats",
    "precision_recall",
    "reference_stats_path",
    "DEFAULT_NUM_EVAL_SAMPLES",
    "DEFAULT_THRESHOLD",
    "METRIC_NAMES",
    "assign_to_modes",
    "mixture_metrics",
    "normalized_distances",
]
