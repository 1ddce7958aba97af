"""Reading prepared image datasets: TFDS ``data_source`` over ArrayRecord, no TensorFlow.

:func:`load_source` gives a random-access :class:`ImageSource` of ``{"image": uint8 HWC,
"label": int}`` for a catalog name (:mod:`lsgan_jax.data.catalog`) or ``folder:<path>``; the
offline builders (``digits``, the Times sets, folders) are prepared here on first use, and a
catalog dataset that is not prepared raises :class:`DatasetNotPreparedError` naming the command —
it is never downloaded silently. :func:`load_images` reads a split the way the training
pipeline preprocesses it (the real side of evaluation metrics).

Needs the ``[data]`` extra (tensorflow-datasets, array-record); imported lazily.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from lsgan_jax.data.catalog import (
    DEFAULT_FOLDER_SIZE,
    LSUN_INSTALL,
    PREPARE_CMD,
    TF_INSTALL,
    DatasetNotPreparedError,
    DatasetSpec,
    get_spec,
)
from lsgan_jax.data.resize import preprocess

__all__ = [
    "ImageDatasetInfo",
    "ImageSource",
    "check_array_record",
    "default_data_dir",
    "get_builder",
    "load_images",
    "load_source",
    "tfds_module",
]


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
    """``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets`` (TFDS's default).

    Local paths are made absolute; URLs such as ``gs://bucket/tensorflow_datasets`` (read by
    TFDS through ``etils.epath``) are returned unchanged.
    """
    path = os.fspath(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")
    if "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def tfds_module():
    """``tensorflow_datasets``, imported on first use (the ``[data]`` extra)."""
    from lsgan_jax._extras import require  # noqa: PLC0415

    return require("tensorflow_datasets", "data", purpose="reading image datasets")


def _tfds_is_mocked() -> bool:
    """True inside ``tfds.testing.mock_data`` (which fakes the data dir and the sources)."""
    fn = tfds_module().core.DatasetBuilder.download_and_prepare
    return getattr(fn, "__qualname__", "") != "DatasetBuilder.download_and_prepare"


def _install(spec: DatasetSpec) -> str:
    return LSUN_INSTALL if spec.tfds_name.startswith("lsun/") else TF_INSTALL


def _not_prepared(name: str, spec: DatasetSpec, data_dir: str, builder: Any) -> Exception:
    return DatasetNotPreparedError(
        f"Dataset {name!r} (TFDS {spec.tfds_name!r}) is not prepared in data_dir {data_dir!r} "
        f"(looked for {os.fspath(builder.data_path)}). Prepare it once — this needs TensorFlow "
        f"and network:\n  {_install(spec)}\n  {PREPARE_CMD.format(name=name, data_dir=data_dir)}\n"
        f"({spec.how_to_prepare}) Or pass data_dir=... (or set $TFDS_DATA_DIR) to where it is "
        "already prepared in the ArrayRecord format."
    )


def check_array_record(name: str, builder: Any, data_dir: str) -> None:
    """Raises :class:`DatasetNotPreparedError` unless ``builder`` is prepared as ArrayRecord."""
    tfds = tfds_module()
    formats = builder.info.available_file_formats()
    if tfds.core.file_adapters.FileFormat.ARRAY_RECORD not in formats:
        found = ", ".join(sorted(f.value for f in formats)) or "unknown"
        raise DatasetNotPreparedError(
            f"Dataset {name!r} in {os.fspath(builder.data_path)} is prepared as {found}, which "
            "needs TensorFlow to read; training reads ArrayRecord. Re-prepare it as ArrayRecord "
            f"into another data_dir (or delete that folder first):\n  {TF_INSTALL}\n  "
            f"{PREPARE_CMD.format(name=name, data_dir='NEW_DATA_DIR')}"
        )


def get_builder(
    name: str, spec: DatasetSpec, data_dir: str, *, image_size: int | None, auto_prepare: bool
) -> Any:
    """The TFDS builder of ``name``; offline builders are prepared here when missing."""
    tfds = tfds_module()
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
    check_array_record(name, builder, data_dir)
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
    builder = get_builder(name, spec, data_dir, image_size=image_size, auto_prepare=True)
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
    x = preprocess(np.stack(x) if len({a.shape for a in x}) == 1 else x, size, info.spec.crop)
    return x, labels, info
