"""The ICCV LSGAN scene model (LSUN, 112x112): xudonmao/LSGAN ``vgg.py``, in Flax NNX.

Registered as ``lsun_g`` / ``lsun_d`` (architecture and official settings: ``docs/models.md``).

Generator ("DCGAN plus two stride-1 deconvolutions after the top two deconvolutions, motivated by
VGG"); all deconvs 3x3, TF ``conv2d_transpose`` SAME; BN = TF decay 0.9, eps 1e-5 with gamma and
beta, per channel (``g_bn0`` is applied after the reshape)::

    z (1024, U[-1, 1]) -> linear 7*7*256 -> reshape -> BN -> ReLU          7 x 7 x 256
    deconv /2 256 -> BN -> ReLU                                            14 x 14 x 256
    deconv /1 256 -> BN -> ReLU                                            14 x 14 x 256
    deconv /2 256 -> BN -> ReLU                                            28 x 28 x 256
    deconv /1 256 -> BN -> ReLU                                            28 x 28 x 256
    deconv /2 128 -> BN -> ReLU                                            56 x 56 x 128
    deconv /2 64  -> BN -> ReLU                                            112 x 112 x 64
    deconv /1 3 -> tanh                                                    112 x 112 x 3

15,591,427 trainable parameters (kernels, biases, BN gamma/beta; the count of
``tf.trainable_variables()`` for ``vgg.py``; running statistics not included).

Discriminator: the DCGAN D (``dcgan_d``) at 112 px -- conv 5x5 /2 64 (lrelu 0.2, no BN), 128,
256, 512 (BN, lrelu), flatten 7*7*512, linear -> 1 raw logit; 4,333,441 parameters.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lsgan_jax.models.dcgan import DCGANDiscriminator
from lsgan_jax.models.layers import (
    ConvTranspose,
    batch_norm,
    check_int,
    check_latent,
    linear,
    resolve_deconv_impl,
)
from lsgan_jax.models.mlp import LATENT_DISTS
from lsgan_jax.models.registry import register

__all__ = ["LSUNDiscriminator", "LSUNGenerator"]

Dtype = Any


@register("lsun_g")
class LSUNGenerator(nnx.Module):
    """LSGAN 112x112 scene generator (xudonmao/LSGAN ``vgg.py``, ``generator``/``sampler``).

    Layout in the module docstring; with ``base_features=b`` the widths are 4b (the linear
    output and the first four deconvs), 2b, b, then ``channels`` (official b = 64:
    256, 128, 64, 3). ``image_size`` must be a multiple of 16 (start ``s / 16``). 15,591,427
    parameters with the defaults.

    Source: xudonmao/LSGAN ``vgg.py`` (``generator``; ``sampler`` = the same with
    ``train=False``), ``ops.py`` (``deconv2d`` N(0, 0.02) kernels, ``linear`` N(0, 0.02), zero
    biases, ``batch_norm`` = ``tf.contrib.layers.batch_norm(decay=0.9, epsilon=1e-5,
    scale=True)``), ``train_lsun.py`` (``z_dim=1024``, U[-1, 1]). Differences: none in the
    network; kernels are stored in Flax layout (see :mod:`lsgan_jax.models.layers` to convert a
    TF checkpoint).

    Attributes:
      latent_dim: Size of z (1024).
      latent_dist: ``"uniform"`` (U[-1, 1], official).
      image_shape: ``(H, W, C)``.
      num_classes: 0 (unconditional).
    """

    def __init__(
        self,
        *,
        image_size: int = 112,
        channels: int = 3,
        base_features: int = 64,
        latent_dim: int = 1024,
        kernel_size: int = 3,
        latent_dist: str = "uniform",
        deconv_impl: str = "auto",
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the generator.

        Args:
          image_size: Output height = width, a multiple of 16 (official 112).
          channels: Output channels (official ``c_dim=3``).
          base_features: b; widths 4b, 2b, b (official 64).
          latent_dim: Size of z (official 1024).
          kernel_size: Deconv kernel (official 3).
          latent_dist: Distribution the trainer samples z from (official ``"uniform"``).
          deconv_impl: Stride-2 deconv implementation, ``"auto"`` | ``"conv_transpose"`` |
            ``"subpixel"`` (identical numbers; see :mod:`lsgan_jax.models.layers`).
          axis_name: Mapped axis for synchronized BatchNorm statistics, or None.
          dtype: Computation dtype; parameters are ``param_dtype``.
          param_dtype: Parameter dtype (float32).
          rngs: Initialization RNG streams.
        """
        image_size = check_int("image_size", image_size)
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {image_size}.")
        channels = check_int("channels", channels)
        b = check_int("base_features", base_features)
        self.latent_dim = check_int("latent_dim", latent_dim)
        if latent_dist not in LATENT_DISTS:
            raise ValueError(f"latent_dist must be one of {LATENT_DISTS}, got {latent_dist!r}.")
        self.latent_dist = latent_dist
        kernel_size = check_int("kernel_size", kernel_size)
        resolve_deconv_impl(deconv_impl)
        self.image_shape = (image_size, image_size, channels)
        self.num_classes = 0
        self.start = image_size // 16
        self.width0 = 4 * b
        common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        # (in, out, stride) of g_h1_1, g_h1_2, g_h2_1, g_h2_2, g_h3_1, g_h4_1, g_h5.
        plan = [
            (4 * b, 4 * b, 2),
            (4 * b, 4 * b, 1),
            (4 * b, 4 * b, 2),
            (4 * b, 4 * b, 1),
            (4 * b, 2 * b, 2),
            (2 * b, b, 2),
            (b, channels, 1),
        ]
        self.project = linear(self.latent_dim, self.start**2 * self.width0, **common)
        self.project_norm = batch_norm(self.width0, axis_name=axis_name, **common)
        self.deconvs = nnx.List(
            [
                ConvTranspose(i, o, kernel_size=kernel_size, stride=s, impl=deconv_impl, **common)
                for i, o, s in plan
            ]
        )
        self.norms = nnx.List(
            [batch_norm(o, axis_name=axis_name, **common) for _, o, _ in plan[:-1]]
        )

    def __call__(
        self, z: jax.Array, *, labels: jax.Array | None = None, train: bool = True
    ) -> jax.Array:
        """Maps latents ``(B, latent_dim)`` to images ``(B, H, W, C)`` in [-1, 1].

        Args:
          z: Latent batch.
          labels: Ignored (unconditional model).
          train: True: BatchNorm uses batch statistics and updates its running averages
            (``generator``); False: running averages (``sampler``).
        """
        del labels
        check_latent(z, self.latent_dim, owner=type(self).__name__)
        ura = not train
        h = self.project(z).reshape(z.shape[0], self.start, self.start, self.width0)
        h = jax.nn.relu(self.project_norm(h, use_running_average=ura))
        for deconv, norm in zip(self.deconvs[:-1], self.norms, strict=True):
            h = jax.nn.relu(norm(deconv(h), use_running_average=ura))
        return jnp.tanh(self.deconvs[-1](h))


#: LSGAN 112x112 scene discriminator (xudonmao/LSGAN ``vgg.py``, ``discriminator``): the DCGAN D
#: (:class:`~lsgan_jax.models.dcgan.DCGANDiscriminator`) with ``image_size=112`` (every other
#: default is ``dcgan_d``'s): conv 5x5 /2 with 64, 128, 256, 512 filters (BN on the last three,
#: lrelu 0.2), flatten 7*7*512 = 25,088, linear -> 1 RAW logit (``h4``; the official
#: ``h4_sigmoid`` is not used by the LS loss). Source: xudonmao/LSGAN ``vgg.py`` and ``ops.py``
#: (``conv2d``: truncated N(0, 0.02), SAME). Differences: none in the network.
LSUNDiscriminator = register("lsun_d")(functools.partial(DCGANDiscriminator, image_size=112))
