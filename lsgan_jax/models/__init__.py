"""Flax NNX generators and discriminators, found by name.

``import lsgan_jax.models`` imports every model file below, which registers its builders::

    from flax import nnx
    from lsgan_jax import models

    models.available()  # ('mixture_mlp_d', 'mixture_mlp_g', 'pacgan_d', 'pacgan_g', ...)
    g = models.create("pacgan_g", rngs=nnx.Rngs(0), hidden=400)

To add a model family, create ``lsgan_jax/models/<family>.py`` that uses
``from lsgan_jax.models.registry import register``, then import the file here. The module
conventions (``train`` flag, raw discriminator logits, ``axis_name``, ``dtype``) and the functional
split/merge pattern for ``jax.grad`` are documented in :mod:`lsgan_jax.models.registry`.
"""

from lsgan_jax.models import mlp  # noqa: F401  (registers mixture_mlp_*, pacgan_*)
from lsgan_jax.models.mlp import (
    LinearMaxout,
    MixtureMLPDiscriminator,
    MixtureMLPGenerator,
    PacGANDiscriminator,
    PacGANGenerator,
)
from lsgan_jax.models.registry import accepted_kwargs, available, create, get, register

__all__ = [
    "LinearMaxout",
    "MixtureMLPDiscriminator",
    "MixtureMLPGenerator",
    "PacGANDiscriminator",
    "PacGANGenerator",
    "accepted_kwargs",
    "available",
    "create",
    "get",
    "register",
]
