"""LSGAN on scikit-learn's bundled handwritten digits — the offline image default.

    python -m experiments.digits                   # CPU minutes
    python -m experiments.digits --variant=smoke   # seconds; for tests
    python -m experiments.digits --config.loss=nsgan --config.coding.a=-1 --config.coding.c=0

The 1,797 8×8 digits of `sklearn.datasets.load_digits` go through the same TFDS (array_record) +
grain pipeline as every other dataset (prepared offline on first use), resized to 32×32. Model:
the DCGAN generator/discriminator of the paper's stability code (5×5 kernels, BN, U[−1, 1]
latents) at 32×32 (4→8→16→32) with a narrower width (`base_features=16`, 3 stride-2 layers in D;
the paper's width 64 is for 64×64 scenes), so that 2,000 steps run in CPU minutes;
Adam(2e-4, β1 .5), batch 64, 0-1-1 coding, D then G. A generator EMA (decay 0.999) gives the
sample grid `samples.png`; every checkpoint resumes exactly. Every `eval_every` steps and at the
end, the `digits` evaluator (`evals=("digits",)`, `lsgan_jax.evaluators.digits`) scores
`num_eval_samples` samples of a fixed latent batch (`eval_seed`) with the offline digits
classifier: class coverage, KL to uniform, confidence, Fréchet distance in its features,
precision/recall, density/coverage, diversity and a `collapsed` 0/1 flag. `summary.json` gets
them (`final`, `best`) with their protocol (`protocols.digits`); `--config.evals="()"` turns
them off.
"""

from __future__ import annotations

import ml_collections

from experiments import image_common
from lsgan_jax import cli

VARIANTS = ("default", "sn", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": ("DCGAN 32x32 on scikit-learn's digits, 2,000 steps, classifier metrics", "~3 min"),
    "sn": ("the default with a spectrally normalized D (Miyato et al., 2018)", "~3 min"),
    "smoke": ("tiny networks, 30 steps (tests)", "< 1 min"),
}


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    c = image_common.base_config()
    c.variant = variant
    c.data.name = "digits"
    c.data.image_size = 32
    c.model.g_kwargs = {
        "image_size": 32,
        "channels": 1,
        "base_features": 16,
        "latent_dim": 64,
        "num_upsamples": 3,
    }
    c.model.d_kwargs = {"image_size": 32, "channels": 1, "base_features": 16, "num_layers": 3}
    c.num_steps = 2_000
    c.ema_decay = 0.999
    c.sample_every = 500
    c.checkpoint_every = 500
    c.eval_every = 500
    c.evals = ("digits",)
    c.num_eval_samples = 1_000
    c.eval_seed = 42
    if variant == "smoke":
        c.model.g_kwargs = {"image_size": 32, "channels": 1, "base_features": 8, "latent_dim": 16}
        c.model.d_kwargs = {"image_size": 32, "channels": 1, "base_features": 8}
        c.batch_size = 16
        c.num_steps = 30
        c.log_every = 5
        c.sample_every = 15
        c.checkpoint_every = 10
        c.num_samples = 16
        c.eval_every = 15
        c.num_eval_samples = 64
    elif variant == "sn":  # spectral norm on every D layer; not in the LSGAN papers
        c.model.d_kwargs = {**c.model.d_kwargs, "spectral_norm": True}
    elif variant != "default":
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    return c


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains with the evaluators of `config.evals`; the image trainer writes `summary.json`."""
    return image_common.run(config, workdir)


cli.run(__name__, get_config, main, VARIANTS)
