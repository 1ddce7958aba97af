"""On-device data: 2-D Gaussian mixtures (``mixtures``); image pipelines live in sibling modules.

Images: ``from lsgan_jax.data import images`` (TFDS ArrayRecord + grain pipeline), with the
offline TFDS builders in ``builders`` and the ``python -m lsgan_jax.data.prepare`` CLI.

Keep this file light: it must not import heavy optional dependencies (TFDS, grain).
"""

from lsgan_jax.data.mixtures import (
    FIXED_DATASET_SIZE,
    MIXTURES,
    Mixture,
    get_mixture,
    grid,
    make_fixed_dataset,
    make_mixture,
    official_lsgan_ring,
    ring,
    sample,
    sample_from_dataset,
)

__all__ = [
    "FIXED_DATASET_SIZE",
    "MIXTURES",
    "Mixture",
    "get_mixture",
    "grid",
    "make_fixed_dataset",
    "make_mixture",
    "official_lsgan_ring",
    "ring",
    "sample",
    "sample_from_dataset",
]
