"""Classifier-based metrics of generated digit images, and when they count as mode collapse.

Given a trained classifier (:mod:`lsgan_jax.metrics.digits_classifier`) and its real reference
(:func:`make_reference`), :func:`classifier_metrics` measures a set of generated images:

* **class coverage** — fraction of the K classes that receive at least ``min_class_frac`` (1 %) of
  the predicted labels (mode coverage; Salimans et al. 2016 use a classifier the same way for
  MNIST, and Metz et al. 2017 / Srivastava et al. 2017 count MNIST modes with one);
* **KL(class histogram ‖ uniform)** = ``Σ_k p_k log(K p_k)`` (0 for a perfectly balanced
  generator, ``log K`` for a single class; the "reverse KL" of VEEGAN/PacGAN on classes);
* **confidence** — mean max-softmax probability (low for unrecognisable samples);
* **Fréchet distance** in the classifier's penultimate features against the real set
  (:func:`lsgan_jax.metrics.image_metrics.fid_from_features` with a :class:`FeatureSpace` that names
  this classifier — *not* comparable with Inception FID), and improved precision/recall
  (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020) in the same space;
* **diversity** — mean pairwise L2 distance between generated samples (pixels at the experiment
  resolution) divided by the same for the real set (1 for a sample of the real data, 0 for one
  repeated image);
* **collapsed** (0/1) — ``(class_coverage < min_coverage or fd > max_fd) and diversity <
  max_diversity`` (:class:`CollapseRule`; defaults 0.5, ∞, 0.8): the metrics say the samples
  miss the data *and* they are much less diverse than the data — mode collapse, as opposed to
  a generator that is still noisy (diverse but wrong) or one that misses a few classes with
  normal within-class variety. The FD term is off by default: early, low-contrast gray samples
  have a large FD *and* a low pixel diversity without having collapsed onto a few classes; set
  ``max_fd`` to count them too. Calibration values of the thresholds are in ``docs/protocols.md``.

Every number comes with its protocol (``n_real``, ``n_fake``, the real split, the feature space):
:attr:`ClassifierMetrics.protocol`. The real reference is the whole ``train`` split of the
dataset (the set the GAN trains on; sklearn digits has no other).

References:
  Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016. Heusel et al., "GANs
  Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017
  (Fréchet distance). Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing
  Generative Models", NeurIPS 2019. Naeem et al., "Reliable Fidelity and Diversity Metrics for
  Generative Models", ICML 2020. Srivastava et al., "VEEGAN", NeurIPS 2017 and Lin et al.,
  "PacGAN", NeurIPS 2018 (modes and KL to uniform).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lsgan_jax.metrics.digits_classifier import Classifier, load_real_images
from lsgan_jax.metrics.image_metrics import (
    MetricResult,
    Protocol,
    density_coverage,
    fid_from_features,
    precision_recall,
)

__all__ = [
    "ClassifierMetrics",
    "CollapseRule",
    "Reference",
    "classifier_metrics",
    "make_reference",
    "mean_pairwise_distance",
]


def mean_pairwise_distance(x: Any, *, max_samples: int = 1000, seed: int = 0) -> float:
    """Mean L2 distance over distinct pairs of rows of ``x`` (a fixed subsample of
    ``max_samples`` rows when larger)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if len(x) > max_samples:
        x = x[np.random.default_rng(seed).choice(len(x), max_samples, replace=False)]
    n = len(x)
    if n < 2:
        raise ValueError("mean_pairwise_distance needs at least 2 samples.")
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    return float(np.sqrt(d2).sum() / (n * (n - 1)))


@dataclasses.dataclass(frozen=True)
class CollapseRule:
    """When a set of samples counts as mode-collapsed.

    ``collapsed = (class_coverage < min_coverage or fd > max_fd) and diversity < max_diversity``.

    Attributes:
      min_coverage: Class-coverage threshold (fraction of classes with ≥ ``min_class_frac``).
      max_fd: Classifier-feature Fréchet distance threshold (``inf`` disables this term).
      max_diversity: Diversity-ratio threshold (fake / real mean pairwise distance).
      min_class_frac: A class is covered when at least this fraction of samples is predicted as it.
    """

    min_coverage: float = 0.5
    max_fd: float = float("inf")
    max_diversity: float = 0.8
    min_class_frac: float = 0.01

    @classmethod
    def from_config(cls, collapse: Any = None) -> CollapseRule:
        """The rule of a config block ``{min_coverage, max_fd, max_diversity, min_class_frac}``.

        ``None`` or an empty block gives the defaults; ``max_fd`` 0 (or ``None``) turns the FD
        term off, as in the study configs (``config.collapse``).
        """
        kw = dict(collapse or {})
        unknown = sorted(set(kw) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(
                f"Unknown collapse-rule field(s) {unknown}; known: "
                f"{[f.name for f in dataclasses.fields(cls)]}."
            )
        if "max_fd" in kw:
            kw["max_fd"] = float(kw["max_fd"] or float("inf"))
        return cls(**kw)

    def as_dict(self) -> dict[str, float | None]:
        """The thresholds, JSON-safe (a disabled ``max_fd`` is ``None``)."""
        d = dataclasses.asdict(self)
        return {k: (None if v == float("inf") else v) for k, v in d.items()}

    def __str__(self) -> str:
        fd = f" or fd > {self.max_fd:g}" if np.isfinite(self.max_fd) else ""
        return (
            f"collapsed = (class_coverage < {self.min_coverage:g}{fd}) and diversity < "
            f"{self.max_diversity:g}; a class is covered with >= {self.min_class_frac:.0%} of "
            "the samples"
        )


@dataclasses.dataclass(frozen=True)
class Reference:
    """Real-data statistics the metrics compare against (computed once).

    Attributes:
      features: ``(N_real, D)`` classifier features of the real set.
      diversity: Mean pairwise pixel distance of the real images (at ``source_size``).
      n_real: N_real.
      split: The real split.
      dataset: Dataset name.
    """

    features: np.ndarray
    diversity: float
    n_real: int
    split: str
    dataset: str


def make_reference(
    classifier: Classifier,
    images: np.ndarray | None = None,
    *,
    data_dir: str | None = None,
) -> Reference:
    """Features and diversity of the real set (default: the classifier's dataset split)."""
    c = classifier.config
    if images is None:
        images, _ = load_real_images(
            c.dataset, source_size=c.source_size, split=c.split, data_dir=data_dir
        )
    _, feats = classifier(images)
    return Reference(
        features=feats,
        diversity=mean_pairwise_distance(images),
        n_real=len(images),
        split=c.split,
        dataset=c.dataset,
    )


@dataclasses.dataclass(frozen=True)
class ClassifierMetrics:
    """Classifier-based metrics of one set of generated samples.

    Attributes:
      class_hist: ``(K,)`` fraction of samples predicted as each class.
      class_coverage: Fraction of classes with ≥ ``rule.min_class_frac`` of the samples.
      kl_uniform: ``KL(class_hist ‖ uniform) = Σ p log(K p)`` (nats).
      confidence: Mean max-softmax probability.
      fd: Fréchet distance in the classifier's features (:class:`MetricResult` with protocol).
      precision, recall: Improved precision/recall (k = 3) in the same space.
      density, dc_coverage: Density/coverage (k = 5) in the same space.
      diversity: Mean pairwise distance of the samples / that of the real set.
      collapsed: The :class:`CollapseRule` verdict.
      protocol: ``n_real``, ``n_fake``, ``split``, feature space of every number.
      rule: The rule used.
    """

    class_hist: np.ndarray
    class_coverage: float
    kl_uniform: float
    confidence: float
    fd: MetricResult
    precision: MetricResult
    recall: MetricResult
    density: MetricResult
    dc_coverage: MetricResult
    diversity: float
    collapsed: bool
    protocol: Protocol
    rule: CollapseRule

    def scalars(self) -> dict[str, float]:
        """The scalar metrics (what an in-loop evaluator logs)."""
        return {
            "class_coverage": self.class_coverage,
            "kl_uniform": self.kl_uniform,
            "confidence": self.confidence,
            "fd": float(self.fd.value),
            "precision": float(self.precision.value),
            "recall": float(self.recall.value),
            "density": float(self.density.value),
            "dc_coverage": float(self.dc_coverage.value),
            "diversity": self.diversity,
            "collapsed": float(self.collapsed),
        }

    def as_dict(self) -> dict[str, Any]:
        """Scalars, the class histogram and the protocol (JSON-friendly)."""
        return {
            **self.scalars(),
            "class_hist": [round(float(p), 5) for p in self.class_hist],
            "protocol": self.protocol.as_dict(),
            "collapse_rule": self.rule.as_dict(),
        }


def classifier_metrics(
    classifier: Classifier,
    fake_images: Any,
    reference: Reference,
    *,
    rule: CollapseRule = CollapseRule(),
) -> ClassifierMetrics:
    """Classifier-based metrics of generated images (see the module docstring).

    Args:
      classifier: From :func:`train_classifier` / :func:`get_classifier`.
      fake_images: ``(N, S, S, C)`` in [−1, 1] at the classifier's ``source_size``; N ≥ 6.
      reference: From :func:`make_reference`.
      rule: Collapse thresholds.

    Returns:
      :class:`ClassifierMetrics`.
    """
    x = np.asarray(fake_images, np.float32)
    logits, feats = classifier(x)
    k = classifier.num_classes
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1), np.float64)
    hist = np.bincount(probs.argmax(1), minlength=k)[:k] / len(x)
    coverage = float((hist >= rule.min_class_frac).mean())
    nz = hist[hist > 0]
    kl = float((nz * np.log(nz * k)).sum())
    space = classifier.space
    split = reference.split
    fd = fid_from_features(reference.features, feats, split=split, space=space)
    fd = dataclasses.replace(fd, name="fd")
    pr = precision_recall(reference.features, feats, split=split, space=space, k=3)
    dc = density_coverage(reference.features, feats, split=split, space=space, k=5)
    diversity = mean_pairwise_distance(x) / max(reference.diversity, 1e-12)
    collapsed = (coverage < rule.min_coverage or fd.value > rule.max_fd) and (
        diversity < rule.max_diversity
    )
    protocol = Protocol.make(
        n_real=reference.n_real, n_fake=len(x), split=split, space=space,
        dataset=reference.dataset, classifier_accuracy=round(classifier.accuracy, 4),
    )  # fmt: skip
    return ClassifierMetrics(
        class_hist=hist,
        class_coverage=coverage,
        kl_uniform=kl,
        confidence=float(probs.max(1).mean()),
        fd=fd,
        precision=pr.precision,
        recall=pr.recall,
        density=dc.density,
        dc_coverage=dataclasses.replace(dc.coverage, name="dc_coverage"),
        diversity=float(diversity),
        collapsed=bool(collapsed),
        protocol=protocol,
        rule=rule,
    )
