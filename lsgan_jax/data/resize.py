"""Crop and bilinear resize of uint8 image batches to float32 in [−1, 1].

**Resize.** Bilinear with PIL's coefficients: half-pixel centres, edge taps renormalised, and
antialiased (triangle filter widened by the scale factor) when shrinking. Computed in float32,
either as ``W_y · X · W_xᵀ`` for the batch (small inputs) or with PIL in mode ``"F"`` per image
(large inputs, e.g. LSUN); both give the same numbers up to float32 round-off. Pixels are never
rounded after resizing; ``x / 127.5 − 1`` maps 0..255 to [−1, 1] (the official LSGAN code's
scaling). Crops: see :mod:`lsgan_jax.data.catalog`.

NumPy only (Pillow for large images), no TFDS.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = ["bilinear_matrix", "check_crop", "crop_box", "preprocess", "resize_bilinear"]

# Above this many multiply-adds per image channel (S·H·W) the dense-matrix resize is slower
# than PIL's sparse filter (docs/data.md).
_DENSE_RESIZE_MAX_MACS = 1 << 21


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


def crop_box(height: int, width: int, crop: str) -> tuple[int, int, int, int]:
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


def check_crop(crop: str) -> str:
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
    from lsgan_jax._extras import require  # noqa: PLC0415

    Image = require("PIL.Image", "data", purpose="resizing large images")  # noqa: N806

    out = np.empty((b, size, size, c), np.float32)
    for i in range(b):
        for k in range(c):
            plane = Image.fromarray(np.ascontiguousarray(images[i, :, :, k], np.float32))
            out[i, :, :, k] = np.asarray(plane.resize((size, size), Image.Resampling.BILINEAR))
    return out


def preprocess(images: np.ndarray | Sequence[np.ndarray], size: int, crop: str) -> np.ndarray:
    """Crops, resizes and scales uint8 images to float32 ``(B, size, size, C)`` in [−1, 1].

    ``images`` is a ``(B, H, W, C)`` array or a list of ``(H, W, C)`` arrays of any sizes.
    """
    if isinstance(images, np.ndarray):
        top, left, ch, cw = crop_box(images.shape[1], images.shape[2], crop)
        out = resize_bilinear(images[:, top : top + ch, left : left + cw], size)
    else:
        cropped = []
        for image in images:
            top, left, ch, cw = crop_box(image.shape[0], image.shape[1], crop)
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
