"""In-loop classifier metrics for digit datasets: the ``digits`` and ``times`` evaluators.

``evals=("digits",)`` (sklearn digits) or ``evals=("times",)`` (the Times-font sets) in an image
config gives, every ``eval_every`` steps and at the end, the metrics of
:mod:`lsgan_jax.metrics.classifier_metrics` on ``num_eval_samples`` images generated from a
fixed latent batch (``eval_seed``), scored by the cached classifier of
:mod:`lsgan_jax.metrics.digits_classifier`; ``config.collapse`` (optional) sets the
:class:`~lsgan_jax.metrics.classifier_metrics.CollapseRule`. The image trainer records
:meth:`ClassifierEvaluator.protocol` in ``summary.json`` under ``protocols``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from lsgan_jax.errors import ConfigError
from lsgan_jax.evaluators import sampling
from lsgan_jax.metrics.classifier_metrics import (
    ClassifierMetrics,
    CollapseRule,
    Reference,
    classifier_metrics,
    make_reference,
)
from lsgan_jax.metrics.digits_classifier import Classifier, get_classifier
from lsgan_jax.models.latent import latent_of

__all__ = [
    "DATASETS",
    "DEFAULT_NUM_EVAL_SAMPLES",
    "ClassifierEvaluator",
    "make_classifier_evaluator",
    "make_digits_evaluator",
]

#: The datasets each registered classifier evaluator accepts (``config.data.name``).
DATASETS = {"digits": ("digits",), "times": ("times_shift", "times_shift_rotate")}
#: Generated images per evaluation when a config does not set ``num_eval_samples``.
DEFAULT_NUM_EVAL_SAMPLES = 1_000
#: Seed of the fixed latent batch when a config does not set ``eval_seed``.
DEFAULT_EVAL_SEED = 0
#: The default collapse thresholds.
DEFAULT_RULE = CollapseRule()


class ClassifierEvaluator:
    """``evaluator(generate, step) -> {metric: float}`` for ``image_trainer.train(evaluators=...)``.

    Samples ``num_samples`` images from a fixed latent batch (the same z at every evaluation, so
    numbers are comparable across steps), measures them with :func:`classifier_metrics` and
    returns :meth:`ClassifierMetrics.scalars`. Every result is kept in :attr:`history`
    (``[(step, ClassifierMetrics)]``); :attr:`last` is the newest and :attr:`last_samples` holds
    the first 64 samples of the newest evaluation (for sample grids).

    Args:
      classifier: The classifier.
      reference: Real statistics.
      num_samples: Generated samples per evaluation.
      seed: Seed of the fixed latent batch.
      latent_dim: Size of z.
      latent_dist: ``"uniform"`` (U[−1, 1]) or ``"normal"``.
      rule: Collapse thresholds.
      batch: Generator batch per call.
    """

    def __init__(
        self,
        classifier: Classifier,
        reference: Reference,
        *,
        num_samples: int,
        seed: int,
        latent_dim: int,
        latent_dist: str,
        rule: CollapseRule = DEFAULT_RULE,
        batch: int = 500,
    ):
        if num_samples < 6:
            raise ValueError(f"num_samples must be >= 6 (k-NN metrics), got {num_samples}.")
        self.classifier = classifier
        self.reference = reference
        self.num_samples = int(num_samples)
        self.rule = rule
        self.batch = int(min(batch, num_samples))
        self._z = sampling.fixed_latents(
            seed=seed, num_samples=self.num_samples, batch=self.batch,
            latent_dim=latent_dim, latent_dist=latent_dist,
        )  # fmt: skip
        self.history: list[tuple[int, ClassifierMetrics]] = []
        self.last_samples: np.ndarray | None = None

    @property
    def last(self) -> ClassifierMetrics | None:
        return self.history[-1][1] if self.history else None

    def sample(self, generate: Callable[..., Any]) -> np.ndarray:
        """The evaluation samples ``(num_samples, S, S, C)`` in [−1, 1]."""
        return sampling.generate_images(
            generate, self._z, num_samples=self.num_samples, batch=self.batch
        )

    def __call__(self, generate: Callable[..., Any], step: int) -> dict[str, float]:
        samples = self.sample(generate)
        result = classifier_metrics(self.classifier, samples, self.reference, rule=self.rule)
        self.history.append((int(step), result))
        self.last_samples = samples[:64]
        return result.scalars()

    def protocol(self) -> dict[str, Any]:
        """The protocol of the logged numbers, the classifier and the collapse rule."""
        c = self.classifier
        return {
            "n_real": self.reference.n_real,
            "n_fake": self.num_samples,
            "split": self.reference.split,
            "dataset": self.reference.dataset,
            "feature_space": dataclasses.asdict(c.space),
            "classifier": {
                "config": {**dataclasses.asdict(c.config), "hidden": list(c.config.hidden)},
                "heldout_accuracy": c.accuracy,
                "n_train": c.n_train,
                "n_test": c.n_test,
                "cache": c.path,
            },
            "collapse_rule": self.rule.as_dict(),
        }


def make_digits_evaluator(
    num_samples: int = 1000,
    seed: int = 0,
    *,
    config: Any = None,
    dataset: str | None = None,
    image_size: int | None = None,
    latent_dim: int | None = None,
    latent_dist: str | None = None,
    rule: CollapseRule = DEFAULT_RULE,
    data_dir: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **classifier_overrides: Any,
) -> ClassifierEvaluator:
    """An in-loop evaluator with the (cached) classifier of a digit dataset.

    Pass the experiment ``config`` (dataset, image size and the generator's latent
    size/distribution are read from it), or give them explicitly.

    Args:
      num_samples: Generated samples per evaluation.
      seed: Seed of the fixed latent batch.
      config: An image experiment config (``experiments/image_common.base_config`` layout).
      dataset: Dataset name (default ``config.data.name``, else ``"digits"``).
      image_size: Experiment resolution (default ``config.data.image_size``).
      latent_dim: Size of z (default: read from ``config``'s generator).
      latent_dist: Distribution of z (default: read from ``config``'s generator).
      rule: Collapse thresholds.
      data_dir: TFDS data directory (default ``config.data.data_dir`` / ``$TFDS_DATA_DIR``).
      cache_dir: Classifier cache base directory.
      **classifier_overrides: :class:`ClassifierConfig` fields.

    Returns:
      A :class:`ClassifierEvaluator`.
    """
    if config is not None:
        dataset = dataset or config.data.name
        image_size = image_size or int(config.data.image_size)
        data_dir = data_dir or (config.data.get("data_dir", "") or None)
        if latent_dim is None or latent_dist is None:
            dim, dist = latent_of(config)
            latent_dim = latent_dim or dim
            latent_dist = latent_dist or dist
    if latent_dim is None or latent_dist is None:
        raise ValueError(
            "make_digits_evaluator needs the generator's latent size and distribution: pass "
            "config=<the experiment config> or latent_dim=... and latent_dist=... ."
        )
    dataset = dataset or "digits"
    clf = get_classifier(
        dataset, image_size, data_dir=data_dir, cache_dir=cache_dir, **classifier_overrides
    )
    ref = make_reference(clf, data_dir=data_dir)
    return ClassifierEvaluator(
        clf,
        ref,
        num_samples=num_samples,
        seed=seed,
        latent_dim=latent_dim,
        latent_dist=latent_dist,
        rule=rule,
    )


def make_classifier_evaluator(config: Any, name: str = "digits") -> ClassifierEvaluator:
    """The registered ``digits`` / ``times`` evaluator of an image config.

    Reads ``config.data`` (dataset, resolution, data_dir), ``config.model`` (latent),
    ``config.num_eval_samples``, ``config.eval_seed`` and the optional ``config.collapse``.

    Raises:
      ConfigError: when ``config.data.name`` is not one of ``DATASETS[name]``.
    """
    allowed = DATASETS[name]
    if config.data.name not in allowed:
        other = [k for k, v in DATASETS.items() if config.data.name in v]
        hint = f" Use evals=({other[0]!r},) for it." if other else ""
        raise ConfigError(
            f"The {name!r} evaluator scores {allowed} with their offline classifier; "
            f"data.name is {config.data.name!r}.{hint} (Inception metrics: 'inception'.)"
        )
    try:
        rule = CollapseRule.from_config(config.get("collapse"))
    except ValueError as e:
        raise ConfigError(f"config.collapse: {e}") from e
    return make_digits_evaluator(
        int(config.get("num_eval_samples", DEFAULT_NUM_EVAL_SAMPLES)),
        int(config.get("eval_seed", DEFAULT_EVAL_SEED)),
        config=config,
        rule=rule,
    )
