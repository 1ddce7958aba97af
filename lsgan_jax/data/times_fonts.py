"""The TPAMI "datasets with small variance": Times-font digits, shifted (and rotated), offline.

Mao et al. (TPAMI 2019, §"datasets with small variance"; xudonmao/improved_LSGAN
``small_variance_datasets/``) train LSGAN and the regular GAN on two synthetic sets, each of 10
classes (the digits 0-9) × 1,000 images, 28×28 8-bit grayscale, a white Times-font digit on black:

* ``times.shift`` — the digit shifted;
* ``times.shift.rotate`` — the digit shifted and rotated (the official training default).

Every class is one glyph up to a small transform, so the data has very little variance; a
generator that collapses onto a few classes is easy to see. The official ``data.tar.gz`` is not
available to us (the paper records only the sizes above; see ``docs/data.md``), so these sets
are **re-created**: the shift and rotation ranges and the glyph size below are our choice, stated
here and stored in each example set's TFDS config:

* glyph: the digit in a Times-like font (:func:`find_times_font`), all digits at one font size
  such that the ink height of "0" is ``DIGIT_HEIGHT`` = 18 px, centred by its ink bounding box;
* shift: ``(dx, dy) ~ U[−SHIFT, SHIFT]²`` px with ``SHIFT`` = 3 (continuous; rendered at 4×
  supersampling, so positions are quantised to 1/4 px);
* rotation (``shift_rotate`` only): ``θ ~ U[−ROTATE, ROTATE]`` degrees, ``ROTATE`` = 30, about
  the glyph centre (bicubic), applied before the shift;
* the 112×112 supersampled image is area-averaged (PIL ``BOX``) to 28×28, uint8.

With these ranges a digit never leaves the frame (a 30° turn of the tallest glyph plus a 3 px shift
keeps ≥ 0.4 px of margin). Everything is a function of ``(kind, num_per_class, seed, font file)``:
the draws come from ``numpy.random.default_rng([seed, kind_index])`` in one vectorised call, so
the images do not depend on rendering order.

Font. ``find_times_font()`` prefers **STIX General** (``STIXGeneral.ttf``, bundled with
matplotlib, which the ``[viz]`` / ``[all]`` extras install; the STIX fonts are designed to match
Times in metrics and style), so the sets are the same on every machine with the same matplotlib; then a system Times New Roman
/ Liberation Serif (metric-compatible with Times New Roman; Debian ``fonts-liberation``) / Nimbus
Roman / DejaVu Serif; then Pillow's bundled default font (not Times-like; a warning says so). The
font file's SHA-256 is part of the TFDS config name, so sets rendered with different fonts never
share a cache.

TFDS. :class:`LsganTimes` (``lsgan_times``) is an offline builder like
:class:`lsgan_jax.data.builders.LsganDigits`: ArrayRecord, ``uint8 (28, 28, 1)`` Tensor feature, a
``train`` split of ``10 × num_per_class`` examples, prepared on first use by
:func:`lsgan_jax.data.images.load_source` (about 5 s for 10,000 images on a CPU core). Registered in
:data:`lsgan_jax.data.images.DATASETS` as ``times_shift`` and ``times_shift_rotate``.

Reference:
  X. Mao, Q. Li, H. Xie, R. Y. K. Lau, Z. Wang, S. P. Smolley. "On the Effectiveness of Least
  Squares Generative Adversarial Networks." IEEE TPAMI 41(12), 2019; code
  github.com/xudonmao/improved_LSGAN ``small_variance_datasets/``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np

from lsgan_jax._extras import require

tfds = require("tensorflow_datasets", "data", purpose="lsgan_jax.data.times_fonts")
from etils import epath  # noqa: E402  (a dependency of tensorflow-datasets)

from lsgan_jax.data.builders import OfflineBuilderMixin  # noqa: E402

log = logging.getLogger(__name__)

__all__ = [
    "DIGIT_HEIGHT",
    "IMAGE_SIZE",
    "KINDS",
    "LsganTimes",
    "NUM_PER_CLASS",
    "ROTATE",
    "SHIFT",
    "SUPERSAMPLE",
    "TimesConfig",
    "find_times_font",
    "render_dataset",
    "render_digit",
    "times_builder",
]

#: The two sets: registry name ``times_<kind>``.
KINDS = ("shift", "shift_rotate")
#: Output size (the official 28×28).
IMAGE_SIZE = 28
#: Images per class (the official 1,000).
NUM_PER_CLASS = 1000
#: Ink height of the glyph "0" in output pixels.
DIGIT_HEIGHT = 18.0
#: Maximum shift in output pixels (uniform in [−SHIFT, SHIFT] per axis).
SHIFT = 3.0
#: Maximum rotation in degrees (uniform in [−ROTATE, ROTATE]; ``shift_rotate`` only).
ROTATE = 30.0
#: Supersampling factor of the renderer.
SUPERSAMPLE = 4

# Times-like fonts on common systems, in order of preference (after matplotlib's STIX General).
_SYSTEM_FONTS = (
    "/usr/share/fonts/truetype/msttcorefonts/Times_New_Roman.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/opentype/urw-base35/NimbusRoman-Regular.otf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
)
PIL_DEFAULT_FONT = "pil-default"


# --------------------------------------------------------------------------------------------
# Font
# --------------------------------------------------------------------------------------------


def _matplotlib_stix() -> str | None:
    try:
        import matplotlib  # noqa: PLC0415
    except ImportError:  # matplotlib comes with the [viz] extra; then a system font is used
        return None
    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data/fonts/ttf/STIXGeneral.ttf")
    return path if os.path.isfile(path) else None


def _fc_match(pattern: str) -> str | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        out = subprocess.run(
            ["fc-match", "-f", "%{file}", pattern], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out and os.path.isfile(out) and "serif" in out.lower() else None


@functools.lru_cache(maxsize=1)
def find_times_font() -> str:
    """Path of the Times-like TrueType font used by default, or ``"pil-default"``.

    Order: matplotlib's STIX General; Times New Roman, Liberation Serif, Nimbus Roman or DejaVu
    Serif from the system (also via ``fc-match "Times New Roman"``); Pillow's bundled font.
    """
    stix = _matplotlib_stix()
    if stix:
        return stix
    for path in _SYSTEM_FONTS:
        if os.path.isfile(path):
            return path
    found = _fc_match("Times New Roman")
    if found:
        return found
    log.warning(
        "No Times-like font found (matplotlib's STIXGeneral.ttf, Liberation Serif, ...); the "
        "times_* datasets fall back to Pillow's bundled font, which is not a Times font."
    )
    return PIL_DEFAULT_FONT


def font_tag(font: str) -> str:
    """``<file name>-<first 10 hex of its SHA-256>`` (or ``pil-default``): the cache key part."""
    if font == PIL_DEFAULT_FONT:
        import PIL  # noqa: PLC0415

        return f"pil-default-{PIL.__version__}"
    with open(font, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:10]
    stem = os.path.splitext(os.path.basename(font))[0]
    return f"{stem}-{digest}"


def _load_font(font: str, size: int) -> Any:
    from PIL import ImageFont  # noqa: PLC0415

    if font == PIL_DEFAULT_FONT:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(font, size)


@functools.lru_cache(maxsize=8)
def _glyphs(font: str, supersample: int, digit_height: float) -> tuple[Any, ...]:
    """The ten digit glyphs (``L`` images cropped to their ink) at one common font size."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    def ink(size: int, char: str) -> Any:
        f = _load_font(font, size)
        canvas = Image.new("L", (3 * size, 3 * size), 0)
        ImageDraw.Draw(canvas).text((size, size), char, fill=255, font=f)
        box = canvas.getbbox()
        if box is None:
            raise ValueError(f"Font {font!r} renders no ink for {char!r}.")
        return canvas.crop(box)

    probe = 200
    zero_h = ink(probe, "0").size[1]
    size = max(4, int(round(probe * digit_height * supersample / zero_h)))
    return tuple(ink(size, str(d)) for d in range(10))


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def render_digit(
    digit: int,
    *,
    shift: tuple[float, float] = (0.0, 0.0),
    angle: float = 0.0,
    font: str | None = None,
    image_size: int = IMAGE_SIZE,
    digit_height: float = DIGIT_HEIGHT,
    supersample: int = SUPERSAMPLE,
) -> np.ndarray:
    """One white digit on black, rotated by ``angle`` degrees then shifted by ``shift`` px.

    Args:
      digit: 0-9.
      shift: ``(dx, dy)`` in output pixels (positive: right, down).
      angle: Counter-clockwise rotation in degrees about the glyph's ink centre.
      font: Font file (default :func:`find_times_font`).
      image_size: Output side.
      digit_height: Ink height of "0" in output pixels.
      supersample: Rendering scale before the area-average downsampling.

    Returns:
      uint8 ``(image_size, image_size)``.
    """
    from PIL import Image  # noqa: PLC0415

    if not 0 <= int(digit) <= 9:
        raise ValueError(f"digit must be in 0..9, got {digit!r}.")
    glyph = _glyphs(font or find_times_font(), int(supersample), float(digit_height))[int(digit)]
    big = image_size * supersample
    cx = big / 2.0 + shift[0] * supersample
    cy = big / 2.0 + shift[1] * supersample
    canvas = Image.new("L", (big, big), 0)
    w, h = glyph.size
    left, top = int(round(cx - w / 2.0)), int(round(cy - h / 2.0))
    canvas.paste(glyph, (left, top))
    if angle:
        canvas = canvas.rotate(
            float(angle), resample=Image.Resampling.BICUBIC, center=(left + w / 2.0, top + h / 2.0)
        )
    small = canvas.resize((image_size, image_size), Image.Resampling.BOX)
    return np.asarray(small, np.uint8)


def draw_transforms(
    kind: str, num_per_class: int, seed: int, *, shift: float = SHIFT, rotate: float = ROTATE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The labels, shifts and angles of a set (class-major order), without rendering.

    Returns:
      ``(labels int64 (10N,), shifts float64 (10N, 2), angles float64 (10N,))``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {KINDS}.")
    n = int(num_per_class)
    if n < 1:
        raise ValueError(f"num_per_class must be >= 1, got {num_per_class!r}.")
    rng = np.random.default_rng([int(seed), KINDS.index(kind)])
    labels = np.repeat(np.arange(10, dtype=np.int64), n)
    shifts = rng.uniform(-shift, shift, size=(10 * n, 2))
    angles = rng.uniform(-rotate, rotate, size=10 * n)
    if kind == "shift":
        angles = np.zeros_like(angles)
    return labels, shifts, angles


def render_dataset(
    kind: str,
    num_per_class: int = NUM_PER_CLASS,
    seed: int = 0,
    *,
    font: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Renders a whole set in memory (class-major order), deterministic in its arguments.

    Args:
      kind: ``"shift"`` or ``"shift_rotate"``.
      num_per_class: Images per digit (official 1,000).
      seed: Seed of the shift/rotation draws.
      font: Font file (default :func:`find_times_font`).

    Returns:
      ``(images uint8 (10N, 28, 28, 1), labels int64 (10N,))``.
    """
    labels, shifts, angles = draw_transforms(kind, num_per_class, seed)
    font = font or find_times_font()
    images = np.empty((len(labels), IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8)
    for i, (d, s, a) in enumerate(zip(labels, shifts, angles, strict=True)):
        images[i, :, :, 0] = render_digit(int(d), shift=(s[0], s[1]), angle=a, font=font)
    return images, labels


# --------------------------------------------------------------------------------------------
# TFDS builder
# --------------------------------------------------------------------------------------------


def config_name(kind: str, num_per_class: int, seed: int, font: str) -> str:
    """TFDS config (cache) name: ``<kind>_n<N>_seed<S>_<font tag>``."""
    tag = font_tag(font).lower().replace(".", "_")
    return f"{kind}_n{int(num_per_class)}_seed{int(seed)}_{tag}"


_VERSION = tfds.core.Version("1.0.0")


class TimesConfig(tfds.core.BuilderConfig):
    """One rendered set; kind, size, seed and font are all part of the config (cache) name.

    Args:
      kind: ``"shift"`` or ``"shift_rotate"``.
      num_per_class: Images per class.
      seed: Seed of the transform draws.
      font: Font file (or ``"pil-default"``).
    """

    def __init__(self, *, kind: str, num_per_class: int, seed: int, font: str):
        rotation = f", rotation U[-{ROTATE}, {ROTATE}] deg" if kind == "shift_rotate" else ""
        super().__init__(
            name=config_name(kind, num_per_class, seed, font),
            version=_VERSION,
            description=(
                f"times.{kind.replace('_', '.')}: 10 x {num_per_class} white Times-font digits "
                f"on black, 28x28; font {font_tag(font)}; ink height {DIGIT_HEIGHT} px, shift "
                f"U[-{SHIFT}, {SHIFT}] px{rotation}; seed {seed}."
            ),
        )
        self.kind = kind
        self.num_per_class = int(num_per_class)
        self.seed = int(seed)
        self.font = font


class LsganTimes(OfflineBuilderMixin, tfds.core.GeneratorBasedBuilder):
    """The TPAMI small-variance sets as an offline ArrayRecord TFDS dataset (``lsgan_times``).

    Build it with :func:`times_builder` (which makes the per-set :class:`TimesConfig`).
    """

    SOURCE = "Times-font glyphs rendered with Pillow"
    VERSION = _VERSION
    code_path = epath.Path(__file__)
    RELEASE_NOTES = {"1.0.0": "Rendered with Pillow; uint8 (28, 28, 1) Tensor feature."}
    # The official-size sets with the default font (known configs: TFDS does not warn about them).
    BUILDER_CONFIGS = [
        TimesConfig(kind=k, num_per_class=NUM_PER_CLASS, seed=0, font=find_times_font())
        for k in KINDS
    ]

    def __init__(self, **kwargs: Any):
        if not isinstance(kwargs.get("config"), TimesConfig | str):
            raise ValueError(
                "LsganTimes needs a per-set config; build it with "
                "lsgan_jax.data.times_fonts.times_builder(kind, data_dir=...)."
            )
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.builder_config.description,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://github.com/xudonmao/improved_LSGAN",
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        del dl_manager  # rendered locally: nothing to download
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
        cfg: TimesConfig = self.builder_config
        images, labels = render_dataset(cfg.kind, cfg.num_per_class, cfg.seed, font=cfg.font)
        for i in range(len(images)):
            yield i, {"image": images[i], "label": int(labels[i])}


def times_builder(
    kind: str,
    *,
    data_dir: str,
    num_per_class: int = NUM_PER_CLASS,
    seed: int = 0,
    font: str | None = None,
) -> Any:
    """The (possibly unprepared) TFDS builder of one set.

    Args:
      kind: ``"shift"`` or ``"shift_rotate"``.
      data_dir: TFDS data directory.
      num_per_class: Images per class (official 1,000; fewer for tests).
      seed: Seed of the transform draws.
      font: Font file (default :func:`find_times_font`).

    Returns:
      An ``LsganTimes`` builder; ``download_and_prepare()`` renders and writes ArrayRecord.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {KINDS}.")
    config = TimesConfig(
        kind=kind, num_per_class=num_per_class, seed=seed, font=font or find_times_font()
    )
    known = {c.name for c in LsganTimes.BUILDER_CONFIGS}
    return LsganTimes(config=config.name if config.name in known else config, data_dir=data_dir)
