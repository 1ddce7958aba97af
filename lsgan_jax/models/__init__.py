"""Flax NNX generators and discriminators, found by name.

``import lsgan_jax.models`` imports every model file below, which registers its builders::

    from flax import nnx
    from lsgan_jax import models

    models.available()  # ('mixture_mlp_d', 'mixture_mlp_g', 'pacgan_d', 'pacgan_g', ...)
    g = models.create("pacgan_g", rngs=nnx.Rngs(0), hidden=400)

To add a model family, create ``lsgan_jax/models/<family>.py`` that uses
``from lsgan_jax.models.registry import register``, then import the file here. The module
conventions (``train`` flag, raw discriminator logits, ``axis_name``, ``dtype``) and the functional
split/merge pattern for ``jax.grad`` are documented in :mod:`lsgan_jax.models.registry`; the
architectures and the official settings they reproduce in ``docs/models.md``. Every discriminator
takes ``spectral_norm=True`` (:mod:`lsgan_jax.models.spectral_norm`).
"""

from lsgan_jax.models import (
    conditional,  # noqa: F401  (registers conditional_g/_d)
    dcgan,  # noqa: F401  (registers dcgan_g/_d, digit_g/_d)
    layers,  # noqa: F401  (TF-exact deconv, BN, init helpers)
    lsun,  # noqa: F401  (registers lsun_g/_d)
    mlp,  # noqa: F401  (registers mixture_mlp_*, pacgan_*)
    spectral_norm,  # noqa: F401  (SpectralNorm wrapper, the spectral_norm=True option of the Ds)
    welfert,  # noqa: F401  (registers welfert_g/_d)
)
from lsgan_jax.models.conditional import ConditionalDiscriminator, ConditionalGenerator
from lsgan_jax.models.dcgan import (
    DCGANDiscriminator,
    DCGANGenerator,
    DigitDiscriminator,
    DigitGenerator,
)
from lsgan_jax.models.layers import ConvTranspose, ConvTranspose2x, count_params
from lsgan_jax.models.lsun import LSUNDiscriminator, LSUNGenerator
from lsgan_jax.models.mlp import (
    LinearMaxout,
    MixtureMLPDiscriminator,
    MixtureMLPGenerator,
    PacGANDiscriminator,
    PacGANGenerator,
)
from lsgan_jax.models.registry import accepted_kwargs, available, create, get, register
from lsgan_jax.models.spectral_norm import PowerIterationVector, SpectralNorm

__all__ = [
    "ConditionalDiscriminator",
    "ConditionalGenerator",
    "ConvTranspose",
    "ConvTranspose2x",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DigitDiscriminator",
    "DigitGenerator",
    "LSUNDiscriminator",
    "LSUNGenerator",
    "LinearMaxout",
    "MixtureMLPDiscriminator",
    "MixtureMLPGenerator",
    "PacGANDiscriminator",
    "PacGANGenerator",
    "PowerIterationVector",
    "SpectralNorm",
    "accepted_kwargs",
    "available",
    "count_params",
    "create",
    "get",
    "register",
]
