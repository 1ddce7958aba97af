"""Training: state pytree, per-device step, runners, checkpoints, the loop."""

from lsgan_jax.training.state import Hparams, TrainState, init_state, make_hparams, make_optimizer
from lsgan_jax.training.step import StepSpec, make_generate, make_train_step, sample_latent

__all__ = [
    "Hparams",
    "StepSpec",
    "TrainState",
    "init_state",
    "make_generate",
    "make_hparams",
    "make_optimizer",
    "make_train_step",
    "sample_latent",
]
