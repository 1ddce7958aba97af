"""The evaluators' samples: a fixed latent batch, generated in chunks.

Every evaluator scores images in [−1, 1], the range of the real images the pipeline produces and
the range in which the trainer's ``generate`` returns them
(:func:`lsgan_jax.training.step.make_generate` maps a sigmoid generator's [0, 1] there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["fixed_latents", "generate_images"]


def fixed_latents(
    *, seed: int, num_samples: int, batch: int, latent_dim: int, latent_dist: str
) -> np.ndarray:
    """``z`` for ``num_samples`` images, padded up to a multiple of ``batch`` (one compiled shape).

    The same ``seed`` gives the same batch at every evaluation, so curves compare training steps,
    not latent draws.
    """
    from lsgan_jax.models.latent import sample_latent  # noqa: PLC0415

    n_pad = -(-int(num_samples) // int(batch)) * int(batch)
    return np.asarray(
        sample_latent(jax.random.PRNGKey(int(seed)), n_pad, int(latent_dim), latent_dist)
    )


def generate_images(
    generate: Callable[..., Any],
    latents: np.ndarray,
    *,
    num_samples: int,
    batch: int,
) -> np.ndarray:
    """``generate(z, None)`` over ``latents`` in chunks of ``batch``: the first ``num_samples``
    images as float32 NumPy."""
    out = [
        np.asarray(jax.device_get(generate(latents[s : s + batch], None)), np.float32)
        for s in range(0, len(latents), batch)
    ]
    return np.concatenate(out)[:num_samples]
