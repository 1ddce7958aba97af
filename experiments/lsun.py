"""The paper's LSUN scene model at 112×112 (ICCV 2017 §4.1; xudonmao/LSGAN `vgg.py`).

    python -m lsgan_jax.data.prepare lsun/church_outdoor   # once; '.[lsun]' extra and network
    python -m experiments.lsun --config.scene=church_outdoor
    python -m experiments.lsun --config.scene=bedroom --variant=paper
    python -m experiments.lsun --variant=smoke

Scenes: bedroom, kitchen, church_outdoor, dining_room, conference_room. Settings of
`train_lsun.py`: z ~ U[−1, 1]^1024, G linear → 7×7×256 then 3×3 deconvs (stride 2 and 1) to
112×112×3 tanh (15,591,427 parameters), D 5×5 convs 64-128-256-512 + linear (4,333,441),
Adam(1e-3, β1 .5) for both, batch 64, 0-1-1 coding, D then G with the same z. `default` trains
100k steps; `paper` the official `max_steps=1,000,000`.
"""

from __future__ import annotations

import ml_collections

from experiments import image_common
from lsgan_jax import cli

VARIANTS = ("default", "paper", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": ("the paper's 112x112 scene model, 100k steps (needs `prepare lsun/SCENE`)", "GPU"),
    "paper": ("the official 1M steps", "GPU"),
    "smoke": ("tiny, 4 steps (needs the scene prepared)", "< 1 min"),
}
SCENES = ("bedroom", "kitchen", "church_outdoor", "dining_room", "conference_room")


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    c = image_common.base_config()
    c.variant = variant
    c.scene = "church_outdoor"
    c.data.name = ""  # derived from `scene` (lsun/<scene>) unless set
    c.data.image_size = 112
    c.model.g, c.model.d = "lsun_g", "lsun_d"
    c.model.g_kwargs = {}
    c.model.d_kwargs = {}
    for opt in (c.optim_g, c.optim_d):
        opt.lr = 1e-3
    c.num_steps = 1_000_000 if variant == "paper" else 100_000
    c.ema_decay = 0.999
    c.evals = ("inception",)  # FID/KID/IS every eval_every steps and at the end (config.fid)
    c.eval_every = 10_000
    if variant == "smoke":
        c.data.image_size = 16
        image_common.make_smoke(
            c,
            g_kwargs={"image_size": 16, "base_features": 4, "latent_dim": 8},
            d_kwargs={"image_size": 16, "base_features": 4},
        )
    elif variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    return c


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    if config.scene not in SCENES:
        raise cli.ConfigError(f"scene={config.scene!r}; choose one of {SCENES}.")
    if not config.data.name:
        config.data.name = f"lsun/{config.scene}"
    return config


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    return image_common.run(resolve(config), workdir)


cli.run(__name__, get_config, main, VARIANTS)
