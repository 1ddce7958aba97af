"""InceptionV3 for FID in Flax NNX: pytorch-fid's network, resize and normalisation, exactly.

What "FID" means depends on the network, its weights and the resize in front of it (peers.md
§7). This module reproduces pytorch-fid's ``InceptionV3`` (``pytorch_fid/inception.py``, the
``fid_inception_v3`` variant used for every pytorch-fid FID):

* torchvision's ``Inception3`` trunk with pytorch-fid's FID patches, which make it compute the
  TensorFlow FID graph (``inception-2015-12-05``): :class:`FIDInceptionA` and
  :class:`FIDInceptionC` average-pool with ``count_include_pad=False`` (TF's SAME average pool
  ignores the padding); :class:`FIDInceptionE_1` likewise; :class:`FIDInceptionE_2` uses a
  3x3/1 *max* pool in its pool branch (a quirk of the TF graph). BatchNorm eps is 1e-3.
* Input: resize to 299x299 with ``F.interpolate(mode='bilinear', align_corners=False)`` (no
  antialiasing, also when downsampling) -- :func:`resize_bilinear` implements exactly that
  sampling; ``jax.image.resize`` would antialias when downsampling and differ -- then
  ``2x - 1`` when the input is in [0, 1] (``normalize_input=True``).
* Outputs: ``pool`` (2048-d pool3 features: FID, KID, precision/recall), ``logits`` (1008 =
  ``fc(pool)``) and ``logits_unbiased`` (``pool @ W`` without the fc bias: what the original
  Inception Score code and torch-fidelity feed to IS).

Layout and range: images are NHWC floats in **[-1, 1]** (our generators' ``tanh`` range); that is
pytorch-fid's tensor after its ``2x - 1``. Convert other data as

* uint8 ``u`` in [0, 255] (PNG files, datasets): ``x = 2 * (u / 255) - 1`` (pytorch-fid reads
  images with ``ToTensor``, i.e. ``u / 255``); :meth:`InceptionFeatureExtractor.__call__` does
  this for uint8 input;
* floats in [0, 1]: ``value_range=(0, 1)`` (or call the model with ``normalize_input=True``);
* NCHW arrays: ``x.transpose(0, 2, 3, 1)``; grayscale (C=1) is repeated to RGB as PIL's
  ``convert('RGB')`` does in pytorch-fid.

Because resize and ``2x - 1`` are both linear and the bilinear weights sum to 1, resizing the
[-1, 1] image equals pytorch-fid's resize-then-normalise up to float rounding (~1e-7).

Parity: ``tests/test_inception_parity.py`` checks this network against torch-fidelity's
PyTorch port of the same graph (random weights, converted with the converter used for the real
file) and the resize against ``torch.nn.functional.interpolate``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lsgan_jax.metrics import fid_weights
from lsgan_jax.metrics.image_metrics import RESIZE_PYTORCH_FID, WEIGHTS_RANDOM, FeatureSpace

FID_IMAGE_SIZE = 299
POOL_DIM = 2048
NUM_LOGITS = 1008
BN_EPS = 1e-3
OUTPUT_NAMES = ("pool", "logits", "logits_unbiased")

__all__ = [
    "BN_EPS",
    "FID_IMAGE_SIZE",
    "NUM_LOGITS",
    "OUTPUT_NAMES",
    "POOL_DIM",
    "RESIZE_PYTORCH_FID",
    "WEIGHTS_RANDOM",
    "FIDInceptionA",
    "FIDInceptionC",
    "FIDInceptionE_1",
    "FIDInceptionE_2",
    "InceptionB",
    "InceptionD",
    "InceptionFeatureExtractor",
    "InceptionV3",
    "bilinear_resize_matrix",
    "extract_features",
    "load_params",
    "param_shapes",
    "random_params",
    "resize_bilinear",
]

_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------------
# Resize: PyTorch's bilinear, align_corners=False, no antialias
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def bilinear_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """1-D interpolation matrix of ``F.interpolate(mode='bilinear', align_corners=False)``.

    Per output index ``i`` PyTorch computes (in float32, ``upsample_bilinear2d``)

        scale = in / out,  src = max(scale * (i + 0.5) - 0.5, 0),
        i0 = min(floor(src), in - 1),  i1 = min(i0 + 1, in - 1),  lam = src - i0,
        y[i] = (1 - lam) * x[i0] + lam * x[i1]

    -- two taps whatever the scale (no antialiasing when downsampling, unlike
    ``jax.image.resize``). Row ``i`` of the returned matrix holds those two weights.
    ``scale * (i + 0.5) - 0.5`` is rounded once (a fused multiply-add, as PyTorch's compiled CPU
    kernel evaluates it); the weights then equal torch 2.13's bit for bit (tested for 8..512 ->
    299 and odd sizes), where a two-rounding float32 evaluation is off by up to 4e-6 when
    downsampling from 512.

    Args:
        in_size: Input length.
        out_size: Output length.

    Returns:
        ``(out_size, in_size)`` float32 matrix ``M`` with ``y = M @ x``.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    dst = np.arange(out_size, dtype=f32) + f32(0.5)
    # float32 * float32 is exact in float64; one rounding to float32 = fused multiply-add.
    src = (np.float64(scale) * dst.astype(np.float64) - 0.5).astype(f32)
    src = np.maximum(src, f32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = np.clip(src - i0.astype(f32), f32(0.0), f32(1.0)).astype(f32)
    m = np.zeros((out_size, in_size), dtype=f32)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), f32(1.0) - lam)
    np.add.at(m, (rows, i1), lam)
    return m


def resize_bilinear(images: jax.Array, size: int | tuple[int, int] = FID_IMAGE_SIZE) -> jax.Array:
    """Resizes NHWC images like ``F.interpolate(mode='bilinear', align_corners=False)``.

    Separable: ``y = M_h @ x @ M_w^T`` per image and channel with the matrices of
    :func:`bilinear_resize_matrix`, evaluated at ``Precision.HIGHEST`` (no TF32/bf16 on
    accelerators). Same size in and out is the identity.

    Args:
        images: ``(B, H, W, C)`` floats.
        size: Output ``(H', W')`` or one int for a square.

    Returns:
        ``(B, H', W', C)`` in the input dtype.
    """
    if images.ndim != 4:
        raise ValueError(f"expected NHWC images (B, H, W, C), got shape {images.shape}")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    _, h, w, _ = images.shape
    x = images
    if h != out_h:
        mh = jnp.asarray(bilinear_resize_matrix(h, out_h), dtype=x.dtype)
        x = jnp.einsum("oh,bhwc->bowc", mh, x, precision=_HIGHEST)
    if w != out_w:
        mw = jnp.asarray(bilinear_resize_matrix(w, out_w), dtype=x.dtype)
        x = jnp.einsum("pw,bhwc->bhpc", mw, x, precision=_HIGHEST)
    return x


# --------------------------------------------------------------------------------------------
# Pools
# --------------------------------------------------------------------------------------------


def _max_pool(x: jax.Array, window: int, stride: int, pad: int) -> jax.Array:
    padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    return jax.lax.reduce_window(
        x, -jnp.inf, jax.lax.max, (1, window, window, 1), (1, stride, stride, 1), padding
    )


def _avg_pool_exclude_pad(x: jax.Array) -> jax.Array:
    """3x3/1 average pool, padding 1, ``count_include_pad=False`` (TF SAME average pool)."""
    padding = ((0, 0), (1, 1), (1, 1), (0, 0))
    win, strides = (1, 3, 3, 1), (1, 1, 1, 1)
    sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, win, strides, padding)
    _, h, w, _ = x.shape
    ones = np.ones((h + 2, w + 2), dtype=np.float32)
    ones[0, :] = ones[-1, :] = ones[:, 0] = ones[:, -1] = 0.0
    counts = sum(ones[i : i + h, j : j + w] for i in range(3) for j in range(3))
    return sums / jnp.asarray(counts[None, :, :, None], dtype=x.dtype)


# --------------------------------------------------------------------------------------------
# Blocks (attribute names = torchvision/pytorch-fid state-dict names)
# --------------------------------------------------------------------------------------------


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _shape_only_init(key: Any, shape: Any, dtype: Any = jnp.float32) -> jax.ShapeDtypeStruct:
    """Initialiser that allocates nothing (parameters are filled by :func:`load_params`)."""
    del key
    return jax.ShapeDtypeStruct(tuple(shape), dtype)


def _inits(shape_only: bool, **names: str) -> dict[str, Any]:
    return {name: _shape_only_init for name in names} if shape_only else {}


class BasicConv2d(nnx.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, running statistics) -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        precision: Any = _HIGHEST,
        rngs: nnx.Rngs,
        shape_only: bool = False,
    ):
        ph, pw = _pair(padding)
        self.conv = nnx.Conv(
            in_channels,
            out_channels,
            _pair(kernel_size),
            strides=stride,
            padding=((ph, ph), (pw, pw)),
            use_bias=False,
            precision=precision,
            rngs=rngs,
            **_inits(shape_only, kernel_init=""),
        )
        self.bn = nnx.BatchNorm(
            out_channels,
            epsilon=BN_EPS,
            use_running_average=True,
            rngs=rngs,
            **_inits(shape_only, scale_init="", bias_init=""),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(self.bn(self.conv(x)))


class FIDInceptionA(nnx.Module):
    """Mixed_5b/c/d (35x35); average pool excludes padding (pytorch-fid's patch)."""

    def __init__(
        self,
        in_channels: int,
        pool_features: int,
        *,
        precision: Any,
        rngs: nnx.Rngs,
        shape_only: bool = False,
    ):
        c = functools.partial(BasicConv2d, precision=precision, rngs=rngs, shape_only=shape_only)
        self.branch1x1 = c(in_channels, 64, 1)
        self.branch5x5_1 = c(in_channels, 48, 1)
        self.branch5x5_2 = c(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = c(in_channels, 64, 1)
        self.branch3x3dbl_2 = c(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = c(96, 96, 3, padding=1)
        self.branch_pool = c(in_channels, pool_features, 1)

    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nnx.Module):
    """Mixed_6a: 35x35 -> 17x17 reduction (torchvision's block, unpatched)."""

    def __init__(
        self, in_channels: int, *, precision: Any, rngs: nnx.Rngs, shape_only: bool = False
    ):
        c = functools.partial(BasicConv2d, precision=precision, rngs=rngs, shape_only=shape_only)
        self.branch3x3 = c(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = c(in_channels, 64, 1)
        self.branch3x3dbl_2 = c(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = c(96, 96, 3, stride=2)

    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = _max_pool(x, 3, 2, 0)
        return jnp.concatenate([b3, bd, bp], axis=-1)


class FIDInceptionC(nnx.Module):
    """Mixed_6b..6e (17x17, factorised 7x7); average pool excludes padding."""

    def __init__(
        self,
        in_channels: int,
        channels_7x7: int,
        *,
        precision: Any,
        rngs: nnx.Rngs,
        shape_only: bool = False,
    ):
        c = functools.partial(BasicConv2d, precision=precision, rngs=rngs, shape_only=shape_only)
        c7 = channels_7x7
        self.branch1x1 = c(in_channels, 192, 1)
        self.branch7x7_1 = c(in_channels, c7, 1)
        self.branch7x7_2 = c(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = c(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = c(in_channels, c7, 1)
        self.branch7x7dbl_2 = c(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = c(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = c(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = c(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = c(in_channels, 192, 1)

    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            bd = layer(bd)
        bd = self.branch7x7dbl_5(bd)
        bp = self.branch_pool(_avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nnx.Module):
    """Mixed_7a: 17x17 -> 8x8 reduction (torchvision's block, unpatched)."""

    def __init__(
        self, in_channels: int, *, precision: Any, rngs: nnx.Rngs, shape_only: bool = False
    ):
        c = functools.partial(BasicConv2d, precision=precision, rngs=rngs, shape_only=shape_only)
        self.branch3x3_1 = c(in_channels, 192, 1)
        self.branch3x3_2 = c(192, 320, 3, stride=2)
        self.branch7x7x3_1 = c(in_channels, 192, 1)
        self.branch7x7x3_2 = c(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = c(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = c(192, 192, 3, stride=2)

    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = _max_pool(x, 3, 2, 0)
        return jnp.concatenate([b3, b7, bp], axis=-1)


class _InceptionE(nnx.Module):
    """Mixed_7b/7c (8x8, expanded filter bank); the pool branch differs between the two."""

    pool: str = "avg"

    def __init__(
        self, in_channels: int, *, precision: Any, rngs: nnx.Rngs, shape_only: bool = False
    ):
        c = functools.partial(BasicConv2d, precision=precision, rngs=rngs, shape_only=shape_only)
        self.branch1x1 = c(in_channels, 320, 1)
        self.branch3x3_1 = c(in_channels, 384, 1)
        self.branch3x3_2a = c(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = c(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = c(in_channels, 448, 1)
        self.branch3x3dbl_2 = c(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = c(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = c(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = c(in_channels, 192, 1)

    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = jnp.concatenate([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], axis=-1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = jnp.concatenate([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], axis=-1)
        pooled = _avg_pool_exclude_pad(x) if self.pool == "avg" else _max_pool(x, 3, 1, 1)
        bp = self.branch_pool(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionE_1(_InceptionE):  # noqa: N801 -- pytorch-fid's name
    """Mixed_7b: average pool with ``count_include_pad=False``."""

    pool = "avg"


class FIDInceptionE_2(_InceptionE):  # noqa: N801 -- pytorch-fid's name
    """Mixed_7c: 3x3/1 **max** pool (padding 1) in the pool branch, as the TF FID graph."""

    pool = "max"


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class InceptionV3(nnx.Module):
    """pytorch-fid's FID InceptionV3 (TF ``inception-2015-12-05`` graph) in Flax NNX.

    ``__init__`` creates random weights with Flax initialisers, which is slow on CPU (~35 s:
    472 eager initialiser calls); load the published ones with :meth:`from_pytorch_fid`, or
    random ones quickly with :meth:`from_params` and :func:`random_params`. Parameter names
    mirror the PyTorch state dict (``Mixed_5b.branch1x1.conv`` ...), see
    :func:`fid_weights.convert_state_dict`.

    Args:
        rngs: Initialisation RNGs.
        precision: Matmul/conv precision; ``HIGHEST`` keeps TF32/bf16 out on GPU/TPU.
        shape_only: Allocate nothing: parameters are ``jax.ShapeDtypeStruct`` until
            :func:`load_params` fills them (what :meth:`from_params` uses; ~0.5 s instead of
            ``nnx.eval_shape``'s ~4 s).
    """

    def __init__(self, *, rngs: nnx.Rngs, precision: Any = _HIGHEST, shape_only: bool = False):
        c = functools.partial(BasicConv2d, precision=precision, rngs=rngs, shape_only=shape_only)
        kw = dict(precision=precision, rngs=rngs, shape_only=shape_only)
        self.Conv2d_1a_3x3 = c(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = c(32, 32, 3)
        self.Conv2d_2b_3x3 = c(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = c(64, 80, 1)
        self.Conv2d_4a_3x3 = c(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, 32, **kw)
        self.Mixed_5c = FIDInceptionA(256, 64, **kw)
        self.Mixed_5d = FIDInceptionA(288, 64, **kw)
        self.Mixed_6a = InceptionB(288, **kw)
        self.Mixed_6b = FIDInceptionC(768, 128, **kw)
        self.Mixed_6c = FIDInceptionC(768, 160, **kw)
        self.Mixed_6d = FIDInceptionC(768, 160, **kw)
        self.Mixed_6e = FIDInceptionC(768, 192, **kw)
        self.Mixed_7a = InceptionD(768, **kw)
        self.Mixed_7b = FIDInceptionE_1(1280, **kw)
        self.Mixed_7c = FIDInceptionE_2(2048, **kw)
        self.fc = nnx.Linear(
            POOL_DIM,
            NUM_LOGITS,
            precision=precision,
            rngs=rngs,
            **_inits(shape_only, kernel_init="", bias_init=""),
        )

    def __call__(
        self,
        images: jax.Array,
        *,
        resize_input: bool = True,
        normalize_input: bool = False,
    ) -> dict[str, jax.Array]:
        """Features of a batch.

        Args:
            images: ``(B, H, W, 3)`` floats in [-1, 1] (or [0, 1] with ``normalize_input``).
            resize_input: Bilinear resize to 299x299 first (pytorch-fid's default).
            normalize_input: Map [0, 1] to [-1, 1] (``2x - 1``) after resizing.

        Returns:
            ``{"pool": (B, 2048), "logits": (B, 1008), "logits_unbiased": (B, 1008)}``.
        """
        x = images
        if resize_input:
            x = resize_bilinear(x, FID_IMAGE_SIZE)
        if normalize_input:
            x = 2.0 * x - 1.0
        # block 0: 299 -> 147 -> 73
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = _max_pool(x, 3, 2, 0)
        # block 1: 73 -> 71 -> 35
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = _max_pool(x, 3, 2, 0)
        # block 2: 35 -> 17
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        # block 3: 17 -> 8 -> global average pool
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        pool = jnp.mean(x, axis=(1, 2))
        unbiased = jnp.dot(pool, self.fc.kernel[...], precision=self.fc.precision)
        return {"pool": pool, "logits": unbiased + self.fc.bias[...], "logits_unbiased": unbiased}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, precision: Any = _HIGHEST) -> InceptionV3:
        """Builds the network directly from converted parameters (no random init).

        Args:
            params: ``{"Mixed_5b/branch1x1/conv/kernel": array, …}`` as made by
                :func:`fid_weights.convert_state_dict`.
            precision: See the class docstring.

        Returns:
            The loaded model.
        """
        model = _abstract_model(cls, precision)
        load_params(model, params)
        return model

    @classmethod
    def from_pytorch_fid(
        cls, path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> tuple[InceptionV3, fid_weights.ConvertedWeights]:
        """Loads pytorch-fid's published weights (see :func:`fid_weights.load_pytorch_fid_weights`).

        Args:
            path: Local ``.pth`` or ``None`` (cache / torch.hub / download).
            **kwargs: Passed to :func:`fid_weights.load_pytorch_fid_weights`.

        Returns:
            ``(model, weights)``; ``weights.tag`` is the protocol string.
        """
        weights = fid_weights.load_pytorch_fid_weights(path, **kwargs)
        return cls.from_params(weights.params), weights


@functools.lru_cache(maxsize=8)
def _abstract_split(cls: type, precision: Any) -> tuple[Any, Any]:
    return nnx.split(cls(rngs=nnx.Rngs(0), precision=precision, shape_only=True))


def _abstract_model(cls: type, precision: Any) -> Any:
    """A fresh shape-only model (new Variables each call, so loading never touches the cache)."""
    return nnx.clone(nnx.merge(*_abstract_split(cls, precision)))


def _flat_variables(model: nnx.Module) -> dict[str, nnx.Variable]:
    out = {}
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Variable):
            out["/".join(str(p) for p in path)] = var
    return out


def load_params(model: InceptionV3, params: Mapping[str, Any]) -> None:
    """Writes converted parameters into ``model`` in place, checking names and shapes.

    Args:
        model: An :class:`InceptionV3` (concrete or from ``nnx.eval_shape``).
        params: Flat ``{"a/b/kernel": array}`` from :func:`fid_weights.convert_state_dict`.

    Raises:
        ValueError: Missing or unexpected names, or a shape mismatch (wrong file).
    """
    variables = _flat_variables(model)
    missing = sorted(set(variables) - set(params))
    unexpected = sorted(set(params) - set(variables))
    if missing or unexpected:
        raise ValueError(
            f"Inception weights do not match pytorch-fid's network: missing {missing[:5]}"
            f"{' …' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' …' if len(unexpected) > 5 else ''}"
        )
    for name, var in variables.items():
        value = np.asarray(params[name])
        expected = tuple(var.get_value().shape)
        if tuple(value.shape) != expected:
            raise ValueError(f"{name}: shape {value.shape}, network expects {expected}")
        var.set_value(jnp.asarray(value, dtype=jnp.float32))


def param_shapes() -> dict[str, tuple[int, ...]]:
    """``{"Mixed_5b/branch1x1/conv/kernel": (1, 1, 192, 64), …}`` of :class:`InceptionV3`."""
    model = _abstract_model(InceptionV3, _HIGHEST)
    return {k: tuple(v.get_value().shape) for k, v in _flat_variables(model).items()}


def random_params(seed: int = 0) -> dict[str, np.ndarray]:
    """Random but well-scaled parameters (NumPy, fast): for tests and smoke runs only.

    He-normal conv kernels (``std = sqrt(2 / fan_in)``), BatchNorm scale ~ U(0.8, 1.2), bias and
    running mean ~ N(0, 0.1), running variance ~ U(0.5, 1.5), fc ~ N(0, 1/2048): activations stay
    O(1) through the 94 conv layers, so a parity test at 1e-4 is meaningful.

    Args:
        seed: NumPy seed.

    Returns:
        Flat ``{"a/b/kernel": float32 array}`` for :meth:`InceptionV3.from_params`.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in sorted(param_shapes().items()):
        leaf = name.rsplit("/", 1)[-1]
        if name == "fc/kernel":
            v = rng.normal(0.0, np.sqrt(1.0 / shape[0]), shape)
        elif leaf == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            v = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif leaf == "scale":
            v = rng.uniform(0.8, 1.2, shape)
        elif leaf == "var":
            v = rng.uniform(0.5, 1.5, shape)
        else:  # bias, mean
            v = rng.normal(0.0, 0.1, shape)
        out[name] = v.astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------
# Batched, jitted extraction
# --------------------------------------------------------------------------------------------


def _to_nhwc_batch(batch: Any, value_range: tuple[float, float]) -> np.ndarray:
    x = np.asarray(batch)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"expected images (B, H, W, C) or (H, W, C), got shape {x.shape}")
    if x.shape[-1] not in (1, 3):
        hint = " (NCHW? use x.transpose(0, 2, 3, 1))" if x.shape[1] in (1, 3) else ""
        raise ValueError(f"expected 1 or 3 channels last, got shape {x.shape}{hint}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    else:
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"images must be uint8 or float, got {x.dtype}")
        x = x.astype(np.float32)
        lo, hi = value_range
        if x.size:
            xmin, xmax = float(x.min()), float(x.max())
            tol = 1e-3 * (hi - lo)
            if xmin < lo - tol or xmax > hi + tol:
                raise ValueError(
                    f"images span [{xmin:.3g}, {xmax:.3g}] but value_range={value_range}; "
                    "pass value_range=(0, 1) or (0, 255) to match your data"
                )
        if (lo, hi) != (-1.0, 1.0):
            x = (x - np.float32(lo)) * np.float32(2.0 / (hi - lo)) - np.float32(1.0)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


class InceptionFeatureExtractor:
    """Jitted, batched pytorch-fid features with their protocol strings.

    The network is split once (``nnx.split``); a plain ``jax.jit`` function merges it inside
    (no ``nnx.jit`` in the loop). Preprocessing (resize to 299, range) and the 299x299 trunk are
    two jitted functions, so the trunk compiles once per batch size whatever the input
    resolution; the last batch is padded to ``batch_size`` (no recompilation) and trimmed.

    Args:
        model: A loaded :class:`InceptionV3`.
        weights: Protocol string of the weights (``ConvertedWeights.tag`` or
            :data:`WEIGHTS_RANDOM`).
        batch_size: Images per jitted call.
    """

    def __init__(self, model: InceptionV3, *, weights: str, batch_size: int = 50):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.weights = weights
        self.resize = RESIZE_PYTORCH_FID
        self.batch_size = batch_size
        self._graphdef, self._state = nnx.split(model)

        def trunk(state, x):
            net = nnx.merge(self._graphdef, state)
            return net(x, resize_input=False, normalize_input=False)

        self._trunk = jax.jit(trunk)
        self._preprocess = jax.jit(lambda x: resize_bilinear(x, FID_IMAGE_SIZE))

    @classmethod
    def pytorch_fid(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 50,
        **kwargs: Any,
    ) -> InceptionFeatureExtractor:
        """Extractor with pytorch-fid's published weights (sha256-verified, cached).

        Args:
            path: Local ``.pth`` or ``None`` (cache, torch.hub folder, then download).
            batch_size: Images per jitted call.
            **kwargs: Passed to :func:`fid_weights.load_pytorch_fid_weights` (``cache_dir``,
                ``download``, ``expected_sha256``).

        Returns:
            The extractor; ``.weights`` is e.g. ``"pt_inception-2015-12-05 (sha256 6726825d…)"``.
        """
        model, weights = InceptionV3.from_pytorch_fid(path, **kwargs)
        return cls(model, weights=weights.tag, batch_size=batch_size)

    @classmethod
    def random(cls, seed: int = 0, *, batch_size: int = 50) -> InceptionFeatureExtractor:
        """Extractor with random weights: for tests and smoke runs only (numbers mean nothing)."""
        model = InceptionV3.from_params(random_params(seed))
        return cls(model, weights=WEIGHTS_RANDOM, batch_size=batch_size)

    @property
    def space(self) -> FeatureSpace:
        """Protocol of the pool3 features: weights tag, ``bilinear-299 (pytorch-fid)``."""
        return FeatureSpace(weights=self.weights, resize=self.resize)

    def forward_299(self, x: jax.Array | np.ndarray) -> dict[str, jax.Array]:
        """The trunk alone on already-preprocessed ``(B, 299, 299, 3)`` input in [-1, 1]."""
        return self._trunk(self._state, jnp.asarray(x, dtype=jnp.float32))

    def _batches(self, images: Any) -> Iterable[np.ndarray]:
        """Fixed-size batches from an array, or re-chunked from an iterable of batches/images."""
        if isinstance(images, np.ndarray | jax.Array) or hasattr(images, "__array__"):
            arr = images if isinstance(images, np.ndarray | jax.Array) else np.asarray(images)
            if arr.ndim == 3:
                arr = arr[None]
            for start in range(0, arr.shape[0], self.batch_size):
                yield np.asarray(arr[start : start + self.batch_size])
            return
        pending: list[np.ndarray] = []
        count = 0
        for item in images:
            arr = np.asarray(item)
            pending.append(arr[None] if arr.ndim == 3 else arr)
            count += pending[-1].shape[0]
            while count >= self.batch_size:
                merged = np.concatenate(pending, axis=0) if len(pending) > 1 else pending[0]
                yield merged[: self.batch_size]
                rest = merged[self.batch_size :]
                pending, count = ([rest] if len(rest) else []), len(rest)
        if count:
            yield np.concatenate(pending, axis=0)

    def __call__(
        self,
        images: Any,
        *,
        outputs: tuple[str, ...] = ("pool", "logits_unbiased"),
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> dict[str, np.ndarray]:
        """Features of many images.

        Args:
            images: ``(N, H, W, C)`` array (NumPy or JAX), or an iterable of such batches (e.g.
                a generator that samples from a GAN). Floats in ``value_range`` or uint8
                [0, 255]; C = 1 is repeated to RGB.
            outputs: Which of ``"pool"``, ``"logits"``, ``"logits_unbiased"`` to return.
            value_range: Range of float input, mapped to [-1, 1].

        Returns:
            ``{name: (N, D) float32 NumPy array}``.
        """
        bad = [o for o in outputs if o not in OUTPUT_NAMES]
        if bad:
            raise ValueError(f"unknown outputs {bad}; choose from {OUTPUT_NAMES}")
        lo, hi = float(value_range[0]), float(value_range[1])
        if not hi > lo:
            raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
        chunks: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
        for raw in self._batches(images):
            x = _to_nhwc_batch(raw, (lo, hi))
            n = x.shape[0]
            if n == 0:
                continue
            if n < self.batch_size:
                pad = np.zeros((self.batch_size - n, *x.shape[1:]), dtype=x.dtype)
                x = np.concatenate([x, pad], axis=0)
            out = self.forward_299(self._preprocess(jnp.asarray(x)))
            for o in outputs:
                chunks[o].append(np.asarray(out[o])[:n])
        dims = {"pool": POOL_DIM, "logits": NUM_LOGITS, "logits_unbiased": NUM_LOGITS}
        return {
            o: (np.concatenate(c, axis=0) if c else np.zeros((0, dims[o]), np.float32))
            for o, c in chunks.items()
        }


def extract_features(
    images: Any,
    *,
    extractor: InceptionFeatureExtractor | None = None,
    batch_size: int = 50,
    outputs: tuple[str, ...] = ("pool", "logits_unbiased"),
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> dict[str, np.ndarray]:
    """pytorch-fid Inception features of many images (batched, jitted).

    Args:
        images: ``(N, H, W, C)`` array or an iterable of batches; floats in ``value_range``
            (default [-1, 1], our generators' range) or uint8.
        extractor: A prepared :class:`InceptionFeatureExtractor`; ``None`` loads pytorch-fid's
            published weights (cache, torch.hub folder, or download -- offline this raises
            :class:`fid_weights.WeightsUnavailableError` with instructions). Reuse one
            extractor across calls: building it compiles the network.
        batch_size: Images per jitted call when ``extractor`` is ``None``.
        outputs: Which outputs to return (see :meth:`InceptionFeatureExtractor.__call__`).
        value_range: Range of float input.

    Returns:
        ``{name: (N, D) float32 array}``; pass ``extractor.space`` to the metrics in
        :mod:`lsgan_jax.metrics.image_metrics` (it names the weights and the resize).
    """
    if extractor is None:
        extractor = InceptionFeatureExtractor.pytorch_fid(batch_size=batch_size)
    return extractor(images, outputs=outputs, value_range=value_range)
