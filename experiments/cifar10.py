"""LSGAN on CIFAR-10 with a DCGAN at 32×32.

    python -m lsgan_jax.data.prepare cifar10    # once; needs `pip install -e '.[tf]'` and network
    python -m experiments.cifar10
    python -m experiments.cifar10 --variant=smoke

The LSGAN papers have no CIFAR-10 run; this uses the DCGAN of the paper's stability code at 32×32
(5×5 kernels, BN, U[−1, 1] latents, z=100), Adam(2e-4, β1 .5), batch 64 and the 0-1-1 coding, the
setting StudioGAN reports LSGAN FIDs for (peers.md §4: best 66.69 at 22k steps, then collapse).
"""

from __future__ import annotations

import ml_collections

from experiments import image_common
from lsgan_jax import cli

VARIANTS = ("default", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": ("DCGAN-32 on CIFAR-10 with in-loop FID/KID/IS (needs `prepare cifar10`)", "GPU"),
    "smoke": ("tiny, 4 steps (needs `prepare cifar10`)", "< 1 min"),
}


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    c = image_common.base_config()
    c.variant = variant
    c.data.name = "cifar10"
    c.data.image_size = 32
    c.model.g_kwargs = {"image_size": 32, "channels": 3, "num_upsamples": 3}
    c.model.d_kwargs = {"image_size": 32, "channels": 3, "num_layers": 3}
    c.num_steps = 100_000
    c.ema_decay = 0.999
    c.evals = ("inception",)  # FID/KID/IS every eval_every steps and at the end (config.fid)
    c.eval_every = 5_000
    if variant == "smoke":
        image_common.make_smoke(
            c,
            g_kwargs=dict(c.model.g_kwargs, base_features=4, latent_dim=8),
            d_kwargs=dict(c.model.d_kwargs, base_features=4),
        )
    elif variant != "default":
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    return c


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    return image_common.run(config, workdir)


cli.run(__name__, get_config, main, VARIANTS)
