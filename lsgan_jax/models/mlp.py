"""MLP generators and discriminators for the 2-D mixture-of-Gaussians studies.

Two families, each a generator/discriminator pair registered by name:

* ``mixture_mlp_g`` / ``mixture_mlp_d`` -- the official LSGAN mixture networks (Protocol B), from
  xudonmao/LSGAN ``stability_comparison/mixture_gaussian/ls.py`` (itself based on
  poolio/unrolled_gan): tanh MLPs with orthogonal(gain 1.4) weights and zero biases.
* ``pacgan_g`` / ``pacgan_d`` -- the PacGAN 2D-ring/2D-grid networks (Protocol A), from
  fjxmlzn/PacGAN ``synthetic_data_experiments/2DRing_GAN&PacGAN/pacgan_task.py``
  (``create_model_brick``), built on IshmaelBelghazi/ALI: a BatchNorm+ReLU generator and a
  maxout discriminator whose input is ``pack`` samples concatenated along features.

Architectures and the official training settings are in ``docs/models.md``; see ``registry.py``
for the module conventions (``train`` flag, raw logits, ``axis_name``, ``dtype``) and the functional
split/merge pattern the trainer uses.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lsgan_jax.models.latent import LATENT_DISTS
from lsgan_jax.models.registry import register
from lsgan_jax.models.spectral_norm import call, maybe_spectral_norm

__all__ = [
    "LATENT_DISTS",
    "LinearMaxout",
    "MixtureMLPDiscriminator",
    "MixtureMLPGenerator",
    "PacGANDiscriminator",
    "PacGANGenerator",
]

Dtype = Any

#: PacGAN/ALI ``IsotropicGaussian(0.02)``: weights ~ N(0, 0.02^2).
_PACGAN_INIT_STD = 0.02
_PACGAN_KERNEL_INIT = nnx.initializers.normal(stddev=_PACGAN_INIT_STD)
_ZEROS_INIT = nnx.initializers.zeros_init()


def _check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def _check_latent_dist(value: Any) -> str:
    if value not in LATENT_DISTS:
        raise ValueError(f"latent_dist must be one of {LATENT_DISTS}, got {value!r}.")
    return value


def _check_last_dim(x: jax.Array, expected: int, *, what: str, owner: str) -> None:
    if x.ndim < 2 or x.shape[-1] != expected:
        raise ValueError(
            f"{owner} expects {what} of shape (batch, {expected}), got shape {tuple(x.shape)}."
        )


# --------------------------------------------------------------------------------------------
# Official LSGAN mixture MLPs (Protocol B).
# --------------------------------------------------------------------------------------------


@register("mixture_mlp_g")
class MixtureMLPGenerator(nnx.Module):
    """Official LSGAN mixture-of-Gaussians generator: z -> [Linear -> tanh] x depth -> Linear.

    ``x = W_out h_depth + b_out``, ``h_k = tanh(W_k h_{k-1} + b_k)``, ``h_0 = z``, z ~ N(0, I).
    With the defaults: 256 -> 128 tanh -> 128 tanh -> 2 (49,666 parameters).

    Source: xudonmao/LSGAN ``stability_comparison/mixture_gaussian/ls.py``, ``generator()``:
    ``slim.stack(z, slim.fully_connected, [n_hidden] * n_layer, activation_fn=tf.nn.tanh)`` then a
    linear ``slim.fully_connected(h, output_dim)``, all under
    ``weights_initializer=tf.orthogonal_initializer(gain=1.4)``; slim's default zero biases;
    ``z_dim=256`` from ``ds.Normal(0, 1)``. Differences: none in the network; the orthogonal
    init is JAX's (same distribution as TF's: QR of a Gaussian matrix, orthonormal along the
    smaller dimension, times ``gain``), so the draws differ.

    Attributes:
      latent_dim: Size of z.
      latent_dist: ``"normal"`` (z ~ N(0, I)), as in the official code.
    """

    def __init__(
        self,
        *,
        latent_dim: int = 256,
        hidden: int = 128,
        depth: int = 2,
        data_dim: int = 2,
        gain: float = 1.4,
        latent_dist: str = "normal",
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the generator.

        Args:
          latent_dim: Size of z (official ``z_dim=256``).
          hidden: Width of each hidden layer (official ``n_hidden=128``).
          depth: Number of tanh hidden layers (official ``n_layer=2``).
          data_dim: Output dimension (2 for 2-D mixtures).
          gain: Orthogonal-init scale for every weight matrix (official 1.4).
          latent_dist: Distribution the trainer samples z from: ``"normal"`` or ``"uniform"``.
          axis_name: Accepted so the trainer can pass it to every model; unused (no
            BatchNorm in this network).
          dtype: Computation dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
          rngs: Initialization RNG streams.
        """
        del axis_name  # No BatchNorm here.
        self.latent_dim = _check_int("latent_dim", latent_dim)
        self.latent_dist = _check_latent_dist(latent_dist)
        self.data_dim = _check_int("data_dim", data_dim)
        hidden = _check_int("hidden", hidden)
        depth = _check_int("depth", depth)
        kw = dict(
            kernel_init=nnx.initializers.orthogonal(scale=gain),
            bias_init=_ZEROS_INIT,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        dims = [latent_dim] + [hidden] * depth
        self.layers = nnx.List([nnx.Linear(i, o, **kw) for i, o in itertools.pairwise(dims)])
        self.out = nnx.Linear(hidden, data_dim, **kw)

    def __call__(self, z: jax.Array, *, train: bool = True) -> jax.Array:
        """Maps latents ``(B, latent_dim)`` to samples ``(B, data_dim)``.

        ``train`` is accepted for interface uniformity; this network has no BatchNorm/dropout.
        """
        del train
        _check_last_dim(z, self.latent_dim, what="z", owner=type(self).__name__)
        h = z
        for layer in self.layers:
            h = jnp.tanh(layer(h))
        return self.out(h)


@register("mixture_mlp_d")
class MixtureMLPDiscriminator(nnx.Module):
    """Official LSGAN mixture-of-Gaussians discriminator: x -> [Linear -> tanh] x depth -> Linear.

    Returns the raw linear output ``D(x) = w_out^T h_depth + b_out`` of shape ``(B, 1)``, no
    sigmoid (the LS loss is applied to it directly). With the defaults: 2 -> 128 tanh -> 128 tanh
    -> 1 (17,025 parameters).

    Source: xudonmao/LSGAN ``stability_comparison/mixture_gaussian/ls.py``, ``discriminator()``
    (``log_d = slim.fully_connected(h, 1, activation_fn=None)``), orthogonal(gain=1.4) weights and
    zero biases. Differences: none in the network with the default options.

    Options (off by default, so the default network is the official one):

    * ``layer_norm=True``: ``h_k = tanh(LN(W_k h_{k-1} + b_k))`` with
      ``LN(y) = γ ⊙ (y − mean(y)) / sqrt(var(y) + ε) + β`` over the features of each sample
      (Ba et al., 2016), γ = 1, β = 0 at init, ε = 1e-5. The LSGAN-GP code of the TPAMI paper
      (xudonmao/improved_LSGAN ``difficult_architectures/*/gan_64x64.py``, from
      igul222/improved_wgan_training) normalizes D with layer norm in place of batch norm, between
      each hidden linear map and its nonlinearity, with ``tf.nn.batch_normalization``'s ε = 1e-5;
      this option does the same in the mixture MLP (every hidden layer, not the output layer).
    * ``spectral_norm=True``: every weight matrix (hidden and output) is divided by its largest
      singular value, estimated by one power iteration per training call (Miyato et al., 2018);
      see :mod:`lsgan_jax.models.spectral_norm`.
    """

    def __init__(
        self,
        *,
        hidden: int = 128,
        depth: int = 2,
        data_dim: int = 2,
        gain: float = 1.4,
        layer_norm: bool = False,
        spectral_norm: bool = False,
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the discriminator.

        Args:
          hidden: Width of each hidden layer (official 128).
          depth: Number of tanh hidden layers (official 2).
          data_dim: Input dimension (2 for 2-D mixtures).
          gain: Orthogonal-init scale for every weight matrix (official 1.4).
          layer_norm: Layer-normalize each hidden layer before its tanh (as the LSGAN-GP code's
            D does); False (the official mixture network) by default.
          spectral_norm: Spectrally normalize every linear layer (Miyato et al., 2018); False
            (the official network) by default.
          axis_name: Accepted so the trainer can pass it to every model; unused (no
            BatchNorm in this network).
          dtype: Computation dtype; parameters stay float32.
          rngs: Initialization RNG streams.
        """
        del axis_name  # No BatchNorm here.
        self.data_dim = _check_int("data_dim", data_dim)
        hidden = _check_int("hidden", hidden)
        depth = _check_int("depth", depth)
        kw = dict(
            kernel_init=nnx.initializers.orthogonal(scale=gain),
            bias_init=_ZEROS_INIT,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        dims = [data_dim] + [hidden] * depth
        sn = dict(enabled=spectral_norm, rngs=rngs)
        self.layers = nnx.List(
            [maybe_spectral_norm(nnx.Linear(i, o, **kw), **sn) for i, o in itertools.pairwise(dims)]
        )
        self.out = maybe_spectral_norm(nnx.Linear(hidden, 1, **kw), **sn)
        if not isinstance(layer_norm, bool):
            raise ValueError(f"layer_norm must be True or False, got {layer_norm!r}.")
        self.norms = nnx.List(
            [
                nnx.LayerNorm(hidden, epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
                for _ in range(depth)
            ]
            if layer_norm
            else []
        )

    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        """Maps samples ``(B, data_dim)`` to raw logits ``(B, 1)``.

        ``train`` matters only with ``spectral_norm``: True runs (and stores) one power
        iteration per layer, False uses the stored vectors.
        """
        _check_last_dim(x, self.data_dim, what="x", owner=type(self).__name__)
        h = x
        for k, layer in enumerate(self.layers):
            h = call(layer, h, train=train)
            if self.norms:
                h = self.norms[k](h)
            h = jnp.tanh(h)
        return call(self.out, h, train=train)


# --------------------------------------------------------------------------------------------
# PacGAN 2-D networks (Protocol A).
# --------------------------------------------------------------------------------------------


@register("pacgan_g")
class PacGANGenerator(nnx.Module):
    """PacGAN 2-D generator: z -> [Linear(no bias) -> BatchNorm -> ReLU] x depth -> Linear.

    ``h_k = relu(BN(W_k h_{k-1}))``, ``x = W_out h_depth + b_out``, z ~ N(0, I_2). With the
    defaults: 2 -> 400 -> 400 -> 400 -> 400 -> 2 (484,802 parameters, plus 3,200 BatchNorm
    statistics).

    Source: fjxmlzn/PacGAN ``synthetic_data_experiments/2DRing_GAN&PacGAN/pacgan_task.py``
    (``create_model_brick``: blocks ``MLP(..., use_bias=False)`` with
    ``Sequence([BatchNormalization, Rectifier])`` activations and an ``Identity`` output whose
    ``use_bias`` is switched back on; ``IsotropicGaussian(0.02)`` weights, zero biases); population
    statistics updated as ``pop = 0.95 * pop + 0.05 * batch`` (``create_models``); ``z`` from
    ``circle_gaussian_mixture(num_modes=1, r=0, std=1)`` = N(0, I).

    BatchNorm: Flax ``nnx.BatchNorm`` updates ``ra = momentum * ra + (1 - momentum) * batch``
    (``flax/nnx/nn/normalization.py``), so Flax ``momentum=0.95`` is exactly PacGAN's update (in
    PyTorch terms this is ``momentum=0.05``). Batch statistics are used with ``train=True`` (and
    the running averages updated); running averages with ``train=False`` (PacGAN evaluates with
    population statistics). Scale is initialized to 1 and shift to 0, as in blocks. Differences
    from blocks' ``BatchNormalization``, all small:

    * blocks keeps a running average of the *standard deviation* ``sqrt(var + eps)`` and divides
      by it at evaluation; Flax keeps a running average of the *variance* and divides by
      ``sqrt(ra_var + eps)``. Identical in training mode, slightly different at evaluation.
    * ``epsilon`` defaults to blocks' ``1e-4`` here (Flax's own default is 1e-5).
    * The variance is the two-pass ``mean((x - mean)^2)`` as in blocks
      (``use_fast_variance=False``).
    * With packing, PacGAN runs G on ``pack`` z-batches and averages their ``pack`` population
      updates into one; here each call updates the running stats (the trainer decides how to
      call G).

    Attributes:
      latent_dim: Size of z.
      latent_dist: ``"normal"`` (z ~ N(0, I)), as in the PacGAN code.
    """

    def __init__(
        self,
        *,
        latent_dim: int = 2,
        hidden: int = 400,
        depth: int = 4,
        data_dim: int = 2,
        momentum: float = 0.95,
        epsilon: float = 1e-4,
        latent_dist: str = "normal",
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the generator.

        Args:
          latent_dim: Size of z (PacGAN ``num_zdim=2``).
          hidden: Width of each hidden layer (PacGAN ``gen_hidden_size=400``).
          depth: Number of Linear-BN-ReLU blocks (PacGAN 4).
          data_dim: Output dimension (2 for 2-D mixtures).
          momentum: Flax BatchNorm momentum = weight of the old running statistic (0.95).
          epsilon: BatchNorm epsilon added to the variance (blocks default 1e-4).
          latent_dist: Distribution the trainer samples z from: ``"normal"`` or ``"uniform"``.
          axis_name: Mapped axis over which BatchNorm averages batch statistics (sync BN under
            ``shard_map``/``pmap``); None for a single device.
          dtype: Computation dtype; parameters and BN statistics stay float32.
          rngs: Initialization RNG streams.
        """
        self.latent_dim = _check_int("latent_dim", latent_dim)
        self.latent_dist = _check_latent_dist(latent_dist)
        self.data_dim = _check_int("data_dim", data_dim)
        hidden = _check_int("hidden", hidden)
        depth = _check_int("depth", depth)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")
        if not epsilon > 0.0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
        init = dict(
            kernel_init=_PACGAN_KERNEL_INIT,
            bias_init=_ZEROS_INIT,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        dims = [latent_dim] + [hidden] * depth
        self.layers = nnx.List(
            [nnx.Linear(i, o, use_bias=False, **init) for i, o in itertools.pairwise(dims)]
        )
        self.norms = nnx.List(
            [
                nnx.BatchNorm(
                    hidden,
                    momentum=momentum,
                    epsilon=epsilon,
                    use_fast_variance=False,
                    axis_name=axis_name,
                    dtype=dtype,
                    param_dtype=jnp.float32,
                    rngs=rngs,
                )
                for _ in range(depth)
            ]
        )
        self.out = nnx.Linear(hidden, data_dim, use_bias=True, **init)

    def __call__(self, z: jax.Array, *, train: bool = True) -> jax.Array:
        """Maps latents ``(B, latent_dim)`` to samples ``(B, data_dim)``.

        Args:
          z: Latent batch.
          train: True: normalize with batch statistics (synchronized over ``axis_name``) and
            update the running averages in place. False: normalize with the running averages.
        """
        _check_last_dim(z, self.latent_dim, what="z", owner=type(self).__name__)
        h = z
        for layer, norm in zip(self.layers, self.norms, strict=True):
            h = jax.nn.relu(norm(layer(h), use_running_average=not train))
        return self.out(h)


class LinearMaxout(nnx.Module):
    """Linear layer followed by maxout: ``y_u = max_p (W x + b)[u, p]``.

    ``Linear(in_features -> units * pieces)``, reshape the last axis to ``(units, pieces)``
    (pieces fastest), max over pieces. This is blocks' ``LinearMaxout`` (``Linear`` then
    ``Maxout``, which reshapes ``(..., units * pieces)`` to ``(..., units, pieces)`` and takes the
    max over the last axis), so a checkpointed blocks weight matrix maps column for column.
    """

    def __init__(
        self,
        in_features: int,
        units: int,
        pieces: int,
        *,
        kernel_init: nnx.Initializer = _PACGAN_KERNEL_INIT,
        bias_init: nnx.Initializer = _ZEROS_INIT,
        spectral_norm: bool = False,
        dtype: Dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the layer.

        Args:
          in_features: Input width.
          units: Output width (number of maxout units).
          pieces: Linear pieces per unit.
          kernel_init: Kernel initializer (default N(0, 0.02^2)).
          bias_init: Bias initializer (default zeros).
          spectral_norm: Spectrally normalize the linear map (Miyato et al., 2018).
          dtype: Computation dtype; parameters stay float32.
          rngs: Initialization RNG streams.
        """
        self.units = _check_int("units", units)
        self.pieces = _check_int("pieces", pieces)
        linear = nnx.Linear(
            in_features,
            units * pieces,
            kernel_init=kernel_init,
            bias_init=bias_init,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self.linear = maybe_spectral_norm(linear, spectral_norm, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        """Maps ``(..., in_features)`` to ``(..., units)``; ``train`` matters only with
        spectral normalization (power-iteration update or stored vectors)."""
        y = call(self.linear, x, train=train)
        y = y.reshape(*y.shape[:-1], self.units, self.pieces)
        return jnp.max(y, axis=-1)


@register("pacgan_d")
class PacGANDiscriminator(nnx.Module):
    """PacGAN 2-D discriminator: packed x -> LinearMaxout x depth -> Linear -> raw logit.

    Input: ``pack`` samples concatenated along features, ``(B, data_dim * pack)`` (a
    ``(B, pack, data_dim)`` array is flattened to that in the same order). Output: raw logits
    ``(B, 1)``, no sigmoid. With the defaults (pack=1): 2 -> maxout(200 x 5) x 3 -> 1 (405,201
    parameters; each extra pack adds ``2 * 1000``).

    Source: fjxmlzn/PacGAN ``synthetic_data_experiments/2DRing_GAN&PacGAN/pacgan_task.py``
    (``create_model_brick``): three ``LinearMaxout(output_dim=200, num_pieces=5)`` and a final
    ``Linear(200, 1)``, ``input_dim = num_xdim * num_packing``, ``IsotropicGaussian(0.02)``
    weights, zero biases, no BatchNorm and no dropout (``with_dropout=False``). Differences: none in
    the network.
    """

    def __init__(
        self,
        *,
        units: int = 200,
        pieces: int = 5,
        depth: int = 3,
        pack: int = 1,
        data_dim: int = 2,
        spectral_norm: bool = False,
        axis_name: str | None = None,
        dtype: Dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the discriminator.

        Args:
          units: Maxout units per layer (PacGAN ``disc_hidden_size=200``).
          pieces: Pieces per maxout unit (PacGAN ``disc_maxout_pieces=5``).
          depth: Number of maxout layers (PacGAN 3).
          pack: Packing degree m; D sees m samples at once (1 = plain GAN).
          data_dim: Dimension of one sample (2 for 2-D mixtures).
          spectral_norm: Spectrally normalize every linear map (Miyato et al., 2018; not in
            PacGAN's code).
          axis_name: Accepted so the trainer can pass it to every model; unused (no
            BatchNorm in this network).
          dtype: Computation dtype; parameters stay float32.
          rngs: Initialization RNG streams.
        """
        del axis_name  # No BatchNorm here.
        self.units = _check_int("units", units)
        self.pieces = _check_int("pieces", pieces)
        self.pack = _check_int("pack", pack)
        self.data_dim = _check_int("data_dim", data_dim)
        depth = _check_int("depth", depth)
        self.input_dim = data_dim * pack
        dims = [self.input_dim] + [units] * depth
        self.layers = nnx.List(
            [
                LinearMaxout(i, units, pieces, spectral_norm=spectral_norm, dtype=dtype, rngs=rngs)
                for i in dims[:-1]
            ]
        )
        out = nnx.Linear(
            units,
            1,
            kernel_init=_PACGAN_KERNEL_INIT,
            bias_init=_ZEROS_INIT,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self.out = maybe_spectral_norm(out, spectral_norm, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        """Maps packed samples ``(B, data_dim * pack)`` to raw logits ``(B, 1)``.

        ``train`` matters only with ``spectral_norm`` (power-iteration update or stored vectors).
        """
        if x.ndim > 2:
            x = x.reshape(x.shape[0], -1)
        _check_last_dim(
            x, self.input_dim, what=f"x (pack={self.pack} samples)", owner=type(self).__name__
        )
        h = x
        for layer in self.layers:
            h = layer(h, train=train)
        return call(self.out, h, train=train)
