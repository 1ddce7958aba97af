"""Image datasets for LSGAN: TFDS ``data_source`` (ArrayRecord) + grain, no TensorFlow at training.

Pipeline (per process; :func:`make_iterator`)::

    grain.MapDataset.range(steps)                     # step k = 0, 1, 2, … (forever by default)
      .map(step k → example indices of batch k        # process p of P: its slice of the split,
                    → read (TFDS ArrayRecord source, #   a fresh seeded permutation each epoch
                      or an in-memory copy for small sets)
                    → crop → bilinear resize → x / 127.5 − 1)
      .to_iter_dataset(grain.ReadOptions(num_threads, prefetch))  # in-process prefetch threads
    → {"image": float32 (B_local, S, S, C) in [−1, 1], "label": int32 (B_local,)}

The iterator is a ``grain.DatasetIterator``: ``get_state()``/``set_state()`` (state
``{"next_index": k}``, a few bytes) and orbax saves it with
``grain.checkpoint.CheckpointSave(it)`` / restores it with ``CheckpointRestore(it)``; resuming is
exact because batch ``k`` is a pure function of (dataset, seed, process, k).

**Why one map call per batch.** grain's per-example path (``source → shuffle → repeat → batch``)
costs ~50 µs per example in Python, ~30 of them in ``index_shuffle`` (measured here), which caps a
tiny-image pipeline near 20k images/s whatever the threads. Computing a batch's indices with one
vectorized permutation per epoch, reading them, and resizing the whole batch with two matrix
products removes that overhead. On 2 cores grain's multiprocessing (``mp_prefetch``) is slower
than in-process threads (``shared/research/install.md`` §4), so the default is in-process
prefetch with ``num_threads`` threads.

**Resize.** Bilinear with PIL's coefficients: half-pixel centres, edge taps renormalised, and
antialiased (triangle filter widened by the scale factor) when shrinking. Computed in float32,
either as ``W_y · X · W_xᵀ`` for the batch (small inputs) or with PIL in mode ``"F"`` per image
(large inputs, e.g. LSUN); both give the same numbers to ~1e−5. Pixels are never rounded after
resizing; ``x / 127.5 − 1`` maps 0..255 to [−1, 1] (the official LSGAN code's scaling).

**Crops** (``DatasetSpec.crop``):

* ``"none"`` — resize the full image to S×S (distorts non-square images; the official LSUN code,
  ``xudonmao/LSGAN`` ``convert_lsun.py``, did this with ``scipy.misc.imresize``).
* ``"square"`` — the largest centred square, then resize; the same as "resize the shorter side
  to S, then center-crop S×S" (up to rounding of the crop offset). Default for LSUN.
* ``"center:H[xW]"`` — a fixed centred H×W crop (offsets ``round((h − H) / 2)``, as
  carpedm20/DCGAN-tensorflow ``utils.center_crop``), then resize. CelebA uses ``center:108``: the
  108×108 centre of the 218×178 aligned faces (rows 55–162, columns 35–142), resized to 64×64 —
  the "CelebA-cropped 64×64" of DCGAN-tensorflow and of most GAN papers since.

**Preparing data.** ``digits`` (scikit-learn's bundled 8×8 digits) and ``folder:<path>`` prepare
themselves offline on first use. Catalog datasets (MNIST, CIFAR-10, CelebA, LSUN, …) need
TensorFlow and network once: ``pip install -e '.[tf]'`` then
``python -m lsgan_jax.data.prepare NAME --data_dir DIR`` (:func:`prepare`), which writes
ArrayRecord files; training then reads them without TensorFlow. An unprepared dataset raises
:class:`DatasetNotPreparedError` naming that command — it is never downloaded silently.

This module imports TFDS and grain lazily, so ``DATASETS`` and :func:`get_spec` are cheap.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import logging
import numbers
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import grain

log = logging.getLogger(__name__)

__all__ = [
    "CONDITIONAL_DATASET",
    "DATASETS",
    "DatasetNotPreparedError",
    "DatasetSpec",
    "ImageDatasetInfo",
    "ImageSource",
    "MissingDependencyError",
    "bilinear_matrix",
    "dataset_table",
    "default_data_dir",
    "get_spec",
    "load_source",
    "load_images",
    "local_batch_size",
    "make_iterator",
    "prepare",
    "resize_bilinear",
    "synthetic_batches",
]

#: Default image size of ``folder:<path>`` datasets when none is given.
DEFAULT_FOLDER_SIZE = 64
#: Default number of in-process prefetch threads.
DEFAULT_NUM_THREADS = max(1, min(4, os.cpu_count() or 1))
# Above this many multiply-adds per image channel (S·H·W) the dense-matrix resize loses to PIL's
# sparse filter (measured: 108²→64 matrix 0.3 ms/img vs PIL 0.7; 256²→112 matrix 12 vs PIL 1.5).
_DENSE_RESIZE_MAX_MACS = 1 << 21

PREPARE_CMD = "python -m lsgan_jax.data.prepare {name} --data_dir {data_dir}"
TF_INSTALL = "pip install -e '.[tf]'"


class DatasetNotPreparedError(FileNotFoundError):
    """The dataset has not been prepared (as ArrayRecord) in the data directory."""


class MissingDependencyError(ImportError):
    """An optional dependency (TensorFlow, for preparing catalog datasets) is not installed."""


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How to read and preprocess one dataset.

    Attributes:
      tfds_name: TFDS name (``"name"`` or ``"name/config"``).
      image_size: default training resolution S (square) — the paper's where it used the set.
      channels: C of the pipeline's output (1 or 3); sources are converted if stored otherwise.
      num_classes: label range; 1 for unlabelled datasets (every label is 0).
      crop: ``"none"``, ``"square"`` or ``"center:H[xW]"`` (see the module docstring).
      how_to_prepare: what to run once to make it readable.
      approx_disk: download size (from TFDS's checksum files) and prepared size (approximate).
      label_key: the TFDS feature holding the class, or ``None`` (unlabelled).
      transpose: swap H and W when reading (EMNIST is stored transposed).
      splits: the dataset's split names.
      train_examples: size of the ``train`` split.
      offline: prepares itself without TensorFlow or network.
      notes: anything a user should know.
    """

    tfds_name: str
    image_size: int
    channels: int
    num_classes: int
    crop: str
    how_to_prepare: str
    approx_disk: str
    label_key: str | None = "label"
    transpose: bool = False
    splits: tuple[str, ...] = ("train", "test")
    train_examples: int | None = None
    offline: bool = False
    notes: str = ""


def _catalog_prepare(name: str, extra: str = "") -> str:
    return (
        f"{TF_INSTALL}{extra}; then python -m lsgan_jax.data.prepare {name} --data_dir DIR "
        "(needs TensorFlow and network once; training then reads ArrayRecord without TF)."
    )


_LSUN_NOTE = (
    "112x112 as the ICCV paper. crop='square' (shorter side, then centre crop) keeps the aspect "
    "ratio; the official code (convert_lsun.py) resized the whole image to 112x112 instead — "
    "pass crop='none' to reproduce that. TFDS reads LSUN's LMDB with tensorflow-io, and the "
    "download server (dl.yf.io) is sometimes down."
)


def _lsun(scene: str, download: str, train_examples: int) -> DatasetSpec:
    return DatasetSpec(
        tfds_name=f"lsun/{scene}",
        image_size=112,
        channels=3,
        num_classes=1,
        crop="square",
        how_to_prepare=_catalog_prepare(f"lsun/{scene}", " tensorflow-io"),
        approx_disk=f"download {download}; prepared about the same (JPEG bytes are kept)",
        label_key=None,
        splits=("train", "validation"),
        train_examples=train_examples,
        notes=_LSUN_NOTE,
    )


#: The many-class handwritten set for the conditional study (stands in for HWDB1.0).
CONDITIONAL_DATASET = "emnist/byclass"

#: Registry of dataset names → :class:`DatasetSpec`. ``folder:<path>`` names are built on demand.
DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(
        tfds_name="lsgan_digits",
        image_size=32,
        channels=1,
        num_classes=10,
        crop="none",
        how_to_prepare="Nothing: prepared offline from scikit-learn on first use (0.5 s).",
        approx_disk="0.1 MB",
        splits=("train",),
        train_examples=1797,
        offline=True,
        notes="8x8 images (0..16 ink rescaled to 0..255), bilinearly upsampled to image_size.",
    ),
    **{
        f"times_{kind}": DatasetSpec(
            tfds_name=f"lsgan_times/{kind}",
            image_size=28,
            channels=1,
            num_classes=10,
            crop="none",
            how_to_prepare="Nothing: rendered offline with Pillow on first use (~5 s).",
            approx_disk="~3 MB",
            splits=("train",),
            train_examples=10000,
            offline=True,
            notes="TPAMI small-variance set re-created; see lsgan_jax.data.times_fonts.",
        )
        for kind in ("shift", "shift_rotate")
    },
    "mnist": DatasetSpec(
        tfds_name="mnist",
        image_size=28,
        channels=1,
        num_classes=10,
        crop="none",
        how_to_prepare=_catalog_prepare("mnist"),
        approx_disk="download 11 MB; prepared ~21 MB",
        train_examples=60000,
    ),
    "fashion_mnist": DatasetSpec(
        tfds_name="fashion_mnist",
        image_size=28,
        channels=1,
        num_classes=10,
        crop="none",
        how_to_prepare=_catalog_prepare("fashion_mnist"),
        approx_disk="download 30 MB; prepared ~36 MB",
        train_examples=60000,
    ),
    "cifar10": DatasetSpec(
        tfds_name="cifar10",
        image_size=32,
        channels=3,
        num_classes=10,
        crop="none",
        how_to_prepare=_catalog_prepare("cifar10"),
        approx_disk="download 170 MB; prepared ~132 MB",
        train_examples=50000,
    ),
    "celeb_a": DatasetSpec(
        tfds_name="celeb_a",
        image_size=64,
        channels=3,
        num_classes=1,
        crop="center:108",
        how_to_prepare=_catalog_prepare("celeb_a"),
        approx_disk="download 1.5 GB (Google Drive; may hit its quota); prepared ~1.4 GB",
        label_key=None,
        splits=("train", "validation", "test"),
        train_examples=162770,
        notes=(
            "218x178 aligned faces; 108x108 centre crop then 64x64 (carpedm20/DCGAN-tensorflow), "
            "the usual 'CelebA-cropped 64x64'. Attributes are not used as labels."
        ),
    ),
    "lsun/bedroom": _lsun("bedroom", "46 GB", 3033042),
    "lsun/kitchen": _lsun("kitchen", "36 GB", 2212277),
    "lsun/church_outdoor": _lsun("church_outdoor", "2.4 GB", 126227),
    "lsun/dining_room": _lsun("dining_room", "11.6 GB", 657571),
    "lsun/conference_room": _lsun("conference_room", "4.0 GB", 229069),
    "emnist/byclass": DatasetSpec(
        tfds_name="emnist/byclass",
        image_size=28,
        channels=1,
        num_classes=62,
        crop="none",
        how_to_prepare=_catalog_prepare("emnist/byclass"),
        approx_disk="download 560 MB (all EMNIST splits); prepared ~0.3 GB",
        transpose=True,
        train_examples=697932,
        notes=(
            "Stand-in for HWDB1.0 (3,740 Chinese characters, not in TFDS) in the conditional "
            "study: handwritten characters, 28x28 grayscale like the official train_chn.py, and "
            "~11k images per class on average (HWDB1.0: ~330), so a class-conditional LSGAN can "
            "learn every class. 62 classes (digits + upper + lower case) is the most of any "
            "densely sampled handwriting set in TFDS. Stored transposed; read upright here."
        ),
    ),
    "omniglot": DatasetSpec(
        tfds_name="omniglot",
        image_size=28,
        channels=1,
        num_classes=1623,
        crop="none",
        how_to_prepare=_catalog_prepare("omniglot"),
        approx_disk="download 19 MB; prepared ~20 MB",
        splits=("train", "test", "small1", "small2"),
        train_examples=19280,
        notes=(
            "Alternative many-class set: 1,623 handwritten characters of 50 alphabets (closest "
            "to HWDB1.0's class count) but only 20 images per class, 105x105 binary (stored RGB, "
            "read as grayscale, dark ink on white like HWDB). 'train' holds 964 characters and "
            "'test' the other 659: use split='train+test' for all 1,623."
        ),
    ),
}


def _folder_spec(path: str) -> DatasetSpec:
    return DatasetSpec(
        tfds_name="lsgan_folder_images",
        image_size=DEFAULT_FOLDER_SIZE,
        channels=3,
        num_classes=1,
        crop="none",  # the square crop happens once, when the folder is converted
        how_to_prepare=(
            "Nothing: converted offline on first use (center square crop, bilinear resize to "
            "image_size, PNG) and cached under data_dir keyed by path, size and file listing."
        ),
        approx_disk="about the PNG size of the images at image_size",
        splits=("train",),
        offline=True,
        notes=f"Images under {path}; label = index of the top-level subfolder (else 0).",
    )


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of a registered name or of ``folder:<path>``.

    Raises:
      ValueError: unknown name (the message lists close matches and all names).
    """
    if not isinstance(name, str):
        raise TypeError(f"Dataset name must be a str, got {type(name).__name__}.")
    if name.startswith("folder:"):
        path = name[len("folder:") :]
        if not path:
            raise ValueError("Write a folder dataset as 'folder:/path/to/images'.")
        return _folder_spec(path)
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(name, list(DATASETS), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown image dataset {name!r}.{hint} Known: {', '.join(DATASETS)}, or "
        "'folder:/path/to/images' for your own images."
    )


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageDatasetInfo:
    """What the trainer needs to know about a split.

    Attributes:
      name: registry name (or ``folder:<path>``).
      split: the TFDS split string.
      num_examples: examples in the split (``len(source)``).
      num_classes: label range (1 when unlabelled).
      image_shape: stored (H, W, C) after channel conversion; ``None`` for variable sizes.
      spec: the :class:`DatasetSpec`.
      data_dir: the data directory read.
      class_names: label names when TFDS knows them, else ``None``.
    """

    name: str
    split: str
    num_examples: int
    num_classes: int
    image_shape: tuple[int | None, int | None, int]
    spec: DatasetSpec
    data_dir: str
    class_names: tuple[str, ...] | None = None

    @property
    def channels(self) -> int:
        return self.image_shape[-1]


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    have = image.shape[-1]
    if have == channels:
        return image
    if have == 3 and channels == 1:  # ITU-R 601-2 luma, as PIL's convert("L")
        luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    if have == 1 and channels == 3:
        return np.repeat(image, 3, axis=-1)
    if have == 4 and channels == 3:
        return image[..., :3]
    raise ValueError(f"Cannot convert a {have}-channel image to {channels} channels.")


class ImageSource(Sequence):
    """Random-access view of a TFDS data source as ``{"image": uint8 HWC, "label": int}``.

    Picks the image and label features, reads EMNIST upright, converts channels (e.g. Omniglot's
    RGB to grayscale) and gives unlabelled datasets label 0. Thread-safe, picklable (grain
    workers), no TensorFlow.

    Args:
      source: anything with ``__len__`` and ``__getitem__`` returning feature dicts.
      spec: the dataset's :class:`DatasetSpec`.
      info: filled in by :func:`load_source`.
    """

    def __init__(self, source: Any, spec: DatasetSpec, info: ImageDatasetInfo | None = None):
        self._source = source
        self.spec = spec
        self.info = info

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        record = self._source[index]
        image = np.asarray(record["image"])
        if image.ndim == 2:
            image = image[..., None]
        if self.spec.transpose:
            image = np.swapaxes(image, 0, 1)
        image = _to_channels(image, self.spec.channels)
        label = int(record[self.spec.label_key]) if self.spec.label_key else 0
        return {"image": image, "label": label}

    def __repr__(self) -> str:
        return f"ImageSource({self.spec.tfds_name!r}, len={len(self)})"


def default_data_dir(data_dir: str | None = None) -> str:
    """``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets`` (TFDS's default)."""
    path = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _tfds():
    import tensorflow_datasets as tfds  # noqa: PLC0415  (lazy: importing the package stays light)

    return tfds


def _tfds_is_mocked() -> bool:
    """True inside ``tfds.testing.mock_data`` (which fakes the data dir and the sources)."""
    fn = _tfds().core.DatasetBuilder.download_and_prepare
    return getattr(fn, "__qualname__", "") != "DatasetBuilder.download_and_prepare"


def _not_prepared(name: str, spec: DatasetSpec, data_dir: str, builder: Any) -> Exception:
    return DatasetNotPreparedError(
        f"Dataset {name!r} (TFDS {spec.tfds_name!r}) is not prepared in data_dir {data_dir!r} "
        f"(looked for {os.fspath(builder.data_path)}). Prepare it once — this needs TensorFlow "
        f"and network:\n  {TF_INSTALL}\n  {PREPARE_CMD.format(name=name, data_dir=data_dir)}\n"
        f"({spec.how_to_prepare}) Or pass data_dir=... (or set $TFDS_DATA_DIR) to where it is "
        "already prepared in the ArrayRecord format."
    )


def _check_array_record(name: str, builder: Any, data_dir: str) -> None:
    tfds = _tfds()
    formats = builder.info.available_file_formats()
    if tfds.core.file_adapters.FileFormat.ARRAY_RECORD not in formats:
        found = ", ".join(sorted(f.value for f in formats)) or "unknown"
        raise DatasetNotPreparedError(
            f"Dataset {name!r} in {os.fspath(builder.data_path)} is prepared as {found}, which "
            "needs TensorFlow to read; training reads ArrayRecord. Re-prepare it as ArrayRecord "
            f"into another data_dir (or delete that folder first):\n  {TF_INSTALL}\n  "
            f"{PREPARE_CMD.format(name=name, data_dir='NEW_DATA_DIR')}"
        )


def _builder(
    name: str, spec: DatasetSpec, data_dir: str, *, image_size: int | None, auto_prepare: bool
) -> Any:
    """The TFDS builder of ``name``; offline builders are prepared here when missing."""
    tfds = _tfds()
    if spec.tfds_name == "lsgan_digits":
        from lsgan_jax.data import builders  # noqa: PLC0415

        builder = builders.LsganDigits(data_dir=data_dir)
    elif spec.tfds_name.startswith("lsgan_times/"):
        from lsgan_jax.data import times_fonts  # noqa: PLC0415

        builder = times_fonts.times_builder(spec.tfds_name.split("/", 1)[1], data_dir=data_dir)
    elif spec.tfds_name == "lsgan_folder_images":
        from lsgan_jax.data import builders  # noqa: PLC0415

        size = DEFAULT_FOLDER_SIZE if image_size is None else image_size
        builder = builders.folder_builder(
            name[len("folder:") :], image_size=size, data_dir=data_dir, channels=spec.channels
        )
    else:
        builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if _tfds_is_mocked():
        return builder
    if not builder.is_prepared():
        if not (spec.offline and auto_prepare):
            raise _not_prepared(name, spec, data_dir, builder)
        builder.download_and_prepare()
    _check_array_record(name, builder, data_dir)
    return builder


def load_source(
    name: str,
    *,
    split: str = "train",
    data_dir: str | None = None,
    image_size: int | None = None,
) -> tuple[ImageSource, ImageDatasetInfo]:
    """A random-access source of ``{"image": uint8 HWC, "label": int}`` and its info.

    Reads the prepared ArrayRecord files through ``builder.as_data_source`` (no TensorFlow).
    ``digits`` and ``folder:<path>`` are prepared here on first use; a catalog dataset that is
    not prepared raises :class:`DatasetNotPreparedError` — it is never downloaded silently.

    Args:
      name: a key of :data:`DATASETS` or ``"folder:/path/to/images"``.
      split: a TFDS split string (``"train"``, ``"test"``, ``"train[:10%]"``, ``"train+test"``).
      data_dir: TFDS data directory; default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.
      image_size: only for ``folder:`` datasets — the size they are converted to (default 64).

    Returns:
      ``(source, info)``; the source's images are at their stored size (crop and resize happen
      in :func:`make_iterator`).

    Raises:
      ValueError: unknown name or split.
      DatasetNotPreparedError: a catalog dataset not prepared (as ArrayRecord) in ``data_dir``.
    """
    spec = get_spec(name)
    data_dir = default_data_dir(data_dir)
    builder = _builder(name, spec, data_dir, image_size=image_size, auto_prepare=True)
    try:
        tfds_source = builder.as_data_source(split=split)
    except (ValueError, KeyError, AssertionError) as err:
        known = ", ".join(spec.splits)
        raise ValueError(
            f"Cannot read split {split!r} of {name!r}: {err}. Splits: {known} (slicing like "
            "'train[:10%]' and unions like 'train+test' work too)."
        ) from None
    features = builder.info.features
    shape = tuple(features["image"].shape)
    if spec.transpose:
        shape = (shape[1], shape[0], *shape[2:])
    image_shape = (shape[0], shape[1], spec.channels)
    class_names = None
    num_classes = 1
    if spec.label_key is not None:
        label_feature = features[spec.label_key]
        num_classes = int(label_feature.num_classes)
        names = getattr(label_feature, "names", None)
        class_names = tuple(names) if names else None
    info = ImageDatasetInfo(
        name=name,
        split=split,
        num_examples=len(tfds_source),
        num_classes=num_classes,
        image_shape=image_shape,
        spec=spec,
        data_dir=data_dir,
        class_names=class_names,
    )
    return ImageSource(tfds_source, spec, info), info


# --------------------------------------------------------------------------------------------
# Resize and crop
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The ``(out_size, in_size)`` matrix of PIL's bilinear resampling along one axis.

    Output pixel ``o`` has centre ``c = (o + ½)·s`` in input coordinates, ``s = in/out``; its
    weights are the triangle filter ``max(0, 1 − |x + ½ − c| / f)`` over input pixels ``x``, with
    ``f = max(s, 1)`` (widened when shrinking: antialiasing), renormalised to sum to 1 (so the
    edges clamp). This is PIL's ``ImagingResample`` with ``Image.BILINEAR``.

    Returns:
      float32 array, read-only (it is cached).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"Sizes must be positive, got in={in_size}, out={out_size}.")
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filterscale  # the bilinear filter has support 1
    matrix = np.zeros((out_size, in_size), np.float64)
    for o in range(out_size):
        center = (o + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        x = np.arange(lo, hi)
        w = np.maximum(0.0, 1.0 - np.abs((x - center + 0.5) / filterscale))
        matrix[o, lo:hi] = w / w.sum()
    matrix = matrix.astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def _crop_box(height: int, width: int, crop: str) -> tuple[int, int, int, int]:
    """``(top, left, crop_h, crop_w)`` of ``crop`` in an ``height``×``width`` image."""
    if crop == "none":
        return 0, 0, height, width
    if crop == "square":
        side = min(height, width)
        return (height - side) // 2, (width - side) // 2, side, side
    ch, cw = _parse_center(crop)
    if ch > height or cw > width:
        raise ValueError(f"crop {crop!r} is larger than the {height}x{width} image.")
    return int(round((height - ch) / 2.0)), int(round((width - cw) / 2.0)), ch, cw


def _parse_center(crop: str) -> tuple[int, int]:
    try:
        dims = crop[len("center:") :].lower().split("x")
        ch, cw = (int(dims[0]), int(dims[-1])) if len(dims) in (1, 2) else (0, 0)
    except ValueError:
        ch = cw = 0
    if not crop.startswith("center:") or ch < 1 or cw < 1:
        raise ValueError(
            f"Unknown crop {crop!r}: use 'none', 'square' or 'center:H' / 'center:HxW'."
        )
    return ch, cw


def _check_crop(crop: str) -> str:
    if crop not in ("none", "square"):
        _parse_center(crop)
    return crop


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Resizes a batch ``(B, H, W, C)`` (any real dtype) to ``(B, size, size, C)`` float32.

    PIL's bilinear filter (see :func:`bilinear_matrix`) without intermediate rounding: the two
    matrix products for small inputs, PIL in mode ``"F"`` per image and channel for large ones.
    """
    b, h, w, c = images.shape
    if (h, w) == (size, size):
        return images.astype(np.float32)
    if size * h * w <= _DENSE_RESIZE_MAX_MACS:
        x = np.moveaxis(images, -1, 1).astype(np.float32)  # (B, C, H, W)
        y = bilinear_matrix(h, size) @ x @ bilinear_matrix(w, size).T
        return np.ascontiguousarray(np.moveaxis(y, 1, -1))
    from PIL import Image  # noqa: PLC0415

    out = np.empty((b, size, size, c), np.float32)
    for i in range(b):
        for k in range(c):
            plane = Image.fromarray(np.ascontiguousarray(images[i, :, :, k], np.float32))
            out[i, :, :, k] = np.asarray(plane.resize((size, size), Image.Resampling.BILINEAR))
    return out


def _preprocess(images: np.ndarray | Sequence[np.ndarray], size: int, crop: str) -> np.ndarray:
    """Crops, resizes and scales uint8 images to float32 ``(B, size, size, C)`` in [−1, 1].

    ``images`` is a ``(B, H, W, C)`` array or a list of ``(H, W, C)`` arrays of any sizes.
    """
    if isinstance(images, np.ndarray):
        top, left, ch, cw = _crop_box(images.shape[1], images.shape[2], crop)
        out = resize_bilinear(images[:, top : top + ch, left : left + cw], size)
    else:
        cropped = []
        for image in images:
            top, left, ch, cw = _crop_box(image.shape[0], image.shape[1], crop)
            cropped.append(image[top : top + ch, left : left + cw])
        shapes = {im.shape for im in cropped}
        if len(shapes) == 1:
            out = resize_bilinear(np.stack(cropped), size)
        else:  # variable sizes (e.g. LSUN with crop="none"): one resize per shape
            out = np.empty((len(cropped), size, size, cropped[0].shape[-1]), np.float32)
            for shape in shapes:
                idx = [i for i, im in enumerate(cropped) if im.shape == shape]
                out[idx] = resize_bilinear(np.stack([cropped[i] for i in idx]), size)
    out *= 1.0 / 127.5
    out -= 1.0
    return np.clip(out, -1.0, 1.0, out=out)


def load_images(
    name: str,
    *,
    size: int,
    split: str = "train",
    data_dir: str | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray, ImageDatasetInfo]:
    """The first ``limit`` (default: all) images of a split, as the training pipeline makes them.

    ``uint8 → crop → bilinear resize to size → x / 127.5 − 1`` (the preprocessing of
    :func:`make_iterator`), read through :func:`load_source` in index order: the real side of
    evaluation metrics.

    Returns:
      ``(images float32 (N, size, size, C) in [−1, 1], labels int32 (N,), info)``.
    """
    source, info = load_source(name, split=split, data_dir=data_dir)
    n = len(source) if limit is None else min(int(limit), len(source))
    raw = [source[i] for i in range(n)]
    x = [np.asarray(r["image"]) for r in raw]
    labels = np.asarray([int(r["label"]) for r in raw], np.int32)
    x = _preprocess(np.stack(x) if len({a.shape for a in x}) == 1 else x, size, info.spec.crop)
    return x, labels, info


def _as_hwc(image: Any) -> np.ndarray:
    image = np.asarray(image)
    return image[..., None] if image.ndim == 2 else image


class _MemorySource:
    """Examples ``[start, stop)`` of a source read once into uint8 arrays (small datasets).

    Reading through TFDS costs ~70–200 µs per example (ArrayRecord read + proto parsing), which
    dominates for tiny images; gathering from memory is ~100x faster.
    """

    def __init__(self, source: Any, start: int, stop: int):
        first = _as_hwc(source[start]["image"])
        log.info("Reading %d examples of %s into memory.", stop - start, first.shape)
        self.start = start
        self.images = np.empty((stop - start, *first.shape), np.uint8)
        self.labels = np.empty((stop - start,), np.int32)
        for i in range(start, stop):
            record = source[i]
            image = _as_hwc(record["image"])
            if image.shape != first.shape:
                raise ValueError(
                    f"cache=True needs images of one shape; got {first.shape} and {image.shape}."
                )
            self.images[i - start] = image
            self.labels[i - start] = int(record.get("label", 0))

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        local = np.asarray(indices, np.int64) - self.start
        return self.images[local], self.labels[local]


#: ``cache=None`` reads a split into memory when its shard is at most this many bytes.
AUTO_CACHE_BYTES = 256 << 20


def _auto_cache(source: Any, num_examples: int) -> bool:
    info = getattr(source, "info", None)
    if not isinstance(info, ImageDatasetInfo) or None in info.image_shape:
        return False
    return num_examples * int(np.prod(info.image_shape)) <= AUTO_CACHE_BYTES


class _BatchIndices:
    """Step ``k`` → the example indices of batch ``k``: a pure function of (seed, k).

    Positions ``k·B … k·B + B − 1`` of an endless stream over this process's ``n`` examples; in
    epoch ``e`` the stream visits them in the order of a fresh permutation seeded by
    ``(seed, process, e)``. Vectorized (grain's per-example ``index_shuffle`` costs ~30 µs/example, which
    alone capped tiny-image pipelines at ~20k images/s), and it keeps grain's iterator state to
    one number, the step.
    """

    def __init__(
        self,
        start: int,
        stop: int,
        batch: int,
        *,
        seed: int,
        process_index: int,
        shuffle: bool,
        total: int | None,
    ):
        self.start, self.n, self.batch = start, stop - start, batch
        self.seed, self.process_index = seed, process_index
        self.shuffle, self.total = shuffle, total

        self._perms: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # picklable for grain worker processes
        state = dict(self.__dict__)
        state["_perms"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _permutation(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:  # two threads may both compute it: same result, harmless
            rng = np.random.default_rng([self.seed, self.process_index, epoch])
            perm = rng.permutation(self.n).astype(np.int32 if self.n < 2**31 else np.int64)
            with self._lock:
                self._perms[epoch] = perm
                for old in sorted(self._perms)[:-3]:  # keep the newest three epochs
                    del self._perms[old]
        return perm

    def __call__(self, step: int) -> np.ndarray:
        stop = (step + 1) * self.batch
        if self.total is not None:
            stop = min(stop, self.total)
        epoch, pos = np.divmod(np.arange(step * self.batch, stop, dtype=np.int64), self.n)
        if self.shuffle:
            for e in np.unique(epoch):
                sel = epoch == e
                pos[sel] = self._permutation(int(e))[pos[sel]]
        return self.start + pos


class _BatchLoader:
    """grain map: a step → its preprocessed batch (picklable, thread-safe)."""

    def __init__(self, indices: _BatchIndices, source: Any, image_size: int, crop: str):
        self.indices = indices
        self.source = source
        self.image_size = image_size
        self.crop = crop

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        indices = self.indices(int(step))
        if isinstance(self.source, _MemorySource):
            images, labels = self.source.gather(indices)
        else:
            records = [self.source[int(i)] for i in indices]
            images = [_as_hwc(r["image"]) for r in records]
            labels = np.fromiter((int(r.get("label", 0)) for r in records), np.int32, len(records))
        return {"image": _preprocess(images, self.image_size, self.crop), "label": labels}


# --------------------------------------------------------------------------------------------
# Iterators
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return int(value)


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax  # noqa: PLC0415

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    process_count = _check_int("process_count", process_count, minimum=1)
    process_index = _check_int("process_index", process_index, minimum=0)
    if process_index >= process_count:
        raise ValueError(f"process_index={process_index} must be < process_count={process_count}.")
    return process_index, process_count


def local_batch_size(global_batch: int, process_count: int) -> int:
    """``global_batch // process_count``; ``ValueError`` unless it divides evenly."""
    global_batch = _check_int("global_batch", global_batch, minimum=1)
    if global_batch % process_count:
        raise ValueError(
            f"global_batch={global_batch} is not divisible by process_count={process_count}: "
            "every process loads global_batch // process_count examples per step. Use a "
            f"multiple of {process_count} (e.g. {max(1, global_batch // process_count)} x "
            f"{process_count} = {max(1, global_batch // process_count) * process_count})."
        )
    return global_batch // process_count


def _seed_entropy(seed: Any) -> int:
    """Any int as SeedSequence entropy (non-negative, 64 bits); SeedSequence hashes it, so
    nearby seeds give unrelated streams."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    return int(seed) % (1 << 64)


def make_iterator(
    name_or_source: str | Sequence[Mapping[str, Any]],
    *,
    global_batch: int,
    image_size: int,
    seed: int,
    split: str = "train",
    data_dir: str | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    shuffle: bool = True,
    drop_remainder: bool = True,
    num_threads: int = DEFAULT_NUM_THREADS,
    prefetch: int | None = None,
    num_epochs: int | None = None,
    crop: str | None = None,
    cache: bool | None = None,
) -> grain.DatasetIterator:
    """A checkpointable iterator of this process's batches, repeating forever by default.

    Process ``p`` of ``P`` reads the contiguous slice ``[p·N/P, (p+1)·N/P)`` of the split's
    ``N`` examples (disjoint, covering the split; with finite ``num_epochs`` and
    ``drop_remainder`` every slice has ``N // P`` examples so all processes yield the same number
    of batches), shuffles it with a new permutation each epoch, and yields
    ``global_batch // P`` examples per batch. Batches cross epoch boundaries when repeating.

    Args:
      name_or_source: a dataset name (see :func:`get_spec`) or any random-access source of
        ``{"image": uint8 HWC, "label": int}`` (e.g. from :func:`load_source`, or a list).
      global_batch: examples per step over all processes.
      image_size: output size S.
      seed: shuffle seed (any int); the same seed gives the same batches.
      split: TFDS split string.
      data_dir: TFDS data directory (see :func:`default_data_dir`).
      process_index: this process; default ``jax.process_index()``.
      process_count: number of processes; default ``jax.process_count()``.
      shuffle: shuffle the examples (each epoch differently).
      drop_remainder: drop a last partial batch (only matters with finite ``num_epochs``).
      num_threads: in-process prefetch threads (0: load synchronously in ``next``).
      prefetch: batches to read ahead; default ``max(4, 2 · num_threads)``.
      num_epochs: ``None`` repeats forever; an int stops after that many passes.
      crop: override the dataset's crop (``"none"``, ``"square"``, ``"center:H[xW]"``); default
        the spec's, or ``"square"`` for a raw source.
      cache: read this process's examples into memory once (uint8, same-shape images only)
        instead of through TFDS at every step; ``None`` caches fixed-shape datasets whose
        shard is at most :data:`AUTO_CACHE_BYTES` (digits, MNIST, Fashion-MNIST, CIFAR-10,
        Omniglot, small folders: a few seconds at start, then 10-50x the throughput). Same
        batches either way.

    Returns:
      A ``grain.DatasetIterator`` of ``{"image": float32 (B_local, S, S, C) in [−1, 1],
      "label": int32 (B_local,)}`` with ``get_state()``/``set_state()``; save it with
      ``grain.checkpoint.CheckpointSave(it)`` in an orbax ``Composite``.

    Raises:
      ValueError: bad batch/process/size arguments, unknown dataset, split or crop.
      DatasetNotPreparedError: the dataset is not prepared (message says how).
    """
    import grain  # noqa: PLC0415

    process_index, process_count = _processes(process_index, process_count)
    batch = local_batch_size(global_batch, process_count)
    image_size = _check_int("image_size", image_size, minimum=1)
    num_threads = _check_int("num_threads", num_threads, minimum=0)
    prefetch = max(4, 2 * num_threads) if prefetch is None else prefetch
    prefetch = _check_int("prefetch", prefetch, minimum=1)
    if num_epochs is not None:
        num_epochs = _check_int("num_epochs", num_epochs, minimum=1)
    seed = _seed_entropy(seed)

    if isinstance(name_or_source, str):
        source, _ = load_source(
            name_or_source, split=split, data_dir=data_dir, image_size=image_size
        )
        crop = source.spec.crop if crop is None else crop
    else:
        source = name_or_source
        spec = getattr(source, "spec", None)
        crop = (spec.crop if isinstance(spec, DatasetSpec) else "square") if crop is None else crop
    crop = _check_crop(crop)

    n = len(source)
    if n < process_count:
        raise ValueError(f"The split has {n} examples, fewer than process_count={process_count}.")
    if num_epochs is not None and drop_remainder:
        per = n // process_count
        start, stop = process_index * per, (process_index + 1) * per
    else:
        start, stop = process_index * n // process_count, (process_index + 1) * n // process_count
    if num_epochs is not None and drop_remainder and (stop - start) * num_epochs < batch:
        raise ValueError(
            f"{stop - start} examples x {num_epochs} epochs per process make no full batch of "
            f"{batch}; lower global_batch, raise num_epochs or pass drop_remainder=False."
        )

    if cache is None:
        cache = _auto_cache(source, stop - start)
    loader_source = _MemorySource(source, start, stop) if cache else source

    if num_epochs is None:
        total, num_batches = None, sys.maxsize
    else:
        total = (stop - start) * num_epochs
        num_batches = total // batch if drop_remainder else -(-total // batch)
    indices = _BatchIndices(
        start, stop, batch, seed=seed, process_index=process_index, shuffle=shuffle, total=total
    )
    ds = grain.MapDataset.range(num_batches).map(
        _BatchLoader(indices, loader_source, image_size, crop)
    )
    read = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    return iter(ds.to_iter_dataset(read))


class _SyntheticPool:
    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self.batches = batches

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        return self.batches[i]


def synthetic_batches(
    global_batch: int,
    image_size: int,
    channels: int,
    num_classes: int,
    seed: int,
    *,
    process_count: int | None = None,
    num_distinct: int = 4,
) -> grain.DatasetIterator:
    """An infinite iterator of random batches shaped like :func:`make_iterator`'s.

    For "does the input pipeline keep up" benchmarks: it costs next to nothing per batch because
    it cycles through ``num_distinct`` precomputed batches (read-only arrays) — images uniform in
    [−1, 1], labels uniform in ``[0, num_classes)``. Also a checkpointable
    ``grain.DatasetIterator``, so a trainer can treat it like the real one.

    Args:
      global_batch: examples per step over all processes (divided by ``process_count``).
      image_size: S.
      channels: C.
      num_classes: label range (1 for unconditional).
      seed: any int.
      process_count: default ``jax.process_count()``.
      num_distinct: how many different batches to cycle through.
    """
    import grain  # noqa: PLC0415

    _, process_count = _processes(0, process_count)
    batch = local_batch_size(global_batch, process_count)
    image_size = _check_int("image_size", image_size, minimum=1)
    channels = _check_int("channels", channels, minimum=1)
    num_classes = _check_int("num_classes", num_classes, minimum=1)
    num_distinct = _check_int("num_distinct", num_distinct, minimum=1)
    rng = np.random.default_rng(_seed_entropy(seed))
    pool = []
    for _ in range(num_distinct):
        image = rng.uniform(-1.0, 1.0, (batch, image_size, image_size, channels)).astype(np.float32)
        label = rng.integers(0, num_classes, (batch,), dtype=np.int32)
        image.flags.writeable = False
        label.flags.writeable = False
        pool.append({"image": image, "label": label})
    ds = grain.MapDataset.range(num_distinct).repeat().map(_SyntheticPool(pool))
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=1)))


# --------------------------------------------------------------------------------------------
# Preparing
# --------------------------------------------------------------------------------------------


def _missing_modules(spec: DatasetSpec) -> list[tuple[str, str]]:
    """(module, pip name) pairs that preparing ``spec`` needs but are not installed."""
    needed = [("tensorflow", "tensorflow-cpu"), ("importlib_resources", "importlib-resources")]
    if spec.tfds_name.startswith("lsun/"):
        needed.append(("tensorflow_io", "tensorflow-io"))
    return [(mod, pip) for mod, pip in needed if importlib.util.find_spec(mod) is None]


def prepare(name: str, data_dir: str | None = None, *, image_size: int | None = None) -> str:
    """Downloads and prepares ``name`` as ArrayRecord in ``data_dir`` (once per dataset).

    ``digits`` and ``folder:<path>`` prepare offline without TensorFlow. Catalog datasets call
    ``tfds.builder(name, data_dir=..., file_format="array_record").download_and_prepare()``,
    which needs TensorFlow (the optional extra ``pip install -e '.[tf]'``) and network. Training
    afterwards reads the files without TensorFlow.

    Args:
      name: a key of :data:`DATASETS` or ``folder:<path>``.
      data_dir: TFDS data directory (see :func:`default_data_dir`).
      image_size: only for ``folder:`` datasets (default 64).

    Returns:
      The prepared dataset's directory.

    Raises:
      MissingDependencyError: TensorFlow (or another preparing-only package) is not installed;
        the message says what to ``pip install``.
      DatasetNotPreparedError: already prepared there, but not as ArrayRecord.
    """
    spec = get_spec(name)
    data_dir = default_data_dir(data_dir)
    if spec.offline:
        builder = _builder(name, spec, data_dir, image_size=image_size, auto_prepare=True)
        return os.fspath(builder.data_path)
    missing = _missing_modules(spec)
    if missing:
        mods = ", ".join(mod for mod, _ in missing)
        extra = [pip for mod, pip in missing if mod != "tensorflow"]
        cmd = TF_INSTALL + (" " + " ".join(extra) if extra else "")
        raise MissingDependencyError(
            f"Preparing {name!r} needs {mods}, which {'is' if len(missing) == 1 else 'are'} not "
            f"installed. TensorFlow is only needed to prepare catalog datasets once; install the "
            f"optional extra:\n  {cmd}\nthen run:\n  "
            f"{PREPARE_CMD.format(name=name, data_dir=data_dir)}"
        )
    tfds = _tfds()
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
        _check_array_record(name, builder, data_dir)
        return os.fspath(builder.data_path)
    builder.download_and_prepare()
    return os.fspath(builder.data_path)


def dataset_table() -> str:
    """The registry as a Markdown table (name, size, classes, crop, disk, how to prepare)."""
    rows = [
        "| name | resolution | classes | crop | train examples | disk | how to prepare |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in DATASETS.items():
        rows.append(
            f"| `{name}` | {s.image_size}x{s.image_size}x{s.channels} | {s.num_classes} | "
            f"{s.crop} | {s.train_examples or '?'} | {s.approx_disk} | {s.how_to_prepare} |"
        )
    rows.append(
        f"| `folder:<path>` | {DEFAULT_FOLDER_SIZE}x{DEFAULT_FOLDER_SIZE}x3 (any) | "
        "subfolders | square | files | PNG | automatic, offline |"
    )
    return "\n".join(rows)
