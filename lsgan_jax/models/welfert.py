"""The 2-D ring MLPs of Welfert et al.'s 200-seed success-rate study (no BN, no maxout).

Source: SankarLab/AlphaGan-Papers-Results `gan.py`, `experiments/2D.py` (Welfert et al.'s
(αD, αG)-GAN paper; protocol in ``docs/models.md``): G 2 → 4×[400 ReLU] → 2, D 2 → 4×[200
LeakyReLU(0.2)] → 1, PyTorch's default `nn.Linear` initialisation (weights and biases
U(−1/√fan_in, 1/√fan_in)).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx

from lsgan_jax.models.registry import register
from lsgan_jax.models.spectral_norm import call, maybe_spectral_norm


def _torch_default_init():
    """PyTorch `nn.Linear` default: kaiming_uniform(a=√5) = U(−1/√fan_in, 1/√fan_in)."""

    def init(key, shape, dtype=jnp.float32):
        bound = 1.0 / jnp.sqrt(shape[0])
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class _TorchLinear(nnx.Module):
    def __init__(self, fan_in: int, fan_out: int, *, dtype, rngs: nnx.Rngs):
        init = _torch_default_init()
        self.kernel = nnx.Param(init(rngs.params(), (fan_in, fan_out)))
        bound = 1.0 / fan_in**0.5
        self.bias = nnx.Param(
            jax.random.uniform(rngs.params(), (fan_out,), jnp.float32, -bound, bound)
        )
        self.dtype = dtype

    def __call__(self, x):
        dt = self.dtype or x.dtype
        return x.astype(dt) @ self.kernel[...].astype(dt) + self.bias[...].astype(dt)


@register("welfert_g")
class WelfertGenerator(nnx.Module):
    """G: z (2-D N(0, I)) → `depth` × [Linear `hidden` → ReLU] → Linear 2."""

    def __init__(
        self,
        *,
        latent_dim: int = 2,
        hidden: int = 400,
        depth: int = 4,
        data_dim: int = 2,
        latent_dist: str = "normal",
        axis_name: str | None = None,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        del axis_name  # no BatchNorm
        self.latent_dim, self.latent_dist = latent_dim, latent_dist
        dims = [latent_dim] + [hidden] * depth
        self.layers = nnx.List(
            [_TorchLinear(i, o, dtype=dtype, rngs=rngs) for i, o in itertools.pairwise(dims)]
        )
        self.out = _TorchLinear(hidden, data_dim, dtype=dtype, rngs=rngs)

    def __call__(self, z: jax.Array, *, train: bool = True) -> jax.Array:
        del train
        h = z
        for layer in self.layers:
            h = jax.nn.relu(layer(h))
        return self.out(h)


@register("welfert_d")
class WelfertDiscriminator(nnx.Module):
    """D: x → `depth` × [Linear `hidden` → LeakyReLU(0.2)] → Linear 1 (raw score, no sigmoid).

    ``spectral_norm=True`` spectrally normalizes every linear layer (Miyato et al., 2018; not in
    Welfert et al.'s code; see :mod:`lsgan_jax.models.spectral_norm`).
    """

    def __init__(
        self,
        *,
        hidden: int = 200,
        depth: int = 4,
        data_dim: int = 2,
        negative_slope: float = 0.2,
        spectral_norm: bool = False,
        axis_name: str | None = None,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        del axis_name
        self.negative_slope = negative_slope
        dims = [data_dim] + [hidden] * depth
        sn = dict(enabled=spectral_norm, rngs=rngs)
        self.layers = nnx.List(
            [
                maybe_spectral_norm(_TorchLinear(i, o, dtype=dtype, rngs=rngs), **sn)
                for i, o in itertools.pairwise(dims)
            ]
        )
        self.out = maybe_spectral_norm(_TorchLinear(hidden, 1, dtype=dtype, rngs=rngs), **sn)

    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        h = x
        for layer in self.layers:
            h = jax.nn.leaky_relu(call(layer, h, train=train), self.negative_slope)
        return call(self.out, h, train=train)
