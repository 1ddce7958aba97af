"""Training state and sweep-varied hyperparameters as plain pytrees.

The trainer never holds a live NNX module: models are split once (`nnx.split`) into a static
`GraphDef` and array states, and every jitted function merges them back inside. The state is one
`flax.struct.dataclass`, so it can be stacked on a leading "run" axis and `jax.vmap`-ed (vectorized
sweeps), replicated or sharded across devices, and saved with orbax as is.

Hyperparameters that a sweep varies (learning rates, the LSGAN labels a/b/c, which loss, the
gradient-penalty weight) live in `Hparams`, a pytree of *traced* scalars. One compiled step serves
every run of a sweep; the learning rates reach optax through `optax.inject_hyperparams`.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct


@struct.dataclass
class TrainState:
    """Everything that changes during training, as arrays.

    Attributes:
      step: int32 scalar, number of completed generator updates.
      rng: base PRNG key (raw uint32[2]); the key of step `t` is `fold_in(rng, t)`, so the only RNG
        state to checkpoint is this key and the step counter.
      g_params, d_params: `nnx.Param` states of generator and discriminator.
      g_rest, d_rest: every other NNX variable (BatchNorm running statistics, ...).
      g_opt, d_opt: optax states (`optax.inject_hyperparams` states, so the learning rate is data).
      g_ema: exponential moving average of `g_params` (a copy of it when EMA is disabled).
    """

    step: jax.Array
    rng: jax.Array
    g_params: Any
    g_rest: Any
    d_params: Any
    d_rest: Any
    g_opt: Any
    d_opt: Any
    g_ema: Any


class Hparams(NamedTuple):
    """Per-run hyperparameters that travel as traced values (stackable for `vmap`).

    Attributes:
      lr_g, lr_d: learning rates, injected into the optax states each step.
      a, b, c: least-squares labels (fake label, real label, generator target); ignored by the
        other losses.
      loss_index: int32 index into the step's static tuple of loss names (lets one compiled
        program train LSGAN and the regular GAN side by side under `vmap`).
      gp_weight: weight of the gradient penalty on the discriminator (0 disables it).
      ema_decay: decay of the generator EMA (0 makes the EMA equal the live weights).
    """

    lr_g: jax.Array
    lr_d: jax.Array
    a: jax.Array
    b: jax.Array
    c: jax.Array
    loss_index: jax.Array
    gp_weight: jax.Array
    ema_decay: jax.Array


def make_hparams(
    *,
    lr_g: float,
    lr_d: float,
    a: float = 0.0,
    b: float = 1.0,
    c: float = 1.0,
    loss_index: int = 0,
    gp_weight: float = 0.0,
    ema_decay: float = 0.0,
) -> Hparams:
    """Builds an `Hparams` of float32/int32 scalars from Python numbers."""
    f = lambda v: jnp.asarray(v, jnp.float32)
    return Hparams(
        lr_g=f(lr_g),
        lr_d=f(lr_d),
        a=f(a),
        b=f(b),
        c=f(c),
        loss_index=jnp.asarray(loss_index, jnp.int32),
        gp_weight=f(gp_weight),
        ema_decay=f(ema_decay),
    )


def stack(trees: list[Any]) -> Any:
    """Stacks a list of identical pytrees on a new leading ("run") axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree: Any, index: int) -> Any:
    """Takes run `index` out of a pytree stacked by `stack`."""
    return jax.tree.map(lambda x: x[index], tree)


_OPTIMIZERS = {
    "adam": lambda lr, cfg: optax.adam(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps),
    # TF1's RMSPropOptimizer (used by the paper's BN-free stability runs): decay 0.9, eps inside the
    # square root and an accumulator initialised at 1.0 (optax's `initial_scale`).
    "rmsprop": lambda lr, cfg: optax.rmsprop(
        lr, decay=cfg.get("decay", 0.9), eps=cfg.eps, initial_scale=cfg.get("initial_scale", 1.0)
    ),
    "sgd": lambda lr, cfg: optax.sgd(lr, momentum=cfg.get("momentum", None) or None),
}


#: Optimizer names `make_optimizer` accepts (`config.optim_g.name`, `config.optim_d.name`).
OPTIMIZERS = tuple(sorted(_OPTIMIZERS))


def make_optimizer(cfg: Any) -> optax.GradientTransformation:
    """Builds an optax optimizer whose learning rate is an injected (traced) hyperparameter.

    Args:
      cfg: a mapping with `name` in {"adam", "rmsprop", "sgd"}, `lr` and the optimizer's constants
        (`b1`, `b2`, `eps` for Adam). Only the learning rate is injected; the others are compiled in.

    Raises:
      ValueError: unknown optimizer name.
    """
    name = cfg.name
    if name not in _OPTIMIZERS:
        close = difflib.get_close_matches(str(name), OPTIMIZERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown optimizer {name!r}.{hint} Choose one of {list(OPTIMIZERS)}.")
    build = _OPTIMIZERS[name]
    return optax.inject_hyperparams(lambda learning_rate: build(learning_rate, cfg))(
        learning_rate=float(cfg.lr)
    )


def set_learning_rate(opt_state: Any, lr: jax.Array) -> Any:
    """Returns `opt_state` (an `inject_hyperparams` state) with its learning rate replaced."""
    hyper = dict(opt_state.hyperparams)
    hyper["learning_rate"] = jnp.asarray(lr, hyper["learning_rate"].dtype)
    return opt_state._replace(hyperparams=hyper)


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, Any, Any]:
    """`nnx.split(model, nnx.Param, ...)`: (graphdef, params, everything else)."""
    return nnx.split(model, nnx.Param, ...)


def init_state(
    g_model: nnx.Module,
    d_model: nnx.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    rng: jax.Array,
) -> TrainState:
    """Creates the initial `TrainState` from freshly built modules."""
    _, g_params, g_rest = split_model(g_model)
    _, d_params, d_rest = split_model(d_model)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        rng=rng,
        g_params=g_params,
        g_rest=g_rest,
        d_params=d_params,
        d_rest=d_rest,
        g_opt=g_tx.init(g_params),
        d_opt=d_tx.init(d_params),
        g_ema=jax.tree.map(jnp.copy, g_params),
    )
