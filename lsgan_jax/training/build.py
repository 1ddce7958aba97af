"""From a config to what a trainer runs: checked config → models → `StepSpec`, state, hparams.

The one place that turns a config into the pytrees of `lsgan_jax.training.state` and the static
`StepSpec` of `lsgan_jax.training.step`; used by both trainers and by the benchmarks.

* `validate_mixture(config, points)` / `validate_image(config)` check the whole config first and
  raise one `ConfigError` line per mistake (with a did-you-mean where a name is involved). They
  touch nothing on disk, so the trainers call them before creating the workdir.
* `build_mixture(config, points)` builds a vectorized 2-D study: R runs (losses × seeds × sweep
  points) stacked on a leading axis, data sampled on device.
* `build_image(config, axis_name=..., num_classes=..., data_shape=...)` builds one image GAN,
  checking that the images the pipeline yields fit the models.

Seeding (kept bitwise stable, checkpoints depend on it): a mixture run with seed `s` initialises
G from `k = fold_in(PRNGKey(s), 0)`, D from `fold_in(k, 1)`, and its step RNG is
`fold_in(PRNGKey(s), 1)`; an image run initialises G from `fold_in(PRNGKey(seed), 0)`, D from
`fold_in(PRNGKey(seed), 1)`, and its step RNG is `fold_in(PRNGKey(seed), 2)`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from lsgan_jax import losses as losses_lib
from lsgan_jax import models as models_lib
from lsgan_jax.data import mixtures
from lsgan_jax.errors import ConfigError
from lsgan_jax.models.conditional import OUTPUTS as G_OUTPUTS
from lsgan_jax.studies import TRACED_FIELDS, Run, run_value, runs_from_config
from lsgan_jax.training.state import (
    OPTIMIZERS,
    Hparams,
    TrainState,
    init_state,
    make_hparams,
    make_optimizer,
    stack,
)
from lsgan_jax.training.step import (
    GP_KINDS,
    UPDATE_MODES,
    StepSpec,
    latent_pool_sampler,
    make_generate,
    sample_latent,
)

#: Image runners (`config.runner`); "auto" is data parallel when more than one device is visible.
RUNNERS = ("auto", "single", "data_parallel", "pmap")
NAN_POLICIES = ("stop", "mark")


class MixtureStudy(NamedTuple):
    """A built vectorized mixture study (no training yet).

    Attributes:
      runs: the `Run`s, in the order of the leading axis of `states` and `hparams`.
      spec: the static step description shared by every run.
      states: `TrainState` stacked over runs.
      hparams: `Hparams` stacked over runs.
      mixture: the target 2-D mixture.
      generate: `generate(g_params, g_rest, z)` samples one run's G in inference mode.
    """

    runs: list[Run]
    spec: StepSpec
    states: TrainState
    hparams: Hparams
    mixture: mixtures.Mixture
    generate: Callable[..., jax.Array]


class ImageGAN(NamedTuple):
    """A built image GAN: step description, initial state and hyperparameters."""

    spec: StepSpec
    state: TrainState
    hparams: Hparams


#: Mixed-precision choices of `config.compute_dtype` -> the dtype the models compute in.
COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def compute_dtype(config: Any):
    """Mixed precision from a config: `config.compute_dtype` "bfloat16" runs the models'
    matmuls/convolutions in bf16 while parameters, optimizer states, BatchNorm statistics and
    losses stay float32 (returns the dtype to pass to the models, or None for float32)."""
    name = config.get("compute_dtype", "float32")
    if name not in COMPUTE_DTYPES:
        raise ConfigError(f"compute_dtype={name!r}; choose one of {sorted(COMPUTE_DTYPES)}.")
    return COMPUTE_DTYPES[name]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _one_of(field: str, value: Any, choices: Iterable[Any]) -> None:
    """ConfigError with a did-you-mean unless `value` is one of `choices`."""
    choices = list(choices)
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{field}={value!r} is not known.{hint} Choose one of {choices}.")


def _at_least(config: ml_collections.ConfigDict, names: Iterable[str], low: int = 1) -> None:
    for name in names:
        value = config.get(name)
        if value is not None and int(value) < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}.")


def _check_lr(field: str, lr: Any) -> None:
    if not float(lr) >= 0.0:  # also catches NaN
        raise ConfigError(f"{field}={lr}; a learning rate must be a number >= 0.")


def _check_loss(name: str, coding: tuple[float, float, float], where: str = "") -> None:
    try:
        if losses_lib.get_loss_pair(name).uses_coding:
            losses_lib.validate_coding(*coding)
    except ValueError as e:
        raise ConfigError(f"{where}{e}") from e


def _check_common(config: ml_collections.ConfigDict) -> None:
    """Fields both modalities share: optimizers, update mode, sizes, models, dtype."""
    for opt in ("optim_g", "optim_d"):
        _one_of(f"{opt}.name", config[opt].name, OPTIMIZERS)
        _check_lr(f"{opt}.lr", config[opt].lr)
    _one_of("update_mode", config.update_mode, UPDATE_MODES)
    _at_least(config, ("batch_size", "num_steps", "n_d", "checkpoint_every", "keep_checkpoints"))
    for which in ("g", "d"):
        name = config.model[which]
        try:
            accepted = models_lib.accepted_kwargs(name)  # {} when the builder takes **kwargs
        except ValueError as e:
            raise ConfigError(f"model.{which}: {e}") from e
        for key in config.model[f"{which}_kwargs"]:
            if accepted and key not in accepted:
                close = difflib.get_close_matches(key, list(accepted), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"model.{which}_kwargs: {name} takes no {key!r}.{hint} "
                    f"It takes {sorted(accepted)}."
                )
    compute_dtype(config)  # raises ConfigError for an unknown dtype name


def validate_mixture(config: ml_collections.ConfigDict, points: list[dict] | None = None) -> None:
    """Checks a mixture config (and optional sweep points) before anything is built or written.

    Raises:
      ConfigError (a ValueError): one line saying what to change.
    """
    _check_common(config)
    seeds = config.seeds
    if (isinstance(seeds, int) and seeds < 1) or (not isinstance(seeds, int) and not len(seeds)):
        raise ConfigError(f"seeds={seeds!r}; give a number of seeds >= 1 or a tuple of seeds.")
    if not len(config.losses):
        raise ConfigError("losses is empty; name at least one loss, e.g. ('lsgan', 'nsgan').")
    _at_least(config, ("eval_every", "num_eval_samples"))
    _one_of("nan_policy", config.nan_policy, NAN_POLICIES)
    if config.num_steps % config.eval_every:
        raise ConfigError(
            f"num_steps={config.num_steps} must be a multiple of eval_every={config.eval_every}."
        )
    if config.checkpoint_every % config.eval_every:
        raise ConfigError(
            f"checkpoint_every={config.checkpoint_every} must be a multiple of "
            f"eval_every={config.eval_every}."
        )
    bad = [s for s in config.snapshot_steps if s % config.eval_every]
    if bad:
        raise ConfigError(
            f"snapshot_steps {bad} must be multiples of eval_every={config.eval_every} "
            "(steps past num_steps are ignored)."
        )
    if int(config.data.get("latent_pool_size", 0)) < 0:
        raise ConfigError(
            f"data.latent_pool_size={config.data.latent_pool_size}; use 0 (fresh latents every "
            "step) or the size of a fixed latent set."
        )
    try:
        mixtures.get_mixture(config.data.name, **config.data.kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"data: {e}") from e
    for r in runs_from_config(config, points):
        where = f"run {r.name}: " if points else ""
        coding = tuple(run_value(config, r, f"coding.{k}") for k in "abc")
        _check_loss(r.loss, coding, where)
        for opt in ("optim_g", "optim_d"):
            _check_lr(f"{where}{opt}.lr", run_value(config, r, f"{opt}.lr"))


def validate_image(config: ml_collections.ConfigDict) -> None:
    """Checks an image config before anything is built or written.

    Raises:
      ConfigError (a ValueError): one line saying what to change.
    """
    _check_common(config)
    _one_of("runner", config.runner, RUNNERS)
    _one_of("gp", config.get("gp", "") or None, GP_KINDS)
    _one_of("model.output", config.model.get("output", "tanh"), G_OUTPUTS)
    _at_least(config, ("log_every", "sample_every", "num_samples"))
    if int(config.get("eval_every", 0)) < 0:
        raise ConfigError(
            f"eval_every must be >= 0 (0: evaluate only at the end), got {config.eval_every}."
        )
    _check_loss(config.loss, (config.coding.a, config.coding.b, config.coding.c))


# --------------------------------------------------------------------------------------------
# Models and step
# --------------------------------------------------------------------------------------------


def create_models(
    config: ml_collections.ConfigDict, *, g_key: jax.Array, d_key: jax.Array, **extra: Any
) -> tuple[nnx.Module, nnx.Module]:
    """G and D from `config.model` (`g`, `g_kwargs`, `d`, `d_kwargs`, `output`) at the config's
    dtype.

    `model.output` (image configs) is the one name of G's output non-linearity: a G with an
    `output` keyword (`conditional_g`) gets it; every other image G ends in tanh, so any other
    value is refused for it. The sampler (`lsgan_jax.training.step.make_generate`) maps a sigmoid
    G's [0, 1] back onto the pipeline's [−1, 1].

    Args:
      config: the experiment config.
      g_key, d_key: parameter-initialisation keys.
      **extra: keywords both models get (e.g. `axis_name`, `num_classes`).
    """
    dtype = compute_dtype(config)
    if dtype is not None:
        extra["dtype"] = dtype
    m = config.model
    g_kwargs = dict(m.g_kwargs)
    if "output" in g_kwargs:
        raise ConfigError(
            f"model.g_kwargs sets 'output'; set --config.model.output={g_kwargs['output']} "
            "instead (the evaluators and sample grids read it from there)."
        )
    output = m.get("output")
    if output is not None:
        try:
            takes_output = "output" in models_lib.accepted_kwargs(m.g)
        except (ValueError, KeyError) as e:
            raise ConfigError(f"model: {e}") from e
        if takes_output:
            g_kwargs["output"] = output
        elif output != "tanh":
            raise ConfigError(
                f"model.output={output!r}, but model.g={m.g!r} always ends in tanh; "
                "only a G with an 'output' keyword (conditional_g) can end in a sigmoid."
            )
    try:
        g = models_lib.create(m.g, rngs=nnx.Rngs(params=g_key), **extra, **g_kwargs)
        d = models_lib.create(m.d, rngs=nnx.Rngs(params=d_key), **extra, **m.d_kwargs)
    except (ValueError, TypeError) as e:  # unknown name / keyword (the registry's messages)
        raise ConfigError(f"model: {e}") from e
    return g, d


#: `StepSpec` switches a config may set (each a documented difference between protocols; see
#: `lsgan_jax.training.step.StepSpec` and docs/protocols.md).
PROTOCOL_SWITCHES = ("gp_perturbation", "gp_weight_scale", "g_latents", "reuse_real_batch")


def make_spec(
    config: ml_collections.ConfigDict,
    g: nnx.Module,
    d: nnx.Module,
    *,
    loss_names: tuple[str, ...],
    **fields: Any,
) -> StepSpec:
    """The `StepSpec` of `config` for models shaped like `g`, `d` (`fields`: modality extras)."""
    dtype = compute_dtype(config) or jnp.float32
    switches = {k: config[k] for k in PROTOCOL_SWITCHES if k in config}
    return StepSpec(
        g_graphdef=nnx.graphdef(g),
        d_graphdef=nnx.graphdef(d),
        g_tx=make_optimizer(config.optim_g),
        d_tx=make_optimizer(config.optim_d),
        batch_size=config.batch_size,
        latent_dim=g.latent_dim,
        latent_dist=g.latent_dist,
        loss_names=loss_names,
        update=config.update_mode,
        n_d=config.n_d,
        compute_dtype=dtype,
        **switches,
        **fields,
    )


# --------------------------------------------------------------------------------------------
# Mixture study
# --------------------------------------------------------------------------------------------


def build_mixture(
    config: ml_collections.ConfigDict, points: list[dict] | None = None
) -> MixtureStudy:
    """Builds everything a vectorized 2-D mixture study needs (validates first; no training).

    Every run shares the compiled step; per-run values (loss, seed, learning rates, coding,
    EMA decay; see `lsgan_jax.studies.TRACED_FIELDS`) are traced `Hparams` stacked over runs.
    """
    validate_mixture(config, points)
    runs = runs_from_config(config, points)
    loss_names = tuple(dict.fromkeys(r.loss for r in runs))
    mixture = mixtures.get_mixture(config.data.name, **config.data.kwargs)
    if config.data.dataset_size:  # a fixed dataset (PacGAN, Welfert), drawn with replacement
        data = mixtures.make_fixed_dataset(
            mixture, jax.random.PRNGKey(config.data.dataset_seed), config.data.dataset_size
        )
        sample_real = lambda key, n: mixtures.sample_from_dataset(data, key, n)
    else:
        sample_real = lambda key, n: mixtures.sample(mixture, key, n)

    def models(key):
        return create_models(config, g_key=key, d_key=jax.random.fold_in(key, 1))

    g0, d0 = models(jax.random.PRNGKey(0))
    sample_latents = None
    if config.data.get("latent_pool_size", 0):  # a fixed latent set, shared by all runs
        pool = sample_latent(
            jax.random.fold_in(jax.random.PRNGKey(config.data.dataset_seed), 1),
            config.data.latent_pool_size,
            g0.latent_dim,
            g0.latent_dist,
        )
        sample_latents = latent_pool_sampler(pool)
    spec = make_spec(
        config,
        g0,
        d0,
        loss_names=loss_names,
        sample_real=sample_real,
        sample_latents=sample_latents,
    )

    def init_one(seed):
        key = jax.random.PRNGKey(seed)
        g, d = models(jax.random.fold_in(key, 0))
        return init_state(g, d, spec.g_tx, spec.d_tx, jax.random.fold_in(key, 1))

    # One compiled init called per run, then stacked. (`jit(vmap(init))` can deadlock XLA:CPU's
    # thread pool on the batched QR of the orthogonal initializer, seen with jaxlib 0.10.2.)
    init_jit = jax.jit(init_one)
    states = stack([init_jit(jnp.asarray(r.seed)) for r in runs])
    traced = {p: f for p, f in TRACED_FIELDS.items() if p != "ema_decay" or "ema_decay" in config}
    hparams = stack(
        [
            make_hparams(
                **{field: run_value(config, r, path) for path, field in traced.items()},
                loss_index=loss_names.index(r.loss),
            )
            for r in runs
        ]
    )
    return MixtureStudy(runs, spec, states, hparams, mixture, make_generate(spec))


# --------------------------------------------------------------------------------------------
# Image GAN
# --------------------------------------------------------------------------------------------


def choose_runner(config: ml_collections.ConfigDict) -> tuple[str, int]:
    """(runner, device count) of an image config: "auto" is data parallel on more than one
    device; a global batch that does not divide across the devices is a ConfigError."""
    n = jax.device_count()
    runner = config.runner
    if runner == "auto":
        runner = "data_parallel" if n > 1 else "single"
    if runner in ("data_parallel", "pmap") and config.batch_size % n:
        raise ConfigError(
            f"The global batch size {config.batch_size} does not divide across {n} devices; "
            f"use a multiple of {n} (--config.batch_size=...) or fewer devices."
        )
    return runner, n


def build_image(
    config: ml_collections.ConfigDict,
    *,
    axis_name: str | None,
    num_classes: int = 0,
    data_shape: tuple[int, int, int] | None = None,
) -> ImageGAN:
    """Builds one image GAN from a config (validates first; no training).

    Args:
      config: an image experiment config (see `experiments/image_common.py`).
      axis_name: the data-parallel axis BatchNorm averages over (None: one device).
      num_classes: label range, used by conditional models.
      data_shape: (H, W, C) of the images the input pipeline yields; when given, a model that
        expects another shape is a ConfigError before anything is trained.
    """
    validate_image(config)
    key = jax.random.PRNGKey(config.seed)
    conditional = bool(config.model.get("conditional", False))
    extra = {"num_classes": num_classes} if conditional else {}
    g, d = create_models(
        config,
        g_key=jax.random.fold_in(key, 0),
        d_key=jax.random.fold_in(key, 1),
        axis_name=axis_name,
        **extra,
    )
    if data_shape is not None:
        _check_image_shapes(config, tuple(data_shape), g, d)
    spec = make_spec(
        config,
        g,
        d,
        loss_names=(config.loss,),
        conditional=conditional,
        num_classes=num_classes,
        gp=config.get("gp", None) or None,
        gp_scale=config.get("gp_scale", 30.0),
    )
    state = init_state(g, d, spec.g_tx, spec.d_tx, jax.random.fold_in(key, 2))
    hparams = make_hparams(
        lr_g=config.optim_g.lr,
        lr_d=config.optim_d.lr,
        a=config.coding.a,
        b=config.coding.b,
        c=config.coding.c,
        gp_weight=config.get("gp_weight", 0.0),
        ema_decay=config.get("ema_decay", 0.0),
    )
    return ImageGAN(spec, state, hparams)


def _check_image_shapes(config, data_shape, g, d) -> None:
    g_shape = tuple(getattr(g, "image_shape", data_shape))
    d_shape = tuple(getattr(d, "image_shape", data_shape))
    for who, shape in (("the discriminator takes", d_shape), ("the generator makes", g_shape)):
        if shape != data_shape:
            h, w, c = data_shape
            raise ConfigError(
                f"{config.data.name} gives {h}x{w}x{c} images but {who} "
                f"{'x'.join(map(str, shape))}; set --config.data.image_size and the models' "
                "image_size/channels (model.g_kwargs, model.d_kwargs) to agree."
            )


__all__ = [
    "ImageGAN",
    "MixtureStudy",
    "RUNNERS",
    "build_image",
    "build_mixture",
    "create_models",
    "make_spec",
    "choose_runner",
    "validate_image",
    "validate_mixture",
]
