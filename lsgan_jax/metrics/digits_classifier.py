"""An offline classifier for digit datasets (sklearn ``digits``, ``times_*``), trained once and cached.

Inception features mean little on 8×8 handwritten digits or Times-font glyphs, and the Inception
weights may not be on an offline machine. This module trains a small JAX classifier on the real
images once (seconds on a CPU) and caches it; :mod:`lsgan_jax.metrics.classifier_metrics`
measures generated samples with it and :mod:`lsgan_jax.evaluators.digits` runs those metrics in
the training loop.

Classifier. An MLP (ReLU; default hidden widths (128, 64), the last layer's activations are the
features) on images at the classifier's ``input_size``: the GAN's samples at the experiment
resolution (e.g. 32×32) are **area-averaged** down to ``input_size`` (8×8 for ``digits``, the
native resolution, an exact 4×4 box mean at 32 px; 14×14 for the 28×28 ``times_*`` sets); other
size ratios use the antialiased bilinear matrix of :func:`lsgan_jax.data.images.bilinear_matrix`.
The classifier is trained on the real images after the *same* path the GAN sees them through
(the pipeline's bilinear resize to the experiment resolution, then the area average), so real and
generated images are measured identically. Training: AdamW, minibatches with ±``jitter_px``
random shifts at input resolution, a stratified held-out split (``holdout`` = 20 %) whose accuracy
is reported with every result (``Classifier.accuracy``). The trained weights are cached as
``.npz`` under ``<cache>/classifiers/`` keyed by a hash of every setting
(:meth:`ClassifierConfig.key`), in :func:`lsgan_jax.cache.default_cache_dir` unless ``cache_dir``
is given.

References:
  Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016 (a classifier to score
  samples); Metz et al., "Unrolled GANs", ICLR 2017 and Srivastava et al., "VEEGAN", NeurIPS 2017
  (counting MNIST modes with a classifier).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lsgan_jax.cache import default_cache_dir
from lsgan_jax.metrics.image_metrics import FeatureSpace

log = logging.getLogger(__name__)

__all__ = [
    "Classifier",
    "ClassifierConfig",
    "area_downsample",
    "default_config",
    "get_classifier",
    "load_real_images",
    "train_classifier",
]

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
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
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
      cache_dir: Base cache directory (default :func:`lsgan_jax.cache.default_cache_dir`).
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
