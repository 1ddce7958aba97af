"""The ICCV conditional LSGAN (handwritten Chinese characters): xudonmao/LSGAN ``mcgan.py``.

Registered as ``conditional_g`` / ``conditional_d`` (official settings: ``docs/models.md``).
The class label ``y`` (int ids ``(B,)``, one-hot encoded inside; or one-hot / soft rows
``(B, num_classes)``) is first mapped linearly to 256 features -- "a linear mapping Phi(y)
because one-hot vectors over thousands of classes are too costly" -- by a layer of its own in G
(``g_liner``) and in D (``d_liner``), and then concatenated at these points:

Generator (28x28x1, ``s4 = s / 4``, ``s2 = s / 2``)::

    [z (1024, U[-1, 1]), Phi_G(y) (256)] -> linear 128*7*7 -> BN (per feature) -> ReLU
      -> reshape 7x7x128 -> deconv 5x5 /2 128 -> BN -> ReLU -> deconv 5x5 /2 1 -> sigmoid | tanh

Discriminator::

    x -> conv 5x5 /2 (1 + 256) -> lrelu -> concat tiled Phi_D(y) -> conv 5x5 /2 (64 + 256) -> BN
      -> lrelu -> flatten -> concat Phi_D(y) -> linear 1024 -> BN -> lrelu -> concat Phi_D(y)
      -> linear 1 (RAW logit)

With 3,740 classes (HWDB1.0): G 9,417,857 and D 21,392,155 trainable parameters (BN gamma/beta
included, running statistics not). ``g_bn0`` of the official code is defined but never used and
is therefore absent here.

Output range: the official G ends in a **sigmoid** (pixels ``X / 255`` in [0, 1]). The default
here is ``output="tanh"`` so the model fits this codebase's [-1, 1] image pipeline; pass
``output="sigmoid"`` (and feed D [0, 1] images) for the official setting. The two differ only by
``sigmoid(a) = (tanh(a / 2) + 1) / 2``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lsgan_jax.models.layers import (
    ConvTranspose2x,
    batch_norm,
    check_images,
    check_int,
    check_latent,
    conv2d,
    linear,
    lrelu,
    resolve_deconv_impl,
)
from lsgan_jax.models.mlp import LATENT_DISTS
from lsgan_jax.models.registry import register
from lsgan_jax.models.spectral_norm import call, maybe_spectral_norm

__all__ = ["OUTPUTS", "ConditionalDiscriminator", "ConditionalGenerator", "embed_labels"]

Dtype = Any

OUTPUTS = ("tanh", "sigmoid")

#: Number of HWDB1.0 classes used by the official code (``icdar.py``, ``y_dim=3740``).
HWDB_CLASSES = 3740


def embed_labels(
    proj: nnx.Module,
    labels: jax.Array | None,
    num_classes: int,
    owner: str,
    *,
    train: bool = True,
) -> jax.Array:
    """``Phi(y) = onehot(y) W + b``: the official ``linear(y, 256)`` on one-hot labels.

    Args:
      proj: The label ``nnx.Linear(num_classes -> features)``, possibly spectrally normalized
        (:class:`~lsgan_jax.models.spectral_norm.SpectralNorm`).
      labels: Int class ids ``(B,)`` (one-hot encoded here; ids outside ``[0, num_classes)``
        give the all-zero code, as ``jax.nn.one_hot``), or float rows ``(B, num_classes)``
        (one-hot or soft labels, used as given).
      num_classes: Number of classes.
      owner: Model name for error messages.
      train: Passed to a spectrally normalized ``proj`` (power-iteration update or not).

    Returns:
      ``(B, features)``.

    Raises:
      ValueError: ``labels`` is None or has the wrong shape/dtype.
    """
    if labels is None:
        raise ValueError(f"{owner} is class-conditional: pass labels=<int class ids (batch,)>.")
    labels = jnp.asarray(labels)
    if labels.ndim == 1 and jnp.issubdtype(labels.dtype, jnp.integer):
        dtype = getattr(proj, "layer", proj).dtype or jnp.float32
        y = jax.nn.one_hot(labels, num_classes, dtype=dtype)
    elif labels.ndim == 2 and labels.shape[-1] == num_classes:
        y = labels
    else:
        raise ValueError(
            f"{owner} expects labels as int class ids of shape (batch,) or one-hot rows of "
            f"shape (batch, {num_classes}), got shape {tuple(labels.shape)} dtype {labels.dtype}."
        )
    return call(proj, y, train=train)


def _check_batch(labels_emb: jax.Array, batch: int, owner: str) -> None:
    if labels_emb.shape[0] != batch:
        raise ValueError(
            f"{owner}: labels have batch size {labels_emb.shape[0]} but the inputs have {batch}."
        )


@register("conditional_g")
class ConditionalGenerator(nnx.Module):
    """Conditional LSGAN generator (xudonmao/LSGAN ``mcgan.py``, ``generator``/``sampler``).

    ``x = out(deconv2(relu(BN(deconv1(reshape(relu(BN(linear([z, Phi_G(y)])))))))))`` with
    ``out`` tanh (default) or sigmoid (official); layout in the module docstring. The first BN
    normalizes each of the ``b * s4 * s4`` linear outputs (``g_bn1`` on the 2-D tensor, before
    the reshape). 9,417,857 parameters with 3,740 classes.

    Source: xudonmao/LSGAN ``mcgan.py`` (``generator``), ``train_chn.py`` (``z_dim=1024``
    U[-1, 1], ``c_dim=1``, 28 px), ``ops.py`` (init, BN decay 0.9 / eps 1e-5). Differences:
    ``output="tanh"`` by default (official ``"sigmoid"``), see the module docstring.

    Attributes:
      latent_dim: Size of z (official 1024).
      latent_dist: ``"uniform"`` (U[-1, 1], official).
      image_shape: ``(H, W, C)``.
      num_classes: Number of classes (official 3,740).
      output: ``"tanh"`` ([-1, 1]) or ``"sigmoid"`` ([0, 1]).
    """

    def __init__(
        self,
        *,
        num_classes: int = HWDB_CLASSES,
        image_size: int = 28,
        channels: int = 1,
        base_features: int = 128,
        label_features: int = 256,
        latent_dim: int = 1024,
        kernel_size: int = 5,
        output: str = "tanh",
        latent_dist: str = "uniform",
        deconv_impl: str = "auto",
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the generator.

        Args:
          num_classes: Number of classes (official ``y_dim=3740``).
          image_size: Output height = width, a multiple of 4 (official 28).
          channels: Output channels (official 1).
          base_features: Width of the 7x7 and 14x14 maps (official 128).
          label_features: Size of ``Phi_G(y)`` (official 256).
          latent_dim: Size of z (official 1024).
          kernel_size: Deconv kernel (official 5).
          output: ``"tanh"`` (default, [-1, 1]) or ``"sigmoid"`` (official, [0, 1]).
          latent_dist: Distribution the trainer samples z from (official ``"uniform"``).
          deconv_impl: ``"auto"`` | ``"conv_transpose"`` | ``"subpixel"`` (identical numbers).
          axis_name: Mapped axis for synchronized BatchNorm statistics, or None.
          dtype: Computation dtype; parameters are ``param_dtype``.
          param_dtype: Parameter dtype (float32).
          rngs: Initialization RNG streams.
        """
        self.num_classes = check_int("num_classes", num_classes)
        image_size = check_int("image_size", image_size)
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}.")
        channels = check_int("channels", channels)
        b = check_int("base_features", base_features)
        label_features = check_int("label_features", label_features)
        self.latent_dim = check_int("latent_dim", latent_dim)
        kernel_size = check_int("kernel_size", kernel_size)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
        if latent_dist not in LATENT_DISTS:
            raise ValueError(f"latent_dist must be one of {LATENT_DISTS}, got {latent_dist!r}.")
        resolve_deconv_impl(deconv_impl)
        self.output = output
        self.latent_dist = latent_dist
        self.image_shape = (image_size, image_size, channels)
        self.start = image_size // 4
        self.width = b
        common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        dk = dict(kernel_size=kernel_size, impl=deconv_impl, **common)
        self.label_proj = linear(self.num_classes, label_features, **common)  # g_liner
        self.project = linear(self.latent_dim + label_features, b * self.start**2, **common)
        self.norm1 = batch_norm(b * self.start**2, axis_name=axis_name, **common)  # g_bn1
        self.deconv2 = ConvTranspose2x(b, b, **dk)  # g_h2
        self.norm2 = batch_norm(b, axis_name=axis_name, **common)  # g_bn2
        self.deconv3 = ConvTranspose2x(b, channels, **dk)  # g_h3

    def __call__(
        self, z: jax.Array, *, labels: jax.Array | None = None, train: bool = True
    ) -> jax.Array:
        """Maps latents ``(B, latent_dim)`` and labels to images ``(B, H, W, C)``.

        Args:
          z: Latent batch.
          labels: Int class ids ``(B,)`` or one-hot rows ``(B, num_classes)``; required.
          train: True: BatchNorm uses batch statistics and updates its running averages;
            False: running averages (``sampler``).

        Returns:
          Images in [-1, 1] (``output="tanh"``) or [0, 1] (``output="sigmoid"``).
        """
        owner = type(self).__name__
        check_latent(z, self.latent_dim, owner=owner)
        y = embed_labels(self.label_proj, labels, self.num_classes, owner)
        _check_batch(y, z.shape[0], owner)
        ura = not train
        h = self.project(jnp.concatenate([z.astype(y.dtype), y], axis=-1))
        h = jax.nn.relu(self.norm1(h, use_running_average=ura))
        h = h.reshape(z.shape[0], self.start, self.start, self.width)
        size = 2 * self.start
        h = jax.nn.relu(
            self.norm2(self.deconv2(h, output_size=(size, size)), use_running_average=ura)
        )
        h = self.deconv3(h, output_size=self.image_shape[:2])
        return jnp.tanh(h) if self.output == "tanh" else jax.nn.sigmoid(h)


@register("conditional_d")
class ConditionalDiscriminator(nnx.Module):
    """Conditional LSGAN discriminator (xudonmao/LSGAN ``mcgan.py``, ``discriminator``).

    Layout in the module docstring: the projected label ``Phi_D(y)`` is tiled onto the first
    feature map, and concatenated to the flattened features and to the hidden layer. Returns RAW
    logits ``(B, 1)`` (``h3_logits``; ``h3_sigmoid`` is not used by the LS loss). 21,392,155
    parameters with 3,740 classes.

    Source: xudonmao/LSGAN ``mcgan.py`` (``discriminator``), ``ops.py`` (``conv_cond_concat``,
    ``conv2d`` truncated N(0, 0.02), ``linear`` N(0, 0.02), BN). Differences: none in the network.

    Attributes:
      image_shape: ``(H, W, C)`` of the input.
      num_classes: Number of classes.
    """

    def __init__(
        self,
        *,
        num_classes: int = HWDB_CLASSES,
        image_size: int = 28,
        channels: int = 1,
        base_features: int = 64,
        label_features: int = 256,
        hidden: int = 1024,
        kernel_size: int = 5,
        spectral_norm: bool = False,
        deconv_impl: str = "auto",
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the discriminator.

        Args:
          num_classes: Number of classes (official 3,740).
          image_size: Input height = width (official 28).
          channels: Input channels (official ``c_dim=1``).
          base_features: Filters of the second conv besides the label ones (official 64; the
            conv has ``base_features + label_features`` filters).
          label_features: Size of ``Phi_D(y)`` (official 256).
          hidden: Width of the hidden linear layer (official 1024).
          kernel_size: Conv kernel (official 5).
          spectral_norm: Spectrally normalize every weight layer -- the label projection, both
            convs and both linear layers (Miyato et al., 2018;
            :mod:`lsgan_jax.models.spectral_norm`); not in the official code.
          deconv_impl: Input-gradient implementation of the stride-2 convs (``"auto"`` |
            ``"conv_transpose"`` | ``"subpixel"``; same values), see ``layers.conv2d``.
          axis_name: Mapped axis for synchronized BatchNorm statistics, or None.
          dtype: Computation dtype; parameters are ``param_dtype``.
          param_dtype: Parameter dtype (float32).
          rngs: Initialization RNG streams.
        """
        self.num_classes = check_int("num_classes", num_classes)
        image_size = check_int("image_size", image_size)
        channels = check_int("channels", channels)
        b = check_int("base_features", base_features)
        ly = check_int("label_features", label_features)
        hidden = check_int("hidden", hidden)
        kernel_size = check_int("kernel_size", kernel_size)
        self.image_shape = (image_size, image_size, channels)
        common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        ck = dict(kernel_size=kernel_size, impl=deconv_impl, **common)
        sn = dict(enabled=spectral_norm, rngs=rngs)
        self.label_proj = maybe_spectral_norm(linear(self.num_classes, ly, **common), **sn)
        self.conv0 = maybe_spectral_norm(conv2d(channels, channels + ly, **ck), **sn)
        self.conv1 = maybe_spectral_norm(conv2d(channels + 2 * ly, b + ly, **ck), **sn)
        self.norm1 = batch_norm(b + ly, axis_name=axis_name, **common)  # d_bn1
        final = -(-image_size // 4)
        self.hidden = maybe_spectral_norm(
            linear(final * final * (b + ly) + ly, hidden, **common), **sn
        )  # d_h2_lin
        self.norm2 = batch_norm(hidden, axis_name=axis_name, **common)  # d_bn2
        self.out = maybe_spectral_norm(linear(hidden + ly, 1, **common), **sn)  # d_h3_logits

    def __call__(
        self, x: jax.Array, *, labels: jax.Array | None = None, train: bool = True
    ) -> jax.Array:
        """Maps images ``(B, H, W, C)`` and labels to raw logits ``(B, 1)``.

        Args:
          x: Image batch, NHWC, in the generator's output range.
          labels: Int class ids ``(B,)`` or one-hot rows ``(B, num_classes)``; required.
          train: True: BatchNorm uses (and updates) batch statistics; False: running averages.
        """
        owner = type(self).__name__
        check_images(x, self.image_shape, owner=owner)
        y = embed_labels(self.label_proj, labels, self.num_classes, owner, train=train)
        _check_batch(y, x.shape[0], owner)
        ura = not train
        h = lrelu(call(self.conv0, x, train=train))
        y_map = jnp.broadcast_to(y[:, None, None, :], (*h.shape[:3], y.shape[-1]))
        h = jnp.concatenate([h, y_map.astype(h.dtype)], axis=-1)  # conv_cond_concat
        h = lrelu(self.norm1(call(self.conv1, h, train=train), use_running_average=ura))
        h = jnp.concatenate([h.reshape(x.shape[0], -1), y.astype(h.dtype)], axis=-1)
        h = lrelu(self.norm2(call(self.hidden, h, train=train), use_running_average=ura))
        h = jnp.concatenate([h, y.astype(h.dtype)], axis=-1)
        return call(self.out, h, train=train)
