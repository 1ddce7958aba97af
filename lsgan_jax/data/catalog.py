"""The image dataset catalog: what each name means, how it is cropped, how to prepare it.

:data:`DATASETS` maps a name to a :class:`DatasetSpec` (TFDS name, training resolution, channels,
classes, crop, splits, how to prepare it once); ``folder:<path>`` names are built on demand by
:func:`get_spec`. Nothing here imports TFDS or grain, so the catalog is cheap to import.

**Crops** (``DatasetSpec.crop``; applied by :mod:`lsgan_jax.data.resize`):

* ``"none"`` — resize the full image to S×S (distorts non-square images; the official LSUN code,
  ``xudonmao/LSGAN`` ``convert_lsun.py``, did this with ``scipy.misc.imresize``).
* ``"square"`` — the largest centred square, then resize; the same as "resize the shorter side
  to S, then center-crop S×S" (up to rounding of the crop offset). Default for LSUN.
* ``"center:H[xW]"`` — a fixed centred H×W crop (offsets ``round((h − H) / 2)``, as
  carpedm20/DCGAN-tensorflow ``utils.center_crop``), then resize. CelebA uses ``center:108``: the
  108×108 centre of the 218×178 aligned faces (rows 55–162, columns 35–142), resized to 64×64 —
  the "CelebA-cropped 64×64" of DCGAN-tensorflow and of most GAN papers since.

**Preparing.** ``digits``, the Times sets and ``folder:<path>`` prepare themselves offline on first
use. Catalog datasets (MNIST, CIFAR-10, CelebA, LSUN, …) need TensorFlow and network once
(``pip install -e '.[tf]'``, LSUN ``'.[lsun]'``), then
``python -m lsgan_jax.data.prepare NAME --data_dir DIR`` writes ArrayRecord files that training
reads without TensorFlow. Sizes and sources of every set: ``docs/data.md``.
"""

from __future__ import annotations

import dataclasses
import difflib

__all__ = [
    "CONDITIONAL_DATASET",
    "DATASETS",
    "DEFAULT_FOLDER_SIZE",
    "DatasetNotPreparedError",
    "DatasetSpec",
    "LSUN_INSTALL",
    "MissingDependencyError",
    "PREPARE_CMD",
    "TF_INSTALL",
    "dataset_table",
    "get_spec",
]

#: Default image size of ``folder:<path>`` datasets when none is given.
DEFAULT_FOLDER_SIZE = 64

PREPARE_CMD = "python -m lsgan_jax.data.prepare {name} --data_dir {data_dir}"
#: What to install to prepare catalog datasets (TensorFlow, once).
TF_INSTALL = "pip install -e '.[tf]'"
#: What to install to prepare LSUN (TensorFlow and tensorflow-io, once).
LSUN_INSTALL = "pip install -e '.[lsun]'"


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


def _catalog_prepare(name: str, install: str = TF_INSTALL) -> str:
    return (
        f"{install}; then python -m lsgan_jax.data.prepare {name} --data_dir DIR "
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
        how_to_prepare=_catalog_prepare(f"lsun/{scene}", LSUN_INSTALL),
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
