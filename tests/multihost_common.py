"""The tiny GAN shared by the multi-host test and its worker processes."""

import jax
import ml_collections
import numpy as np
from flax import nnx

from lsgan_jax import models
from lsgan_jax.training.state import init_state, make_hparams, make_optimizer
from lsgan_jax.training.step import StepSpec

GLOBAL_BATCH = 32
STEPS = 3


def build(axis_name):
    g = models.create("pacgan_g", rngs=nnx.Rngs(params=0), axis_name=axis_name, hidden=16, depth=2)
    d = models.create("mixture_mlp_d", rngs=nnx.Rngs(params=1), hidden=16)
    opt = ml_collections.ConfigDict({"name": "sgd", "lr": 0.05})
    g_tx, d_tx = make_optimizer(opt), make_optimizer(opt)
    spec = StepSpec(
        g_graphdef=nnx.graphdef(g),
        d_graphdef=nnx.graphdef(d),
        g_tx=g_tx,
        d_tx=d_tx,
        batch_size=GLOBAL_BATCH,
        latent_dim=g.latent_dim,
        latent_dist=g.latent_dist,
    )
    state = init_state(g, d, g_tx, d_tx, jax.random.PRNGKey(0))
    return spec, state, make_hparams(lr_g=0.05, lr_d=0.05)


def global_batches():
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        yield {"image": rng.normal(size=(GLOBAL_BATCH, 2)).astype(np.float32)}
