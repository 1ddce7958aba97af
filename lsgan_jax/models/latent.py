"""The generators' latent distributions: z ~ N(0, I) or U[−1, 1]^d.

Every generator declares ``latent_dim`` and ``latent_dist``; the train step, the samplers of the
experiments and the evaluators draw z with :func:`sample_latent`, so all of them agree on what a
"normal" or "uniform" latent is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: Names accepted for ``latent_dist``.
LATENT_DISTS = ("normal", "uniform")


def sample_latent(key: jax.Array, n: int, dim: int, dist: str) -> jax.Array:
    """z ~ N(0, I) (``"normal"``) or U[−1, 1]^dim (``"uniform"``), shape ``(n, dim)``, float32."""
    if dist == "normal":
        return jax.random.normal(key, (n, dim), jnp.float32)
    if dist == "uniform":
        return jax.random.uniform(key, (n, dim), jnp.float32, -1.0, 1.0)
    raise ValueError(f"latent_dist={dist!r}; choose one of {LATENT_DISTS}.")


def latent_of(config) -> tuple[int, str]:
    """``(latent_dim, latent_dist)`` of an image config's generator, read without allocating it.

    The generator named by ``config.model.g`` (with ``config.model.g_kwargs``; 10 classes when
    ``config.model.conditional``) is built abstractly with ``nnx.eval_shape``, so evaluators draw
    their fixed latent batch from the same distribution as the train step.
    """
    from flax import nnx  # noqa: PLC0415

    from lsgan_jax import models as models_lib  # noqa: PLC0415

    extra = {"num_classes": 10} if config.model.get("conditional", False) else {}
    g = nnx.eval_shape(
        lambda: models_lib.create(
            config.model.g, rngs=nnx.Rngs(0), **extra, **dict(config.model.g_kwargs)
        )
    )
    return int(g.latent_dim), str(g.latent_dist)
