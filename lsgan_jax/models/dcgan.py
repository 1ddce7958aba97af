"""DCGAN generators and discriminators of the official LSGAN code (TF1), in Flax NNX.

Registered pairs:

* ``dcgan_g`` / ``dcgan_d`` -- the DCGAN of the official code at any size (28, 32, 64, 128, ...):
  xudonmao/improved_LSGAN ``cats/arch.py`` (``generator_dcgan`` / ``discriminator_dcgan``, 128 px,
  and the ``*_no_bn`` variants) and xudonmao/LSGAN ``stability_comparison/*/dcgan64.py`` (64 px,
  BN removed from G, or from G and D). ``g_batchnorm`` / ``d_batchnorm`` switch BatchNorm off.
* ``digit_g`` / ``digit_d`` -- the small-variance digits models (28 px): xudonmao/improved_LSGAN
  ``small_variance_datasets/arch.py`` (``generator_digit`` = ``dcgan_g`` at 28 px with the digits
  defaults; ``discriminator_digit``, LeNet-like).

Generator layout (``image_size`` s, ``n`` upsamplings, base width b, default ``n = 4`` when
``16 | s`` else 3)::

    z -> linear -> [BN] -> ReLU -> reshape (s_n, s_n, 8b)
      -> deconv k x k /2 -> (s_{n-1}, s_{n-1}, 4b) -> [BN] -> ReLU -> ...
      -> (s_1, s_1, 8b / 2^(n-1))
      -> deconv k x k /2 -> (s, s, channels) -> tanh

with ``s_j = ceil(s / 2^j)``: 64 px -> 4, 8, 16, 32, 64 (official DCGAN, ``s16 = s / 16``);
128 px -> 8, ..., 128 (cats); 28 px -> 4, 7, 14, 28 (digits; TF ``conv2d_transpose`` with the
explicit output shape 7 is reproduced exactly, see :mod:`lsgan_jax.models.layers`).

Discriminator: conv k x k /2 with b, 2b, 4b, 8b filters (SAME), BN on all but the first, lrelu
0.2, flatten, linear -> 1 raw logit.

Conventions (see :mod:`lsgan_jax.models.registry`): ``G(z, *, labels=None, train=True)`` -> NHWC
images in [-1, 1]; ``D(x, *, labels=None, train=True)`` -> raw logits ``(B, 1)`` (never a sigmoid;
the official code's ``h4_sigmoid`` is only logged). These models are unconditional: ``labels`` is
accepted and ignored. BatchNorm uses batch statistics when ``train=True`` (updating the running
averages, TF decay 0.9 = Flax momentum 0.9, eps 1e-5) and the running averages otherwise, and
averages its statistics over ``axis_name`` (sync BN) when given. Parameters are ``param_dtype``
(float32); ``dtype`` is the computation dtype (e.g. bfloat16). Init as the official ``ops.py``:
N(0, 0.02) linear/deconv kernels, truncated N(0, 0.02) conv kernels, zero biases, BN gamma 1
(``bn_scale_std=0.02`` gives the N(1, 0.02) gamma of ``stability_comparison/*/ops.py``).

The first BatchNorm of G: improved_LSGAN (cats, digits) normalizes the linear output *per
feature*, before the reshape (``g_bn0(linear(z, ...))``; ``project_bn="features"``, the default);
carpedm20/DCGAN-tensorflow and LSGAN ``vgg.py`` normalize per channel after the reshape
(``project_bn="channels"``).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lsgan_jax.models.latent import LATENT_DISTS
from lsgan_jax.models.layers import (
    ConvTranspose2x,
    batch_norm,
    check_images,
    check_int,
    check_latent,
    conv2d,
    layer_norm,
    linear,
    lrelu,
    resolve_deconv_impl,
)
from lsgan_jax.models.registry import register
from lsgan_jax.models.spectral_norm import call, maybe_spectral_norm

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DigitDiscriminator",
    "DigitGenerator",
    "PROJECT_BN_MODES",
]

Dtype = Any

PROJECT_BN_MODES = ("features", "channels")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_latent_dist(value: Any) -> str:
    if value not in LATENT_DISTS:
        raise ValueError(f"latent_dist must be one of {LATENT_DISTS}, got {value!r}.")
    return value


def _check_norms(d_batchnorm: Any, d_layernorm: Any) -> bool:
    """Returns ``bool(d_batchnorm)``; refuses BatchNorm and LayerNorm together."""
    if d_batchnorm and d_layernorm:
        raise ValueError(
            "d_layernorm=True replaces BatchNorm in D: also set d_batchnorm=False "
            "(e.g. --config.model.d_kwargs.d_batchnorm=False)."
        )
    return bool(d_batchnorm)


def _check_kernel(kernel_size: Any) -> int:
    return check_int("kernel_size", kernel_size)


@register("dcgan_g")
class DCGANGenerator(nnx.Module):
    """Official DCGAN generator (TF ``generator_dcgan``, ``generator_no_bn``, ``generator_digit``).

    ``x = tanh(deconv_n(relu(BN(... relu(BN(linear(z)))))))``; see the module docstring for the
    shapes. With the defaults (64 px, b=64, z=100, k=5, per-feature first BN): 5,150,723
    parameters; 128 px (cats): 7,682,051. ``g_batchnorm=False, latent_dim=1024`` is the ICCV
    stability G (``stability_comparison/*/dcgan64.py``): no BatchNorm, 12,702,851 parameters.

    Sources: xudonmao/improved_LSGAN ``cats/arch.py`` (``generator_dcgan``, 128 px, z 100),
    ``small_variance_datasets/arch.py`` (``generator_digit``, 28 px), xudonmao/LSGAN
    ``stability_comparison/BN_GD_ls_rms/dcgan64.py`` (``generator``, 64 px, no BN, z 1024).
    Differences: none in the network; the transposed convolutions are exact TF ``SAME``
    ``conv2d_transpose`` equivalents (kernel stored in Flax layout, see
    :mod:`lsgan_jax.models.layers` for checkpoint conversion).

    Attributes:
      latent_dim: Size of z.
      latent_dist: ``"uniform"`` (z ~ U[-1, 1], the official code) or ``"normal"``.
      image_shape: ``(H, W, C)`` of the output.
      num_classes: 0 (unconditional).
    """

    def __init__(
        self,
        *,
        image_size: int = 64,
        channels: int = 3,
        base_features: int = 64,
        latent_dim: int = 100,
        kernel_size: int = 5,
        num_upsamples: int | None = None,
        g_batchnorm: bool = True,
        project_bn: str = "features",
        bn_scale_std: float = 0.0,
        latent_dist: str = "uniform",
        deconv_impl: str = "auto",
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the generator.

        Args:
          image_size: Output height = width (official: 64 stability, 128 cats, 28 digits).
          channels: Output channels (3 RGB, 1 gray).
          base_features: b; the widths are 8b, 4b, 2b, b (official 64).
          latent_dim: Size of z (official 100 cats/digits, 1024 stability study).
          kernel_size: Deconv kernel (official 5; 4 is also common).
          num_upsamples: Number of stride-2 deconvs n; default 4 if ``image_size % 16 == 0``
            (official ``s16 = s / 16``) else 3 (digits: 4 -> 7 -> 14 -> 28).
          g_batchnorm: False removes every BatchNorm (the ICCV stability study).
          project_bn: First BN per ``"features"`` of the linear output (improved_LSGAN) or per
            ``"channels"`` after the reshape (carpedm20 DCGAN, LSGAN ``vgg.py``).
          bn_scale_std: BN gamma ~ N(1, std^2); 0 -> gamma = 1 (0.02 in
            ``stability_comparison/*/ops.py``).
          latent_dist: Distribution the trainer samples z from (official U[-1, 1]).
          deconv_impl: ``"auto"`` | ``"conv_transpose"`` | ``"subpixel"`` (same parameters,
            same numbers; see :mod:`lsgan_jax.models.layers`).
          axis_name: Mapped axis for synchronized BatchNorm statistics, or None.
          dtype: Computation dtype (e.g. ``jnp.bfloat16``); parameters are ``param_dtype``.
          param_dtype: Parameter dtype (float32).
          rngs: Initialization RNG streams.
        """
        image_size = check_int("image_size", image_size)
        channels = check_int("channels", channels)
        base_features = check_int("base_features", base_features)
        self.latent_dim = check_int("latent_dim", latent_dim)
        self.latent_dist = _check_latent_dist(latent_dist)
        kernel_size = _check_kernel(kernel_size)
        if num_upsamples is None:
            num_upsamples = 4 if image_size % 16 == 0 else 3
        n = check_int("num_upsamples", num_upsamples)
        if project_bn not in PROJECT_BN_MODES:
            raise ValueError(f"project_bn must be one of {PROJECT_BN_MODES}, got {project_bn!r}.")
        resolve_deconv_impl(deconv_impl)
        self.image_shape = (image_size, image_size, channels)
        self.num_classes = 0
        self.batchnorm = bool(g_batchnorm)
        self.project_bn = project_bn
        # Spatial sizes s_n, ..., s_1, s and widths 8b, 4b, ..., channels.
        self.sizes = tuple(_ceil_div(image_size, 2**j) for j in range(n, -1, -1))
        widths = [8 * base_features // 2**j for j in range(n)]
        if widths[-1] < 1:
            raise ValueError(
                f"base_features={base_features} is too small for {n} upsamplings "
                "(the last hidden width 8b / 2^(n-1) must be >= 1)."
            )
        self.widths = tuple(widths)
        s0, f0 = self.sizes[0], widths[0]
        common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        bn_kw = dict(axis_name=axis_name, scale_std=bn_scale_std, **common)
        self.project = linear(self.latent_dim, s0 * s0 * f0, **common)
        self.project_norm = (
            batch_norm(s0 * s0 * f0 if project_bn == "features" else f0, **bn_kw)
            if self.batchnorm
            else None
        )
        outs = widths[1:] + [channels]
        self.deconvs = nnx.List(
            [
                ConvTranspose2x(i, o, kernel_size=kernel_size, impl=deconv_impl, **common)
                for i, o in zip(widths, outs, strict=True)
            ]
        )
        self.norms = nnx.List([batch_norm(o, **bn_kw) for o in outs[:-1]] if self.batchnorm else [])

    def __call__(
        self, z: jax.Array, *, labels: jax.Array | None = None, train: bool = True
    ) -> jax.Array:
        """Maps latents ``(B, latent_dim)`` to images ``(B, H, W, C)`` in [-1, 1].

        Args:
          z: Latent batch.
          labels: Ignored (unconditional model).
          train: True: BatchNorm uses batch statistics and updates its running averages;
            False: running averages (sampling).
        """
        del labels
        check_latent(z, self.latent_dim, owner=type(self).__name__)
        s0, f0 = self.sizes[0], self.widths[0]
        h = self.project(z)
        if self.project_norm is not None and self.project_bn == "features":
            h = self.project_norm(h, use_running_average=not train)
        h = h.reshape(h.shape[0], s0, s0, f0)
        if self.project_norm is not None and self.project_bn == "channels":
            h = self.project_norm(h, use_running_average=not train)
        h = jax.nn.relu(h)
        last = len(self.deconvs) - 1
        for j, deconv in enumerate(self.deconvs):
            size = self.sizes[j + 1]
            h = deconv(h, output_size=(size, size))
            if j < last:
                if self.batchnorm:
                    h = self.norms[j](h, use_running_average=not train)
                h = jax.nn.relu(h)
        return jnp.tanh(h)


@register("dcgan_d")
class DCGANDiscriminator(nnx.Module):
    """Official DCGAN discriminator (TF ``discriminator_dcgan`` / ``discriminator_no_bn``).

    ``D(x) = w^T flatten(h_L) + b``, ``h_l = lrelu(BN(conv_l(h_{l-1})))`` with SAME k x k stride-2
    convs of b, 2b, 4b, 8b filters, no BN on the first; returns RAW logits ``(B, 1)``. With the
    defaults (64 px, b=64, k=5): 4,316,545 parameters; at 112 px this is the LSUN D of
    ``vgg.py`` (4,333,441, see ``lsun_d``).

    Sources: xudonmao/improved_LSGAN ``cats/arch.py`` (``discriminator_dcgan``,
    ``discriminator_no_bn``), xudonmao/LSGAN ``stability_comparison/*/dcgan64.py``
    (``discriminator``; BN removed in ``BN_GD_*``), ``vgg.py`` (``discriminator``).
    Differences: none in the network.

    Attributes:
      image_shape: ``(H, W, C)`` of the input.
      num_classes: 0 (unconditional).
    """

    def __init__(
        self,
        *,
        image_size: int = 64,
        channels: int = 3,
        base_features: int = 64,
        kernel_size: int = 5,
        num_layers: int = 4,
        d_batchnorm: bool = True,
        d_layernorm: bool = False,
        bn_scale_std: float = 0.0,
        spectral_norm: bool = False,
        deconv_impl: str = "auto",
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the discriminator.

        Args:
          image_size: Input height = width.
          channels: Input channels.
          base_features: b; filters b, 2b, 4b, 8b (official ``df_dim=64``).
          kernel_size: Conv kernel (official 5).
          num_layers: Number of stride-2 convs (official 4).
          d_batchnorm: False removes every BatchNorm (ICCV ``BN_GD_*`` runs).
          d_layernorm: LayerNorm over (H, W, C) where BatchNorm would be (:func:`layers.
            layer_norm`), as the LSGAN-GP code's D; needs ``d_batchnorm=False``.
          bn_scale_std: BN gamma ~ N(1, std^2); 0 -> gamma = 1.
          spectral_norm: Spectrally normalize every conv and the linear layer (Miyato et al.,
            2018; :mod:`lsgan_jax.models.spectral_norm`); not in the official code. Usually
            combined with ``d_batchnorm=False``.
          deconv_impl: How the input gradients of the stride-2 convs (stride-2 transposed
            convs) are computed: ``"auto"`` | ``"conv_transpose"`` (XLA) | ``"subpixel"``
            (``layers.stride2_conv``); same parameters and values.
          axis_name: Mapped axis for synchronized BatchNorm statistics, or None.
          dtype: Computation dtype; parameters are ``param_dtype``.
          param_dtype: Parameter dtype (float32).
          rngs: Initialization RNG streams.
        """
        image_size = check_int("image_size", image_size)
        channels = check_int("channels", channels)
        base_features = check_int("base_features", base_features)
        kernel_size = _check_kernel(kernel_size)
        num_layers = check_int("num_layers", num_layers)
        self.image_shape = (image_size, image_size, channels)
        self.num_classes = 0
        self.batchnorm = _check_norms(d_batchnorm, d_layernorm)
        self.layernorm = bool(d_layernorm)
        common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        widths = [base_features * 2**j for j in range(num_layers)]
        ins = [channels] + widths[:-1]
        self.convs = nnx.List(
            [
                maybe_spectral_norm(
                    conv2d(i, o, kernel_size=kernel_size, impl=deconv_impl, **common),
                    spectral_norm,
                    rngs=rngs,
                )
                for i, o in zip(ins, widths, strict=True)
            ]
        )
        if self.batchnorm:
            norms = [
                batch_norm(o, axis_name=axis_name, scale_std=bn_scale_std, **common)
                for o in widths[1:]
            ]
        else:
            norms = [layer_norm(o, **common) for o in widths[1:]] if self.layernorm else []
        self.norms = nnx.List(norms)
        final = _ceil_div(image_size, 2**num_layers)
        self.out = maybe_spectral_norm(
            linear(final * final * widths[-1], 1, **common), spectral_norm, rngs=rngs
        )

    def __call__(
        self, x: jax.Array, *, labels: jax.Array | None = None, train: bool = True
    ) -> jax.Array:
        """Maps images ``(B, H, W, C)`` to raw logits ``(B, 1)``.

        Args:
          x: Image batch, NHWC, in the data range ([-1, 1]).
          labels: Ignored (unconditional model).
          train: True: BatchNorm uses (and updates) batch statistics and spectral norm runs
            (and stores) one power iteration; False: running averages and stored vectors.
        """
        del labels
        check_images(x, self.image_shape, owner=type(self).__name__)
        h = x
        for j, conv in enumerate(self.convs):
            h = call(conv, h, train=train)
            if j > 0 and self.batchnorm:
                h = self.norms[j - 1](h, use_running_average=not train)
            elif j > 0 and self.layernorm:
                h = self.norms[j - 1](h)
            h = lrelu(h)
        return call(self.out, h.reshape(h.shape[0], -1), train=train)


#: Small-variance digits generator (TF ``generator_digit``): z(100) -> 4x4x512 -> 7 -> 14 -> 28.
#:
#: ``dcgan_g`` with the official digits defaults (``image_size=28``, ``channels=1``; everything
#: else is ``dcgan_g``'s): 28x28x1, z 100 ~ U[-1, 1], b=64, k=5, per-feature BN on the 8192
#: linear outputs, BN+ReLU after the 7x7x256 and 14x14x128 deconvs, tanh output. The 4 -> 7
#: deconv is TF ``conv2d_transpose`` with explicit ``output_shape`` 7 (SAME), reproduced exactly.
#: Source: xudonmao/improved_LSGAN ``small_variance_datasets/arch.py`` (``generator_digit``).
#: Differences: none in the network.
DigitGenerator = register("digit_g")(functools.partial(DCGANGenerator, image_size=28, channels=1))


@register("digit_d")
class DigitDiscriminator(nnx.Module):
    """Small-variance digits discriminator (TF ``discriminator_digit``), LeNet-like.

    ``x -> conv5x5/2 (20) -> lrelu -> conv5x5/2 (50) -> BN -> lrelu -> flatten -> linear 500 ->
    BN -> lrelu -> linear 1`` (raw logit ``(B, 1)``). 28 px: 28 -> 14 -> 7, flatten 2450;
    1,252,671 parameters.

    Source: xudonmao/improved_LSGAN ``small_variance_datasets/arch.py``
    (``discriminator_digit``). Differences: none in the network.

    Attributes:
      image_shape: ``(H, W, C)`` of the input.
      num_classes: 0 (unconditional).
    """

    def __init__(
        self,
        *,
        image_size: int = 28,
        channels: int = 1,
        features: tuple[int, int] = (20, 50),
        hidden: int = 500,
        kernel_size: int = 5,
        d_batchnorm: bool = True,
        d_layernorm: bool = False,
        bn_scale_std: float = 0.0,
        spectral_norm: bool = False,
        deconv_impl: str = "auto",
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the discriminator.

        Args:
          image_size: Input height = width (official 28).
          channels: Input channels (official 1).
          features: Filters of the two stride-2 convs (official 20, 50).
          hidden: Width of the hidden linear layer (official 500).
          kernel_size: Conv kernel (official 5).
          d_batchnorm: False removes both BatchNorms.
          d_layernorm: LayerNorm in their place (over every axis but the batch, as
            :func:`layers.layer_norm`); needs ``d_batchnorm=False``.
          bn_scale_std: BN gamma ~ N(1, std^2); 0 -> gamma = 1.
          spectral_norm: Spectrally normalize both convs and both linear layers (Miyato et al.,
            2018; :mod:`lsgan_jax.models.spectral_norm`); not in the official code.
          deconv_impl: Input-gradient implementation of the stride-2 convs, as in
            :class:`DCGANDiscriminator`.
          axis_name: Mapped axis for synchronized BatchNorm statistics, or None.
          dtype: Computation dtype; parameters are ``param_dtype``.
          param_dtype: Parameter dtype (float32).
          rngs: Initialization RNG streams.
        """
        image_size = check_int("image_size", image_size)
        channels = check_int("channels", channels)
        if len(tuple(features)) != 2:
            raise ValueError(f"features must be two filter counts, got {features!r}.")
        f1, f2 = (check_int("features", f) for f in features)
        hidden = check_int("hidden", hidden)
        kernel_size = _check_kernel(kernel_size)
        self.image_shape = (image_size, image_size, channels)
        self.num_classes = 0
        self.batchnorm = _check_norms(d_batchnorm, d_layernorm)
        common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        bn_kw = dict(axis_name=axis_name, scale_std=bn_scale_std, **common)
        sn = dict(enabled=spectral_norm, rngs=rngs)
        ck = dict(kernel_size=kernel_size, impl=deconv_impl, **common)
        self.conv1 = maybe_spectral_norm(conv2d(channels, f1, **ck), **sn)
        self.conv2 = maybe_spectral_norm(conv2d(f1, f2, **ck), **sn)
        final = _ceil_div(image_size, 4)
        self.hidden = maybe_spectral_norm(linear(final * final * f2, hidden, **common), **sn)
        self.out = maybe_spectral_norm(linear(hidden, 1, **common), **sn)
        if self.batchnorm:
            self.norm2, self.norm3 = batch_norm(f2, **bn_kw), batch_norm(hidden, **bn_kw)
        elif d_layernorm:
            self.norm2 = layer_norm(f2, **common)
            self.norm3 = layer_norm(hidden, ndim=2, **common)
        else:
            self.norm2 = self.norm3 = None

    def __call__(
        self, x: jax.Array, *, labels: jax.Array | None = None, train: bool = True
    ) -> jax.Array:
        """Maps images ``(B, H, W, C)`` to raw logits ``(B, 1)``; ``labels`` is ignored."""
        del labels
        check_images(x, self.image_shape, owner=type(self).__name__)
        ura = not train
        h = lrelu(call(self.conv1, x, train=train))
        h = call(self.conv2, h, train=train)
        if self.norm2 is not None:
            h = self.norm2(h, use_running_average=ura) if self.batchnorm else self.norm2(h)
        h = lrelu(h).reshape(x.shape[0], -1)
        h = call(self.hidden, h, train=train)
        if self.norm3 is not None:
            h = self.norm3(h, use_running_average=ura) if self.batchnorm else self.norm3(h)
        return call(self.out, lrelu(h), train=train)
