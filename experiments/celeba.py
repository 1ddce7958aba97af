"""LSGAN on CelebA at 64×64 (108×108 center crop, then resize) with a DCGAN.

    python -m lsgan_jax.data.prepare celeb_a    # once; needs `pip install -e '.[tf]'` and network
    python -m experiments.celeba
    python -m experiments.celeba --variant=smoke

DCGAN-64 of the paper's stability code (G linear → 4×4×512 → 5×5 deconvs → 64×64×3 tanh, BN; D
5×5 convs 64-128-256-512), z=100 U[−1, 1], Adam(2e-4, β1 .5), batch 64, 0-1-1 coding. (MMagic
reports FID 11.93 for its LSGAN-DCGAN on CelebA-cropped 64 with lr 1e-3, batch 128, 100k
iterations — peers.md §4; `--config.optim_g.lr=1e-3 --config.optim_d.lr=1e-3
--config.batch_size=128` matches those settings.)
"""

from __future__ import annotations

import ml_collections

from experiments import image_common
from lsgan_jax import cli

VARIANTS = ("default", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": ("DCGAN-64 on CelebA, 108 center crop, FID/KID/IS (needs `prepare celeb_a`)", "GPU"),
    "smoke": ("tiny, 4 steps (needs `prepare celeb_a`)", "< 1 min"),
}


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    c = image_common.base_config()
    c.variant = variant
    c.data.name = "celeb_a"
    c.data.image_size = 64
    c.model.g_kwargs = {"image_size": 64, "channels": 3}
    c.model.d_kwargs = {"image_size": 64, "channels": 3}
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
