"""Evaluation metrics: 2-D mixture mode-collapse metrics (``mixture``); image metrics elsewhere.

Keep this file light: it must not import heavy optional dependencies.
"""

from lsgan_jax.metrics.mixture import (
    DEFAULT_NUM_EVAL_SAMPLES,
    DEFAULT_THRESHOLD,
    METRIC_NAMES,
    assign_to_modes,
    mixture_metrics,
    normalized_distances,
)

__all__ = [
    "DEFAULT_NUM_EVAL_SAMPLES",
    "DEFAULT_THRESHOLD",
    "METRIC_NAMES",
    "assign_to_modes",
    "mixture_metrics",
    "normalized_distances",
]
