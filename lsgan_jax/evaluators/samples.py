"""An evaluator that measures nothing and keeps the newest samples of a fixed latent batch.

The study drivers use it for runs without a classifier (e.g. LSUN), so their sample grids are
built from the generated arrays, at full precision, rather than cut back out of a PNG.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lsgan_jax.evaluators import sampling
from lsgan_jax.models.latent import latent_of

__all__ = ["LastSamples"]


class LastSamples:
    """``evaluator(generate, step) -> {}``; :attr:`last_samples` holds the newest images.

    Args:
      num_samples: Images kept.
      seed: Seed of the fixed latent batch.
      latent_dim: Size of z.
      latent_dist: ``"uniform"`` or ``"normal"``.
    """

    def __init__(self, *, num_samples: int, seed: int, latent_dim: int, latent_dist: str):
        self.num_samples = int(num_samples)
        self._z = sampling.fixed_latents(
            seed=seed, num_samples=num_samples, batch=num_samples,
            latent_dim=latent_dim, latent_dist=latent_dist,
        )  # fmt: skip
        self.last_samples: np.ndarray | None = None

    @classmethod
    def from_config(cls, config: Any, num_samples: int = 16) -> LastSamples:
        """Latents of ``config``'s generator from ``config.eval_seed`` (default 0)."""
        dim, dist = latent_of(config)
        return cls(
            num_samples=num_samples, seed=int(config.get("eval_seed", 0)), latent_dim=dim,
            latent_dist=dist,
        )  # fmt: skip

    def __call__(self, generate: Callable[..., Any], step: int) -> dict[str, float]:
        del step
        self.last_samples = sampling.generate_images(
            generate, self._z, num_samples=self.num_samples, batch=self.num_samples
        )
        return {}
