"""The evaluators' samples: a fixed latent batch, generated in chunks, in the range [−1, 1].

Every evaluator scores images in [−1, 1] (the range of the real images the pipeline produces).
:func:`to_signed_unit` is the one place that maps a generator's output onto it: a ``tanh`` output
is already there, a ``sigmoid`` output ([0, 1]) becomes ``2x − 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from lsgan_jax.errors import ConfigError

#: Generator output activations (``config.model.output``) and how they map onto [−1, 1].
OUTPUTS = ("tanh", "sigmoid")

__all__ = ["OUTPUTS", "fixed_latents", "generate_images", "to_signed_unit"]


def to_signed_unit(x: Any, output: str = "tanh") -> np.ndarray:
    """Generator output → images in [−1, 1]: ``x`` for ``tanh``, ``2x − 1`` for ``sigmoid``.

    Args:
      x: Generated images (any array).
      output: The generator's output activation (``config.model.output``).

    Returns:
      float32 NumPy images in [−1, 1] (up to the generator's own range).
    """
    if output not in OUTPUTS:
        raise ConfigError(f"model.output={output!r}; choose one of {OUTPUTS}.")
    x = np.asarray(jax.device_get(x), np.float32)
    return x * 2.0 - 1.0 if output == "sigmoid" else x


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
    output: str = "tanh",
) -> np.ndarray:
    """``generate(z, None)`` over ``latents`` in chunks of ``batch``; the first ``num_samples``
    images, mapped to [−1, 1] by :func:`to_signed_unit`."""
    out = [
        np.asarray(jax.device_get(generate(latents[s : s + batch], None)), np.float32)
        for s in range(0, len(latents), batch)
    ]
    return to_signed_unit(np.concatenate(out)[:num_samples], output)
