"""LSGAN on MNIST with the TPAMI digits architecture (also `--config.data.name=fashion_mnist`).

    python -m lsgan_jax.data.prepare mnist      # once; needs `pip install -e '.[tf]'` and network
    python -m experiments.mnist                 # the TPAMI small-variance settings on MNIST
    python -m experiments.mnist --variant=smoke

Model: xudonmao/improved_LSGAN `small_variance_datasets/arch.py` — G z(100, U[−1, 1]) → linear
4×4×512, BN, ReLU → deconv 5×5 s2 to 7×7×256 → 14×14×128 → 28×28×1 tanh; D LeNet-like (conv 20,
conv 50 + BN, linear 500 + BN, linear 1). χ² coding (−1, 1, 0) as that code; Adam(2e-4, β1 .5),
batch 64, 50,001 steps (its `max_steps`).
"""

from __future__ import annotations

import ml_collections

from experiments import image_common
from lsgan_jax import cli

VARIANTS = ("default", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": ("TPAMI digit networks on MNIST, 50,001 steps (needs `prepare mnist`)", "GPU"),
    "smoke": ("tiny, 4 steps (needs `prepare mnist`)", "< 1 min"),
}


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    c = image_common.base_config()
    c.variant = variant
    c.data.name = "mnist"
    c.data.image_size = 28
    c.model.g, c.model.d = "digit_g", "digit_d"
    c.coding.a, c.coding.b, c.coding.c = -1.0, 1.0, 0.0
    c.num_steps = 50_001
    c.ema_decay = 0.999
    c.evals = ("inception",)  # FID/KID/IS every eval_every steps and at the end (config.fid)
    c.eval_every = 5_000
    if variant == "smoke":
        image_common.make_smoke(
            c,
            g_kwargs={"base_features": 4, "latent_dim": 8},
            d_kwargs={"features": (4, 8), "hidden": 16},
        )
    elif variant != "default":
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    return c


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    return image_common.run(config, workdir)


cli.run(__name__, get_config, main, VARIANTS)
