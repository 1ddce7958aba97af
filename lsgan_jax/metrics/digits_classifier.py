"""Offline classifier-based metrics for digit datasets (sklearn ``digits``, ``times_*``).

Inception features mean little on 8×8 handwritten digits or Times-font glyphs, and the Inception
weights may not be on an offline machine. This module trains a small JAX classifier on the real
images once (seconds on a CPU), caches it, and measures generated samples with it:

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
  resolution) divided by the same for the real set (≈ 1 for real data, 0 for one repeated image;
  a few classes with their natural within-class variety still give ≈ 0.95, one class ≈ 0.5 on
  sklearn digits, uniform noise ≈ 1.5);
* **collapsed** (0/1) — ``(class_coverage < min_coverage or fd > max_fd) and diversity <
  max_diversity`` (defaults 0.5, ∞, 0.8: :class:`CollapseRule`): the metrics say the samples
  miss the data *and* they are much less diverse than the data — mode collapse, as opposed to
  a generator that is still noisy (diverse but wrong) or one that misses a few classes with
  normal within-class variety. The FD term is off by default: early, low-contrast gray samples
  have a large FD *and* a low pixel diversity without having collapsed onto a few classes; set
  ``max_fd`` to count them too. On sklearn digits (16 or 32 px) the digits FD of real samples
  is ≈ 0.3, real + N(0, 0.3²) noise ≈ 6, half the classes ≈ 50, one class ≈ 350-400, uniform
  noise ≈ 540; generators with good samples reach 10-40.

Classifier. An MLP (ReLU; default hidden widths (128, 64), the last layer's activations are the
features) on images at the classifier's ``input_size``: the GAN's samples at the experiment
resolution (e.g. 32×32) are **area-averaged** down to ``input_size`` (8×8 for ``digits``, the
native resolution, an exact 4×4 box mean at 32 px; 14×14 for the 28×28 ``times_*`` sets); other
size ratios use the antialiased bilinear matrix of :func:`lsgan_jax.data.images.bilinear_matrix`.
The classifier is trained on the real images after the *same* path the GAN sees them through
(the pipeline's bilinear resize to the experiment resolution, then the area average), so real and
generated images are measured identically. Training: AdamW, minibatches with ±``jitter_px``
random shifts at input resolution, a stratified held-out split (``holdout`` = 20 %) whose accuracy
is reported (sklearn digits: 0.986 on 359 held-out images with the defaults; the Times sets:
1.000 on 2,000). The trained weights are cached as ``.npz`` under ``<cache>/classifiers/``
keyed by a hash of every setting (:meth:`ClassifierConfig.key`), in
:func:`lsgan_jax.metrics.fid_weights.default_cache_dir` unless ``cache_dir`` is given.

Every number comes with its protocol (``n_real``, ``n_fake``, the real split, the feature space):
:attr:`ClassifierMetrics.protocol`. The real reference is the whole ``train`` split of the
dataset (the set the GAN trains on; sklearn digits has no other).

In-loop use: :func:`make_digits_evaluator` returns an ``evaluator(generate, step) -> dict`` for
``lsgan_jax.training.image_trainer.train(evaluators=...)``.

References:
  Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016 (classifier-based
  sample scores). Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
  Nash Equilibrium", NeurIPS 2017 (Fréchet distance). Kynkäänniemi et al., "Improved Precision and
  Recall Metric for Assessing Generative Models", NeurIPS 2019. Naeem et al., "Reliable Fidelity
  and Diversity Metrics for Generative Models", ICML 2020. Srivastava et al., "VEEGAN", NeurIPS
  2017 and Lin et al., "PacGAN", NeurIPS 2018 (modes and KL to uniform).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lsgan_jax.metrics import fid_weights
from lsgan_jax.metrics.image_metrics import (
    FeatureSpace,
    MetricResult,
    Protocol,
    density_coverage,
    fid_from_features,
    precision_recall,
)

log = logging.getLogger(__name__)

__all__ = [
    "Classifier",
    "ClassifierConfig",
    "ClassifierEvaluator",
    "ClassifierMetrics",
    "CollapseRule",
    "Reference",
    "area_downsample",
    "classifier_metrics",
    "default_config",
    "get_classifier",
    "latent_of",
    "load_real_images",
    "make_digits_evaluator",
    "make_reference",
    "mean_pairwise_distance",
    "train_classifier",
]

#: Bump when the training code changes in a way that changes the weights (part of the cache key).
_VERSION = 1
#: Classifier input resolution per dataset (native for digits; half for the 28×28 Times sets).
_INPUT_SIZE = {"digits": 8, "times_shift": 14, "times_shift_rotate": 14}


# --------------------------------------------------------------------------------------------
# Config and data
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Every setting of a classifier (all of them enter the cache key).

    Attributes:
      dataset: Registry name in :data:`lsgan_jax.data.images.DATASETS` (``digits``,
        ``times_shift``, ``times_shift_rotate``, or any labelled prepared dataset).
      source_size: The experiment resolution: real images are resized to it as the training
        pipeline does, and generated samples come at it.
      input_size: Classifier resolution (area average from ``source_size``).
      hidden: MLP hidden widths; the last layer's ReLU activations are the features.
      steps: Optimizer steps.
      batch_size: Minibatch size.
      lr: AdamW learning rate.
      weight_decay: AdamW weight decay.
      jitter_px: Random integer shifts of ±jitter_px pixels at ``input_size`` (augmentation; 0
        disables).
      holdout: Fraction of each class held out to report accuracy.
      seed: Split, initialisation and minibatch seed.
      split: Dataset split used (train + held-out).
    """

    dataset: str = "digits"
    source_size: int = 32
    input_size: int = 8
    hidden: tuple[int, ...] = (128, 64)
    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    jitter_px: int = 0
    holdout: float = 0.2
    seed: int = 0
    split: str = "train"

    def __post_init__(self):
        if self.source_size < 1 or self.input_size < 1 or self.input_size > self.source_size:
            raise ValueError(
                f"Need 1 <= input_size <= source_size, got input_size={self.input_size}, "
                f"source_size={self.source_size}."
            )
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be a non-empty tuple of widths, got {self.hidden!r}.")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must be in (0, 1), got {self.holdout}.")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1.")

    def key(self) -> str:
        """12-hex hash of the settings (and the code version): the cache key."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["_version"] = _VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def feature_dim(self) -> int:
        return int(self.hidden[-1])


def default_config(dataset: str = "digits", source_size: int | None = None, **overrides: Any):
    """The default :class:`ClassifierConfig` of a dataset at an experiment resolution.

    Args:
      dataset: Registry name.
      source_size: Experiment resolution (default: the dataset's registry ``image_size``).
      **overrides: Any other :class:`ClassifierConfig` field.
    """
    from lsgan_jax.data import images  # noqa: PLC0415

    spec = images.get_spec(dataset)
    size = int(source_size or spec.image_size)
    native = _INPUT_SIZE.get(dataset, min(size, 16))
    kw: dict[str, Any] = {"dataset": dataset, "source_size": size, "input_size": min(native, size)}
    if dataset.startswith("times_"):
        kw.update(hidden=(256, 64), steps=1000, jitter_px=1)
    kw.update(overrides)
    return ClassifierConfig(**kw)


def load_real_images(
    dataset: str, *, source_size: int, split: str = "train", data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All images of a split at the experiment resolution, as the training pipeline makes them.

    ``uint8 → crop → bilinear resize to source_size → x / 127.5 − 1`` (the pipeline of
    :func:`lsgan_jax.data.images.make_iterator`), read through :func:`images.load_source` (so
    ``digits`` and ``times_*`` are prepared offline on first use).

    Returns:
      ``(images float32 (N, S, S, C) in [−1, 1], labels int32 (N,))``.
    """
    from lsgan_jax.data import images  # noqa: PLC0415

    x, labels, info = images.load_images(dataset, size=source_size, split=split, data_dir=data_dir)
    if info.num_classes < 2:
        raise ValueError(f"Dataset {dataset!r} is unlabelled; a classifier needs class labels.")
    return x, labels


def area_downsample(x: jax.Array, size: int) -> jax.Array:
    """``(N, H, W, C)`` → ``(N, size, size, C)``: box mean for integer ratios, else PIL bilinear.

    Jittable (the resampling matrices are constants).
    """
    n, h, w, c = x.shape
    if (h, w) == (size, size):
        return x
    if h % size == 0 and w % size == 0:
        return x.reshape(n, size, h // size, size, w // size, c).mean(axis=(2, 4))
    from lsgan_jax.data.images import bilinear_matrix  # noqa: PLC0415

    my, mx = jnp.asarray(bilinear_matrix(h, size)), jnp.asarray(bilinear_matrix(w, size))
    return jnp.einsum("oh,nhwc,pw->nopc", my, x, mx)


def _to_input(x: jax.Array, input_size: int) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    return area_downsample(x, input_size).reshape(x.shape[0], -1)


# --------------------------------------------------------------------------------------------
# The network (pure JAX)
# --------------------------------------------------------------------------------------------


def _init(key: jax.Array, dims: list[int]) -> dict[str, dict[str, jax.Array]]:
    params = {}
    for i, (m, n) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        key, sub = jax.random.split(key)
        name = "out" if i == len(dims) - 2 else f"dense_{i}"
        params[name] = {
            "w": jax.random.normal(sub, (m, n), jnp.float32) * jnp.sqrt(2.0 / m),
            "b": jnp.zeros((n,), jnp.float32),
        }
    return params


def _forward(params: dict, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(logits (N, K), features (N, D))`` of flattened inputs ``x``."""
    h = x
    for i in range(len(params) - 1):
        layer = params[f"dense_{i}"]
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h @ params["out"]["w"] + params["out"]["b"], h


def _jitter(key: jax.Array, x: jax.Array, size: int, px: int) -> jax.Array:
    """Random integer shifts of ±px (zero fill) of flattened ``(N, size²·C)`` images."""
    n = x.shape[0]
    img = x.reshape(n, size, size, -1)
    pad = jnp.pad(img, ((0, 0), (px, px), (px, px), (0, 0)), constant_values=-1.0)
    offs = jax.random.randint(key, (n, 2), 0, 2 * px + 1)

    def crop(im, o):
        return jax.lax.dynamic_slice(im, (o[0], o[1], 0), (size, size, im.shape[-1]))

    return jax.vmap(crop)(pad, offs).reshape(n, -1)


def _stratified_split(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n_test = max(1, int(round(holdout * len(idx))))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@dataclasses.dataclass
class Classifier:
    """A trained classifier and how it was made.

    Attributes:
      config: Its settings.
      params: ``{"dense_i": {"w", "b"}, "out": {"w", "b"}}`` (JAX arrays).
      num_classes: K.
      accuracy: Held-out accuracy.
      n_train, n_test: Sizes of the training and held-out parts.
      train_seconds: Training time (0 when loaded from the cache).
      path: Cache file, if any.
    """

    config: ClassifierConfig
    params: dict
    num_classes: int
    accuracy: float
    n_train: int
    n_test: int
    train_seconds: float = 0.0
    path: str | None = None

    def __post_init__(self):
        size = self.config.input_size
        self._apply = jax.jit(lambda p, x: _forward(p, _to_input(x, size)))

    @property
    def space(self) -> FeatureSpace:
        """The feature space of :meth:`features` (names this classifier by its cache key)."""
        c = self.config
        widths = "-".join(str(w) for w in c.hidden)
        return FeatureSpace(
            weights=f"lsgan_jax {c.dataset} classifier mlp-{widths} #{c.key()}",
            resize=f"bilinear-{c.source_size} (pipeline), area {c.source_size}->{c.input_size}",
            features=f"penultimate relu ({c.feature_dim})",
        )

    def __call__(self, images: Any, *, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """``(logits (N, K), features (N, D))`` of images ``(N, S, S, C)`` in [−1, 1]."""
        x = np.asarray(images, np.float32)
        if x.ndim != 4 or x.shape[1:3] != (self.config.source_size,) * 2:
            raise ValueError(
                f"Expected images (N, {self.config.source_size}, {self.config.source_size}, C) "
                f"in [-1, 1] (the classifier's source_size), got shape {x.shape}."
            )
        logits, feats = [], []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            n = len(chunk)
            if n < batch and len(x) > batch:  # keep one compiled shape
                chunk = np.concatenate([chunk, np.zeros((batch - n, *x.shape[1:]), x.dtype)])
            lo, fe = self._apply(self.params, chunk)
            logits.append(np.asarray(lo)[:n])
            feats.append(np.asarray(fe)[:n])
        return np.concatenate(logits), np.concatenate(feats)

    def inputs(self, images: Any) -> np.ndarray:
        """The flattened classifier inputs (area-averaged pixels) of images."""
        return np.asarray(_to_input(jnp.asarray(images, jnp.float32), self.config.input_size))


def _cache_path(config: ClassifierConfig, cache_dir: str | os.PathLike | None) -> Path:
    base = Path(cache_dir) if cache_dir is not None else fid_weights.default_cache_dir()
    return base / "classifiers" / f"{config.dataset}_{config.input_size}px_{config.key()}.npz"


def _save(clf: Classifier, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        f"p/{layer}/{name}": np.asarray(v)
        for layer, d in clf.params.items()
        for name, v in d.items()
    }
    meta = {
        "config": {**dataclasses.asdict(clf.config), "hidden": list(clf.config.hidden)},
        "num_classes": clf.num_classes,
        "accuracy": clf.accuracy,
        "n_train": clf.n_train,
        "n_test": clf.n_test,
        "train_seconds": clf.train_seconds,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".clf-", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load(config: ClassifierConfig, path: Path) -> Classifier | None:
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            params: dict[str, dict[str, jax.Array]] = {}
            for k in z.files:
                if k.startswith("p/"):
                    _, layer, name = k.split("/")
                    params.setdefault(layer, {})[name] = jnp.asarray(z[k])
    except (OSError, KeyError, ValueError) as err:
        log.warning("Ignoring unreadable classifier cache %s: %s", path, err)
        return None
    return Classifier(
        config,
        params,
        int(meta["num_classes"]),
        float(meta["accuracy"]),
        int(meta["n_train"]),
        int(meta["n_test"]),
        0.0,
        os.fspath(path),
    )


def train_classifier(
    config: ClassifierConfig,
    *,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    data_dir: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> Classifier:
    """Trains (or loads from the cache) a classifier on a labelled dataset.

    Args:
      config: The settings.
      images: Optional ``(N, S, S, C)`` images in [−1, 1] at ``config.source_size`` (default: the
        dataset's split through :func:`load_real_images`). Given images bypass the cache.
      labels: Their int labels.
      data_dir: TFDS data directory.
      cache_dir: Base cache directory (default :func:`fid_weights.default_cache_dir`).
      use_cache: Load/store the weights in the cache.

    Returns:
      The :class:`Classifier` with its held-out accuracy.
    """
    given = images is not None
    path = _cache_path(config, cache_dir)
    if use_cache and not given and path.is_file():
        clf = _load(config, path)
        if clf is not None:
            return clf
    if not given:
        images, labels = load_real_images(
            config.dataset, source_size=config.source_size, split=config.split, data_dir=data_dir
        )
    labels = np.asarray(labels, np.int32)
    k = int(labels.max()) + 1
    t0 = time.perf_counter()
    x = np.asarray(_to_input(jnp.asarray(images, jnp.float32), config.input_size))
    tr, te = _stratified_split(labels, config.holdout, config.seed)
    key = jax.random.PRNGKey(config.seed)
    params = _init(jax.random.fold_in(key, 0), [x.shape[1], *config.hidden, k])
    tx = optax.adamw(config.lr, weight_decay=config.weight_decay)
    x_tr, y_tr = jnp.asarray(x[tr]), jnp.asarray(labels[tr])
    bs = min(config.batch_size, len(tr))
    size, px = config.input_size, int(config.jitter_px)

    def step(carry, i):
        p, opt = carry
        kb, kj = jax.random.split(jax.random.fold_in(key, i + 1))
        idx = jax.random.randint(kb, (bs,), 0, x_tr.shape[0])
        xb = x_tr[idx]
        if px:
            xb = _jitter(kj, xb, size, px)

        def loss_fn(p):
            logits, _ = _forward(p, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y_tr[idx]).mean()

        loss, g = jax.value_and_grad(loss_fn)(p)
        upd, opt = tx.update(g, opt, p)
        return (optax.apply_updates(p, upd), opt), loss

    run = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), jnp.arange(config.steps))[0][0])
    params = run(params)
    logits, _ = jax.jit(_forward)(params, jnp.asarray(x[te]))
    accuracy = float((np.asarray(logits).argmax(1) == labels[te]).mean())
    clf = Classifier(config, params, k, accuracy, len(tr), len(te), time.perf_counter() - t0, None)
    if use_cache and not given:
        _save(clf, path)
        clf.path = os.fspath(path)
    log.info("Trained %s classifier: held-out accuracy %.4f", config.dataset, accuracy)
    return clf


def get_classifier(
    dataset: str = "digits",
    source_size: int | None = None,
    *,
    data_dir: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **overrides: Any,
) -> Classifier:
    """The default classifier of ``dataset`` at ``source_size`` (cached after the first call)."""
    return train_classifier(
        default_config(dataset, source_size, **overrides), data_dir=data_dir, cache_dir=cache_dir
    )


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# In-loop evaluator
# --------------------------------------------------------------------------------------------


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
      output: ``"tanh"`` (samples in [−1, 1]) or ``"sigmoid"`` ([0, 1], rescaled).
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
        output: str = "tanh",
        rule: CollapseRule = CollapseRule(),
        batch: int = 500,
    ):
        from lsgan_jax.models.latent import sample_latent  # noqa: PLC0415

        if num_samples < 6:
            raise ValueError(f"num_samples must be >= 6 (k-NN metrics), got {num_samples}.")
        self.classifier = classifier
        self.reference = reference
        self.num_samples = int(num_samples)
        self.rule = rule
        self.output = output
        self.batch = int(min(batch, num_samples))
        n_pad = -(-self.num_samples // self.batch) * self.batch
        self._z = np.asarray(
            sample_latent(jax.random.PRNGKey(seed), n_pad, int(latent_dim), latent_dist)
        )
        self.history: list[tuple[int, ClassifierMetrics]] = []
        self.last_samples: np.ndarray | None = None

    @property
    def last(self) -> ClassifierMetrics | None:
        return self.history[-1][1] if self.history else None

    def sample(self, generate: Callable[..., Any]) -> np.ndarray:
        """The evaluation samples ``(num_samples, S, S, C)`` in [−1, 1]."""
        out = []
        for start in range(0, len(self._z), self.batch):
            x = generate(self._z[start : start + self.batch], None)
            out.append(np.asarray(jax.device_get(x), np.float32))
        x = np.concatenate(out)[: self.num_samples]
        return x * 2.0 - 1.0 if self.output == "sigmoid" else x

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

    def annotate_summary(self, workdir: str, summary: dict) -> dict:
        """Adds ``eval_protocol`` (and the last class histogram) to ``workdir/summary.json``."""
        summary = dict(summary)
        summary["eval_protocol"] = self.protocol()
        if self.last is not None:
            summary["final_class_hist"] = self.last.as_dict()["class_hist"]
        path = os.path.join(workdir, "summary.json")
        if os.path.exists(path):
            with open(path, "w") as f:
                json.dump(summary, f, indent=2, default=str)
        return summary


def latent_of(config: Any) -> tuple[int, str]:
    """``(latent_dim, latent_dist)`` of an image config's generator (built abstractly)."""
    from flax import nnx  # noqa: PLC0415

    from lsgan_jax import models as models_lib  # noqa: PLC0415

    extra = {"num_classes": 10} if config.model.get("conditional", False) else {}
    g = nnx.eval_shape(
        lambda: models_lib.create(
            config.model.g, rngs=nnx.Rngs(0), **extra, **dict(config.model.g_kwargs)
        )
    )
    return int(g.latent_dim), str(g.latent_dist)


def make_digits_evaluator(
    num_samples: int = 1000,
    seed: int = 0,
    *,
    config: Any = None,
    dataset: str | None = None,
    image_size: int | None = None,
    latent_dim: int | None = None,
    latent_dist: str | None = None,
    rule: CollapseRule = CollapseRule(),
    data_dir: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **classifier_overrides: Any,
) -> ClassifierEvaluator:
    """An in-loop evaluator with the (cached) classifier of a digit dataset.

    Pass the experiment ``config`` (dataset, image size, output range and the generator's latent
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
    output = "tanh"
    if config is not None:
        dataset = dataset or config.data.name
        image_size = image_size or int(config.data.image_size)
        data_dir = data_dir or (config.data.get("data_dir", "") or None)
        output = config.model.get("output", "tanh")
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
        output=output,
        rule=rule,
    )
