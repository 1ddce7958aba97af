"""TFDS builders that prepare offline, without TensorFlow: sklearn digits and image folders.

Both builders write ArrayRecord files (the format ``tfds.data_source`` reads with random access and
without TensorFlow), so :mod:`lsgan_jax.data.images` reads them exactly like a prepared TFDS
catalog dataset. Two TFDS-without-TF rules shape the code (``docs/data.md``):

* ``file_format="array_record"`` is the default of each builder's ``__init__``: TFDS's default
  (TFRecord) needs TensorFlow to finalize a split, and ``tfds.data_source`` on an unprepared
  builder would otherwise auto-prepare as TFRecord and fail deep inside TFDS.
* ``_info`` returns ``tfds.core.DatasetInfo(builder=self, ...)`` directly;
  ``dataset_info_from_configs`` looks for package metadata files this module does not ship.
  Images are stored as ``tfds.features.Tensor`` (raw uint8) or as ``tfds.features.Image`` fed
  **PIL images** (TFDS encodes numpy arrays with ``tf.image.encode_png``, which needs TF).

Builders:

* :class:`LsganDigits` (registered as ``lsgan_digits``): scikit-learn's bundled 8×8 handwritten
  digits (1,797 images, 10 classes; the UCI "Optical Recognition of Handwritten Digits" test set),
  stored as uint8 ``(8, 8, 1)`` with the 0..16 ink counts rescaled to 0..255 (white digit on
  black, like MNIST). The image pipeline resizes them to the configured size.
* :class:`LsganFolderImages` (registered as ``lsgan_folder_images``): a folder of the user's
  images (jpg/png/…, recursive), center-cropped to a square and resized once to ``image_size``
  and stored as PNG. One builder config per (absolute path, size, channels, file listing), so the
  cache under ``data_dir/lsgan_folder_images/<config>/`` is rebuilt whenever the folder changes.

Importing this module imports ``tensorflow_datasets`` (not TensorFlow). The image pipeline imports
it lazily.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from lsgan_jax._extras import require

tfds = require("tensorflow_datasets", "data", purpose="lsgan_jax.data.builders")
from etils import epath  # noqa: E402  (a dependency of tensorflow-datasets)

log = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "OfflineBuilderMixin",
    "FolderConfig",
    "LsganDigits",
    "LsganFolderImages",
    "center_square_box",
    "digits_uint8",
    "folder_builder",
    "list_image_files",
]

#: File extensions (lower case) that :func:`list_image_files` picks up.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _array_record_default(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("file_format", "array_record")
    return kwargs


class OfflineBuilderMixin:
    """Says what an offline builder does instead of TFDS's "Downloading and preparing dataset".

    TFDS prints that line (with "Unknown size" for builders that download nothing) and a
    "downloaded and prepared" line from ``DatasetBuilder._log_download_bytes`` /
    ``_log_download_done``; these overrides print what actually happens, and TFDS's progress
    bars are switched off while preparing when output is not a terminal.

    Subclasses set :attr:`SOURCE` (e.g. ``"scikit-learn's bundled digits"``).
    """

    SOURCE = "local data"

    def _log_download_bytes(self) -> None:
        print(
            f"Building dataset {self.name} from {self.SOURCE} (offline; nothing is downloaded) "
            f"into {self.data_dir} ...",
            flush=True,
        )

    def _log_download_done(self) -> None:
        print(f"Built dataset {self.name} in {self.data_dir}; later runs reuse it.", flush=True)

    def download_and_prepare(self, *args: Any, **kwargs: Any) -> None:
        interactive = sys.stdout.isatty() and sys.stderr.isatty()
        tqdm_utils = tfds.core.utils.tqdm_utils
        before = getattr(tqdm_utils, "_active", True)
        if not interactive:
            tfds.display_progress_bar(False)
        try:
            super().download_and_prepare(*args, **kwargs)  # type: ignore[misc]
        finally:
            tfds.display_progress_bar(before)


# TFDS 4.9.10 finds a package-defined builder's source file (only to look for a checksums file)
# through `importlib_resources`, an undeclared dependency that is usually missing without
# TensorFlow. Naming the file directly skips that lookup; these builders download nothing.
_CODE_PATH = epath.Path(__file__)


# --------------------------------------------------------------------------------------------
# sklearn digits
# --------------------------------------------------------------------------------------------


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 images: ``round(x · 255 / 16)``.

    Returns:
      ``(images, labels)``: uint8 ``(1797, 8, 8, 1)`` in [0, 255] and int64 ``(1797,)`` in [0, 9].
    """
    from sklearn.datasets import load_digits  # noqa: PLC0415  (0.3 s; only when preparing)

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, digits.target.astype(np.int64)


class LsganDigits(OfflineBuilderMixin, tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 8×8 digits as an offline TFDS dataset (``lsgan_digits``), one ``train`` split.

    The only real images available without network access. Prepared automatically by
    :func:`lsgan_jax.data.images.load_source` on first use (about 0.5 s, ~100 KB on disk).

    Reference:
      Alpaydin, Kaynak. "Optical Recognition of Handwritten Digits." UCI ML Repository, 1998;
      ``sklearn.datasets.load_digits``.
    """

    SOURCE = "scikit-learn's bundled digits"
    VERSION = tfds.core.Version("1.0.0")
    code_path = _CODE_PATH
    RELEASE_NOTES = {"1.0.0": "sklearn digits, uint8 (8, 8, 1) Tensor feature, 0..16 → 0..255."}

    def __init__(self, **kwargs: Any):
        super().__init__(**_array_record_default(kwargs))

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), "
                "uint8 with the 0..16 ink counts rescaled to 0..255."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        del dl_manager  # bundled with scikit-learn: nothing to download
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
        images, labels = digits_uint8()
        for i in range(len(images)):
            yield i, {"image": images[i], "label": int(labels[i])}


# --------------------------------------------------------------------------------------------
# A folder of the user's images
# --------------------------------------------------------------------------------------------


def list_image_files(root: str) -> list[str]:
    """Image files under ``root`` (recursive), as sorted POSIX paths relative to ``root``.

    Raises:
      FileNotFoundError: ``root`` is not a directory.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Image folder {root!r} does not exist or is not a directory.")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in filenames:
            if not fname.startswith(".") and fname.lower().endswith(IMAGE_EXTENSIONS):
                rel = os.path.relpath(os.path.join(dirpath, fname), root)
                found.append(rel.replace(os.sep, "/"))
    return sorted(found)


class FolderConfig(tfds.core.BuilderConfig):
    """Builder config of one folder at one size.

    Args:
      root: absolute path of the folder.
      image_size: stored square size S (center square crop, then bilinear resize to S×S).
      channels: 3 (RGB) or 1 (grayscale).
      files: image paths relative to ``root`` (sorted).
      class_names: sorted top-level subfolder names when every image lies in a subfolder (the
        label is the subfolder's index); otherwise ``("0",)`` and every label is 0.
      name: the config (cache) name; see :func:`folder_builder`.
    """

    def __init__(
        self,
        *,
        root: str,
        image_size: int,
        channels: int,
        files: Sequence[str],
        class_names: Sequence[str],
        name: str,
    ):
        super().__init__(
            name=name,
            version=LsganFolderImages.VERSION,
            description=f"Images under {root}, center square crop, {image_size}x{image_size}.",
        )
        self.root = root
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.files = tuple(files)
        self.class_names = tuple(class_names)


def _labelled(files: Sequence[str]) -> bool:
    return bool(files) and all("/" in f for f in files)


def _class_names(files: Sequence[str]) -> tuple[str, ...]:
    if _labelled(files):
        return tuple(sorted({f.split("/", 1)[0] for f in files}))
    return ("0",)


def center_square_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The centered ``min(W, H)`` square as a PIL box ``(left, top, right, bottom)``."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


class LsganFolderImages(OfflineBuilderMixin, tfds.core.GeneratorBasedBuilder):
    """A folder of images as an ArrayRecord TFDS dataset (``lsgan_folder_images``), one split.

    Build it with :func:`folder_builder` (which makes the per-folder config). Each image is read
    with PIL, turned upright (EXIF orientation), converted to RGB (or L), center-cropped to the largest centered square and resized
    to ``image_size`` with PIL's bilinear filter (antialiased when shrinking), then stored as PNG
    (lossless). Unreadable files are skipped with a warning.
    """

    VERSION = tfds.core.Version("1.0.0")
    code_path = _CODE_PATH
    RELEASE_NOTES = {"1.0.0": "Center square crop, bilinear resize, PNG, label = subfolder."}

    def __init__(self, **kwargs: Any):
        if not isinstance(kwargs.get("config"), FolderConfig):
            raise ValueError(
                "LsganFolderImages needs a per-folder config; build it with "
                "lsgan_jax.data.builders.folder_builder(path, image_size=..., data_dir=...)."
            )
        super().__init__(**_array_record_default(kwargs))

    @property
    def SOURCE(self) -> str:  # noqa: N802 - the mixin's class attribute, per folder here
        cfg: FolderConfig = self.builder_config
        return f"the {len(cfg.files)} images under {cfg.root}"

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: FolderConfig = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=cfg.description,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(cfg.image_size, cfg.image_size, cfg.channels),
                        encoding_format="png",
                    ),
                    "label": tfds.features.ClassLabel(names=list(cfg.class_names)),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[str, dict[str, Any]]]:
        from PIL import Image, ImageOps  # noqa: PLC0415

        cfg: FolderConfig = self.builder_config
        labelled = _labelled(cfg.files)
        index = {name: i for i, name in enumerate(cfg.class_names)}
        mode = "RGB" if cfg.channels == 3 else "L"
        size = cfg.image_size
        written = 0
        for rel in cfg.files:
            try:
                with Image.open(os.path.join(cfg.root, rel)) as im:
                    im = ImageOps.exif_transpose(im).convert(mode)  # phone photos: upright
                    box = center_square_box(*im.size)
                    im = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
            except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
                log.warning("Skipping unreadable image %s: %s", rel, err)
                continue
            label = index[rel.split("/", 1)[0]] if labelled else 0
            written += 1
            yield rel, {"image": im, "label": label}
        if written == 0:
            raise ValueError(f"No readable images in {cfg.root!r}.")


def _folder_config_name(root: str, image_size: int, channels: int, files: Sequence[str]) -> str:
    digest = hashlib.sha1()
    digest.update(f"{root}\0{image_size}\0{channels}\0".encode())
    for rel in files:
        st = os.stat(os.path.join(root, rel))
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    slug = re.sub(r"[^a-z0-9]+", "_", os.path.basename(root.rstrip("/")).lower()).strip("_")
    return f"{slug[:40] or 'root'}_{image_size}px_c{channels}_{digest.hexdigest()[:12]}"


def folder_builder(
    path: str, *, image_size: int, data_dir: str, channels: int = 3
) -> LsganFolderImages:
    """The (possibly unprepared) builder caching the images under ``path`` at ``image_size``.

    The cache key hashes the absolute path, size, channels and the file listing (relative paths,
    sizes, mtimes), so adding, removing or editing an image makes a new cache; old caches stay in
    ``data_dir/lsgan_folder_images/`` until you delete them.

    Raises:
      FileNotFoundError: ``path`` is not a directory.
      ValueError: no image files under ``path``, or a bad ``image_size``/``channels``.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
    if int(image_size) != image_size or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}.")
    root = os.path.abspath(os.path.expanduser(path))
    files = list_image_files(root)
    if not files:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found under {root!r} (searched "
            "recursively)."
        )
    config = FolderConfig(
        root=root,
        image_size=int(image_size),
        channels=channels,
        files=files,
        class_names=_class_names(files),
        name=_folder_config_name(root, int(image_size), channels, files),
    )
    return LsganFolderImages(config=config, data_dir=data_dir)
