"""The conditional LSGAN for many-class handwriting (ICCV 2017 §4.3; xudonmao/LSGAN `mcgan.py`).

    python -m lsgan_jax.data.prepare emnist/byclass   # once; '.[tf]' extra and network
    python -m experiments.conditional
    python -m experiments.conditional --config.data.name=omniglot --config.data.split=train+test
    python -m experiments.conditional --variant=smoke

The paper trains on HWDB1.0 (3,740 Chinese characters), which is not in TFDS. We use
`emnist/byclass` (62 handwritten classes at 28×28 with ~11k images per class — the official model's
resolution, and enough images per class to learn each one); `omniglot` (1,623 characters, 20
images each) is the many-class alternative. Labels are mapped linearly to 256 features in G and D
(the paper's Φ(y)), z ~ U[−1, 1]^1024, Adam(2e-4, β1 .5), batch 64, 0-1-1 coding. The official G
ends in a sigmoid for [0, 1] pixels; we keep tanh for our [−1, 1] pipeline
(`--config.model.output=sigmoid` restores it). The number of classes comes from the dataset.
"""

from __future__ import annotations

import ml_collections

from experiments import image_common
from lsgan_jax import cli

VARIANTS = ("default", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": (
        "conditional LSGAN on EMNIST-byclass, 62 classes (needs `prepare emnist/byclass`)",
        "GPU",
    ),
    "smoke": ("tiny, 4 steps (needs the dataset prepared)", "< 1 min"),
}


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    c = image_common.base_config()
    c.variant = variant
    c.data.name = "emnist/byclass"
    c.data.image_size = 28
    c.model.g, c.model.d = "conditional_g", "conditional_d"
    c.model.conditional = True
    c.num_steps = 100_000
    c.ema_decay = 0.999
    if variant == "smoke":
        image_common.make_smoke(
            c,
            g_kwargs={"base_features": 4, "label_features": 8, "latent_dim": 8},
            d_kwargs={"base_features": 4, "label_features": 8, "hidden": 16},
        )
    elif variant != "default":
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    return c


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    return image_common.run(config, workdir)


cli.run(__name__, get_config, main, VARIANTS)
