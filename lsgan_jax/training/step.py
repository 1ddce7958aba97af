"""One pure, per-device GAN train step that runs unmapped, under `pmap`, `shard_map` and `vmap`.

`make_train_step(spec)` returns

    train_step(state, batch, hparams, *, axis_name=None) -> (state, metrics)

* Discriminator update(s), then the generator update (`update="alternating"`, the paper's image
  code), or both gradients taken at the same parameters (`update="simultaneous"`, the paper's
  mixture code). `n_d` discriminator updates per generator update. G runs forward once per
  step: the first D update uses that `fake`, and G's gradient is pulled back through the same
  pass (`jax.vjp`) -- the arithmetic of PyTorch's `fake.detach()` pattern.
* Real data for every D update is fresh: with `batch=None` each of the `n_d` updates draws its
  own real batch on device; a batch from a data iterator must then be **stacked**, its leaves
  shaped `(n_d, B_local, ...)` (update `i` takes slice `i`), unless `reuse_real_batch=True`
  (one `(B_local, ...)` batch reused by every D update; not what the official critic loops do).
* LSGAN-GP (`gp="dragan"`) follows the official TPAMI code by default (docs/protocols.md):
  the perturbation is drawn once per run (`gp_perturbation="fixed"`), λ is on the official
  ½·Σ loss scale (`gp_weight_scale="sum"`: the penalty enters as (λ/B)·GP against our ½·mean
  losses, right at every batch size B), and G's update draws its own z (`g_latents="auto"`).
* Randomness is a function of `(state.rng, state.step)` only: the step key is
  `fold_in(state.rng, step)`. Latents (and, when `batch is None`, real samples drawn on device by
  `spec.sample_real`) are drawn for the **global** batch and each device takes its slice, so the
  numbers do not depend on how many devices share the batch.
* With `axis_name`, gradients and metrics are averaged with `lax.pmean` and BatchNorm layers built
  with the same `axis_name` average their statistics across devices: the per-device step computes
  what the single-device step computes on the global batch.
* Hyperparameters a sweep varies come in `hparams` (traced), so `jax.vmap` over a leading run axis
  trains many GANs in one compiled program.

Models are called as `G(z, train=True)` / `D(x, train=True)` (with `labels=` when
`spec.conditional`); discriminators return raw logits. Gradients use `nnx.value_and_grad` on a
module merged inside the traced function: raw `jax.grad` over a merged module cannot write
BatchNorm statistics (`TraceContextError`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lsgan_jax import losses as losses_lib
from lsgan_jax.models.latent import LATENT_DISTS, sample_latent
from lsgan_jax.training.state import Hparams, TrainState, set_learning_rate

UPDATE_MODES = ("alternating", "simultaneous")
GP_KINDS = (None, "dragan")
GP_PERTURBATIONS = ("fixed", "per_step")
GP_WEIGHT_SCALES = ("sum", "mean")
G_LATENTS = ("auto", "shared", "fresh")


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Static description of a train step (compiled in; everything swept lives in `Hparams`).

    Attributes:
      g_graphdef, d_graphdef: static graph definitions from `nnx.split`.
      g_tx, d_tx: optax optimizers built with `optax.inject_hyperparams` (see `make_optimizer`).
      batch_size: the GLOBAL batch size (across all devices).
      latent_dim: dimension of z.
      latent_dist: "normal" (N(0, I)) or "uniform" (U[-1, 1]).
      loss_names: names from `lsgan_jax.losses.LOSSES`; `Hparams.loss_index` picks one per run.
      update: "alternating" or "simultaneous".
      n_d: discriminator updates per generator update.
      sample_real: `(key, n) -> (n, ...)` on-device sampler used when the step gets `batch=None`.
      sample_latents: optional `(key, n) -> (n, latent_dim)` replacing the `latent_dist` draw
        (e.g. a fixed latent set, as Welfert et al.; `latent_pool_sampler`). Drawn for the
        global batch like every other draw.
      conditional: pass `labels=` to G and D (class-conditional LSGAN).
      num_classes: number of classes for conditional models (fake labels reuse the real ones).
      gp: None, or "dragan" — the LSGAN-GP penalty of the TPAMI code, on perturbed real data.
      gp_scale: perturbation scale `CC` of the DRAGAN-style penalty.
      gp_perturbation: "fixed" (default, the official code: the uniform perturbation `u` is
        drawn once per run and reused every step; only α is redrawn) or "per_step" (u redrawn
        every step, DRAGAN's intent).
      gp_weight_scale: "sum" (default): `Hparams.gp_weight` is λ of the official loss, whose
        least-squares terms are ½·Σ over the global batch B while the penalty is a mean; our
        losses are ½·mean, so the step adds (λ/B)·GP -- the same objective up to the factor B,
        to which Adam is invariant (up to ε). "mean": the step adds λ·GP as given.
      g_latents: z of G's update. "shared": the first D update's z (one G forward pass, the
        official image and mixture code, where D and G run in one `sess.run`); "fresh": a new
        draw (the official LSGAN-GP code, whose G step is a separate `sess.run`); "auto"
        (default): "fresh" when `gp` is set, else "shared".
      reuse_real_batch: with `n_d > 1` and a batch from an iterator, reuse one `(B_local, ...)`
        batch for every D update instead of taking a stacked `(n_d, B_local, ...)` batch.
      compute_dtype: dtype of the models' inputs (float32, or bfloat16 for mixed precision);
        losses are always computed in float32.
    """

    g_graphdef: Any
    d_graphdef: Any
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    batch_size: int
    latent_dim: int
    latent_dist: str = "normal"
    loss_names: tuple[str, ...] = ("lsgan",)
    update: str = "alternating"
    n_d: int = 1
    sample_real: Callable[[jax.Array, int], jax.Array] | None = None
    sample_latents: Callable[[jax.Array, int], jax.Array] | None = None
    conditional: bool = False
    num_classes: int = 0
    gp: str | None = None
    gp_scale: float = 30.0
    gp_perturbation: str = "fixed"
    gp_weight_scale: str = "sum"
    g_latents: str = "auto"
    reuse_real_batch: bool = False
    compute_dtype: Any = jnp.float32

    def __post_init__(self):
        if self.update not in UPDATE_MODES:
            raise ValueError(f"update={self.update!r}; choose one of {UPDATE_MODES}.")
        if self.latent_dist not in LATENT_DISTS:
            raise ValueError(f"latent_dist={self.latent_dist!r}; choose one of {LATENT_DISTS}.")
        if self.n_d < 1:
            raise ValueError(f"n_d must be >= 1, got {self.n_d}.")
        if self.gp not in GP_KINDS:
            raise ValueError(f"gp={self.gp!r}; choose one of {GP_KINDS}.")
        for field, value, choices in (
            ("gp_perturbation", self.gp_perturbation, GP_PERTURBATIONS),
            ("gp_weight_scale", self.gp_weight_scale, GP_WEIGHT_SCALES),
            ("g_latents", self.g_latents, G_LATENTS),
        ):
            if value not in choices:
                raise ValueError(f"{field}={value!r}; choose one of {choices}.")
        if not self.loss_names:
            raise ValueError("loss_names must name at least one loss.")
        for name in self.loss_names:
            losses_lib.get_loss_pair(name)  # raises a clear ValueError on a typo


def latent_pool_sampler(pool: jax.Array) -> Callable[[jax.Array, int], jax.Array]:
    """`(key, n) -> n rows of `pool` drawn uniformly with replacement`: a fixed latent set.

    Welfert et al.'s ring protocol trains on a fixed set of 50,000 latents (docs/protocols.md).
    Drawing rows of a pool also costs almost nothing, whereas fresh N(0, I) latents cost a
    Threefry hash per number (see benchmarks/RESULTS.md).
    """
    pool = jnp.asarray(pool, jnp.float32)
    if pool.ndim != 2 or pool.shape[0] < 1:
        raise ValueError(f"A latent pool must be (size, latent_dim), got {pool.shape}.")

    def sample(key: jax.Array, n: int) -> jax.Array:
        return pool[jax.random.randint(key, (n,), 0, pool.shape[0])]

    return sample


def _local_slice(x: jax.Array, axis_name: str | None) -> jax.Array:
    """This device's contiguous slice of a globally drawn batch (identity when unmapped)."""
    if axis_name is None:
        return x
    n = jax.lax.axis_size(axis_name)
    per = x.shape[0] // n
    return jax.lax.dynamic_slice_in_dim(x, jax.lax.axis_index(axis_name) * per, per)


def dragan_penalty(
    d_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    key: jax.Array,
    *,
    scale: float = 30.0,
    global_batch: int | None = None,
    axis_name: str | None = None,
    u: jax.Array | None = None,
) -> jax.Array:
    """The LSGAN-GP gradient penalty of the TPAMI code, on perturbed real data (DRAGAN-style).

        x̂ = x + α·(x_pert − x),   x_pert = x + scale·u,   u ~ U[0, 1)^d,   α ~ U[0, 1] per sample
        penalty = E[(‖∇_x̂ D(x̂)‖₂ − 1)²]

    as xudonmao/improved_LSGAN ``difficult_architectures/*/gan_64x64.py`` (mode ``lsgan-gp``,
    ``CC = 30``, ``LAMBDA = 150``; a perturbation of the real batch, not WGAN-GP's real-fake
    interpolation; Kodali et al. 2017, "On Convergence and Stability of GANs" (DRAGAN); Mao et
    al., TPAMI 2019). The official ``get_perturbed_batch`` calls ``np.random.random`` on the
    graph tensor's shape, so its u is drawn **once** when the graph is built and is the same
    array at every step; pass that array as ``u`` (the train step does, with
    ``gp_perturbation="fixed"``). Without ``u`` it is drawn from ``key`` (redrawn every step,
    DRAGAN's intent). ``‖·‖`` adds 1e-12 under the square root (finite gradient at 0). How the
    penalty is weighted against the losses is the caller's business (see ``StepSpec``).

    Args:
      d_fn: ``x → D(x)`` raw outputs ``(B, ...)``; must treat samples independently (no
        BatchNorm), since the per-sample gradient is taken as ∇ of ``Σ_i D(x̂_i)``.
      x: This device's real batch ``(B_local, ...)``.
      key: PRNG key (the same on every device; draws are global, each device takes its slice).
      scale: The perturbation scale ``CC``.
      global_batch: The global batch size (default ``B_local``, i.e. unmapped).
      axis_name: Mapped axis name, or None.
      u: Optional fixed perturbation for the GLOBAL batch, ``(global_batch, *x.shape[1:])``.

    Returns:
      The scalar penalty (mean over this device's samples).
    """
    n = global_batch or x.shape[0]
    k_u, k_alpha = jax.random.split(key)
    if u is None:
        u = jax.random.uniform(k_u, (n,) + x.shape[1:])
    elif u.shape != (n,) + x.shape[1:]:
        raise ValueError(f"u must have shape {(n,) + x.shape[1:]} (global batch), got {u.shape}.")
    u = _local_slice(u, axis_name)
    alpha = _local_slice(jax.random.uniform(k_alpha, (n,) + (1,) * (x.ndim - 1)), axis_name)
    x_hat = x + alpha * (scale * u)
    grads = jax.grad(lambda xh: d_fn(xh).astype(jnp.float32).sum())(x_hat)
    norms = jnp.sqrt(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1) + 1e-12)
    return jnp.mean((norms - 1.0) ** 2)


def _select_loss(spec: StepSpec, hp: Hparams, kind: str) -> Callable:
    coding = losses_lib.LSCoding(hp.a, hp.b, hp.c)
    if kind == "d":
        fns = [
            lambda r, f, n=n: losses_lib.discriminator_loss(n, r, f, coding=coding)
            for n in spec.loss_names
        ]
    else:
        fns = [
            lambda f, n=n: losses_lib.generator_loss(n, f, coding=coding) for n in spec.loss_names
        ]
    if len(fns) == 1:
        return fns[0]
    return lambda *args: jax.lax.switch(hp.loss_index, fns, *args)


def _pmean(tree: Any, axis_name: str | None) -> Any:
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _varying(tree: Any, axis_name: str | None) -> Any:
    """Marks replicated parameters as device-varying before differentiating.

    Under `shard_map` (with its default `check_vma=True`) the gradient with respect to a
    replicated input comes back already summed over devices, so a following `pmean` would leave
    it `n` times too large. Casting to "varying" first gives per-device gradients, which `pmean`
    then averages — the same arithmetic as under `pmap`.
    """
    if axis_name is None:
        return tree
    return jax.tree.map(lambda x: jax.lax.pcast(x, axis_name, to="varying"), tree)


def make_train_step(spec: StepSpec) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
    """Builds the per-device `train_step(state, batch, hparams, *, axis_name=None)`.

    Args:
      spec: the static step description.

    Returns:
      A pure function. `batch` is `None` (real data sampled on device with `spec.sample_real`) or
      a dict with "image" (this device's slice of the global batch) and, for conditional models,
      "label". `metrics` holds d_loss, g_loss, d_grad_norm, g_grad_norm, d_real, d_fake (mean raw D
      outputs) and gp when a penalty is used; all averaged over devices.
    """
    g_gd, d_gd = spec.g_graphdef, spec.d_graphdef
    not_param = nnx.Not(nnx.Param)
    wrt = nnx.DiffState(0, nnx.Param)

    def call(module, x, labels, train=True):
        x = x.astype(spec.compute_dtype)
        if spec.conditional:
            return module(x, labels=labels, train=train)
        return module(x, train=train)

    def generate(g_params, g_rest, z, labels):
        gen = nnx.merge(g_gd, g_params, g_rest)
        return call(gen, z, labels)

    def d_update(state_parts, real, z, labels, gp_key, gp_u, hp, axis_name, fake=None):
        d_params, d_rest, d_opt, g_params, g_rest = state_parts
        if fake is None:
            fake = generate(g_params, g_rest, z, labels)
        fake = jax.lax.stop_gradient(fake)
        d_loss_fn = _select_loss(spec, hp, "d")

        def loss_fn(disc):
            real_logits = call(disc, real, labels).astype(jnp.float32)
            fake_logits = call(disc, fake, labels).astype(jnp.float32)
            loss = d_loss_fn(real_logits, fake_logits)
            aux = {"d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
            if spec.gp is not None:
                if jax.tree.leaves(nnx.state(disc, nnx.BatchStat)):
                    raise ValueError(
                        "gp='dragan' (LSGAN-GP) needs a discriminator without BatchNorm: the "
                        "penalty differentiates D per sample (the official code swaps BN for "
                        "LayerNorm in D). Use e.g. --config.model.d_kwargs.d_batchnorm=False "
                        "(and d_layernorm=True for the official D)."
                    )
                gp = dragan_penalty(
                    lambda xh: call(disc, xh, labels),
                    real,
                    gp_key,
                    scale=spec.gp_scale,
                    global_batch=spec.batch_size,
                    axis_name=axis_name,
                    u=gp_u,
                )
                aux["gp"] = gp
                weight = hp.gp_weight
                if spec.gp_weight_scale == "sum":  # λ of ½·Σ losses -> λ/B against ½·mean
                    weight = weight / spec.batch_size
                loss = loss + weight * gp
            return loss, aux

        disc = nnx.merge(d_gd, _varying(d_params, axis_name), d_rest)
        (loss, aux), grads = nnx.value_and_grad(loss_fn, argnums=wrt, has_aux=True)(disc)
        new_rest = nnx.state(disc, not_param)
        grads, loss, aux = _pmean((grads, loss, aux), axis_name)
        d_opt = set_learning_rate(d_opt, hp.lr_d)
        updates, d_opt = spec.d_tx.update(grads, d_opt, d_params)
        d_params = optax.apply_updates(d_params, updates)
        metrics = {"d_loss": loss, "d_grad_norm": optax.tree.norm(grads), **aux}
        return (d_params, new_rest, d_opt), metrics

    def g_forward(g_params, g_rest, z, labels, axis_name):
        """G's forward pass, once per step: (fake, pullback to G's parameters, new g_rest).

        The D update(s) consume `fake` and the G update pulls its gradient back through the
        same pass, so G runs forward once per step (not once for D and again inside G's
        gradient), as in the reference PyTorch loop that reuses `fake` with `.detach()`.
        """

        def forward(params):
            # Merged inside the differentiated function so that BatchNorm may update its
            # statistics at this trace level (see the module docstring).
            gen = nnx.merge(g_gd, params, g_rest, copy=True)
            return call(gen, z, labels), nnx.state(gen, not_param)

        fake, pull, new_rest = jax.vjp(forward, _varying(g_params, axis_name), has_aux=True)
        return fake, pull, new_rest

    def g_grads(fake, pull, d_params, d_rest, labels, hp, axis_name):
        """G's loss and gradient at the given D: dL/dfake through D, then G's pullback."""
        g_loss_fn = _select_loss(spec, hp, "g")

        def loss_of_fake(fake):
            # D's statistics from the G step are discarded (copy=True).
            disc = nnx.merge(d_gd, d_params, d_rest, copy=True)
            return g_loss_fn(call(disc, fake, labels).astype(jnp.float32))

        loss, d_fake = jax.value_and_grad(loss_of_fake)(fake)
        (grads,) = pull(d_fake)
        return _pmean((loss, grads), axis_name)

    def train_step(
        state: TrainState, batch: dict[str, jax.Array] | None, hp: Hparams, *, axis_name=None
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        key = jax.random.fold_in(state.rng, state.step)
        k_real, k_z, k_gp, k_lab = jax.random.split(key, 4)
        n = spec.batch_size
        stacked = batch is not None and spec.n_d > 1 and not spec.reuse_real_batch
        if stacked and batch["image"].shape[0] != spec.n_d:
            raise ValueError(
                f"n_d={spec.n_d}: each D update takes a fresh real batch, so the batch must be "
                f"stacked as (n_d, B_local, ...) = ({spec.n_d}, ...); got image shape "
                f"{batch['image'].shape}. Stack n_d batches from the iterator, or set "
                "reuse_real_batch=True to reuse one batch for every D update."
            )
        fixed_u = spec.gp is not None and spec.gp_perturbation == "fixed"

        def real_batch(i):
            if batch is not None:
                if stacked:
                    labels = batch.get("label")
                    return batch["image"][i], None if labels is None else labels[i]
                return batch["image"], batch.get("label")
            if spec.sample_real is None:
                raise ValueError("train_step got batch=None but spec.sample_real is not set.")
            x = spec.sample_real(jax.random.fold_in(k_real, i), n)
            labels = None
            if spec.conditional:
                labels = jax.random.randint(jax.random.fold_in(k_lab, i), (n,), 0, spec.num_classes)
                labels = _local_slice(labels, axis_name)
            return _local_slice(x, axis_name), labels

        def latent(i):
            k = jax.random.fold_in(k_z, i)
            if spec.sample_latents is not None:
                z = spec.sample_latents(k, n)
            else:
                z = sample_latent(k, n, spec.latent_dim, spec.latent_dist)
            return _local_slice(z, axis_name)

        d_parts = (state.d_params, state.d_rest, state.d_opt)
        z0 = latent(0)
        real0, labels0 = real_batch(0)
        # The fixed perturbation: one draw per run from a key that does not depend on the step
        # (the official u is a graph constant); for the global batch, sliced per device.
        gp_u = None
        if fixed_u:
            gp_u = jax.random.uniform(jax.random.split(state.rng)[1], (n, *real0.shape[1:]))
        fresh_g = spec.g_latents == "fresh" or (spec.g_latents == "auto" and spec.gp is not None)
        # G's z: the first D update's z (one forward pass shared with D), or a fresh draw.
        z_g = latent(spec.n_d) if fresh_g else z0
        fake_g, g_pull, g_rest = g_forward(state.g_params, state.g_rest, z_g, labels0, axis_name)
        if spec.update == "simultaneous":  # both gradients at the old parameters
            g_loss, g_grad = g_grads(
                fake_g, g_pull, state.d_params, state.d_rest, labels0, hp, axis_name
            )
        d_metrics = []
        for i in range(spec.n_d):
            z, (real, labels) = (z0, (real0, labels0)) if i == 0 else (latent(i), real_batch(i))
            d_parts, m = d_update(
                (*d_parts, state.g_params, state.g_rest),
                real,
                z,
                labels,
                jax.random.fold_in(k_gp, i),
                gp_u,
                hp,
                axis_name,
                fake=fake_g if (i == 0 and not fresh_g) else None,
            )
            d_metrics.append(m)
        d_params, d_rest, d_opt = d_parts
        if spec.update == "alternating":  # at the updated D, through the same G forward pass
            g_loss, g_grad = g_grads(fake_g, g_pull, d_params, d_rest, labels0, hp, axis_name)
        g_opt = set_learning_rate(state.g_opt, hp.lr_g)
        updates, g_opt = spec.g_tx.update(g_grad, g_opt, state.g_params)
        g_params = optax.apply_updates(state.g_params, updates)
        g_ema = jax.tree.map(
            lambda e, p: hp.ema_decay * e + (1.0 - hp.ema_decay) * p, state.g_ema, g_params
        )
        new_state = state.replace(
            step=state.step + 1,
            g_params=g_params,
            g_rest=g_rest,
            d_params=d_params,
            d_rest=d_rest,
            g_opt=g_opt,
            d_opt=d_opt,
            g_ema=g_ema,
        )
        metrics = dict(d_metrics[-1])
        metrics["g_loss"] = g_loss
        metrics["g_grad_norm"] = optax.tree.norm(g_grad)
        return new_state, metrics

    return train_step


def make_generate(spec_or_graphdef: StepSpec | Any, *, conditional: bool = False) -> Callable:
    """Returns `generate(g_params, g_rest, z, labels=None) -> samples` in inference mode.

    BatchNorm layers use their running averages (the paper's sampling convention). Images come
    out in [−1, 1], the range of the real images, whatever G ends in: this is the one place that
    maps a sigmoid G's [0, 1] output (`output="sigmoid"`, config `model.output`) to `2x − 1`, so
    the sample grids and every evaluator see one range. A tanh G's and a 2-D G's samples are
    returned as they are.
    """
    if isinstance(spec_or_graphdef, StepSpec):
        g_gd, conditional = spec_or_graphdef.g_graphdef, spec_or_graphdef.conditional
    else:
        g_gd = spec_or_graphdef

    def generate(g_params, g_rest, z, labels=None):
        gen = nnx.merge(g_gd, g_params, g_rest)
        x = gen(z, labels=labels, train=False) if conditional else gen(z, train=False)
        if getattr(gen, "output", "tanh") == "sigmoid":
            return x.astype(jnp.float32) * 2.0 - 1.0
        return x

    return generate
