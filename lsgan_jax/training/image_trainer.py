"""The image trainer: one GAN on a TFDS/grain pipeline, on one device or data parallel.

`train(config, workdir)` reads top to bottom:

1. devices and runner — one device (`jax.jit`), a data-parallel mesh over all devices
   (`jit(shard_map)`, the default when more than one device is visible; also across hosts after
   `jax.distributed.initialize`), or `jax.pmap` when `config.runner == "pmap"`;
2. input pipeline — `lsgan_jax.data.images.make_iterator` (grain; each process reads its shard);
3. models, optimizers and the initial state;
4. resume — from the newest usable checkpoint in `workdir/checkpoints`, including the data
   iterator position, so an interrupted run continues with bitwise-identical parameters;
5. the loop — train step; every `log_every` steps metrics to `metrics.jsonl`/TensorBoard and a
   NaN/Inf check; every `sample_every` steps a sample grid from a fixed latent batch (EMA weights
   when enabled) to PNG and TensorBoard; every `checkpoint_every` steps (and on SIGTERM) a
   checkpoint; the `evaluators` (experiments build them from `config.evals`, see
   `experiments/image_common.py`) every `eval_every` steps and at the end;
6. `summary.json` with the final and best evaluation values and the measured steps/s.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lsgan_jax import losses as losses_lib
from lsgan_jax import models as models_lib
from lsgan_jax import viz
from lsgan_jax.errors import ConfigError, NonFiniteError
from lsgan_jax.training import runners
from lsgan_jax.training.checkpoint import Checkpointer
from lsgan_jax.training.guards import PreemptionGuard
from lsgan_jax.training.metrics_log import MetricWriter
from lsgan_jax.training.progress import progress
from lsgan_jax.training.state import init_state, make_hparams, make_optimizer
from lsgan_jax.training.step import (
    StepSpec,
    compute_dtype,
    make_generate,
    make_train_step,
    sample_latent,
)

log = logging.getLogger(__name__)

RUNNERS = ("auto", "single", "data_parallel", "pmap")

# An evaluation: (generate_fn, step, state) -> dict of scalars; registered by the experiment.
Evaluator = Callable[[Callable[[jax.Array, Any], jax.Array], int], dict[str, float]]


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks an image config before anything is built; raises ConfigError with what to change."""
    try:
        pair = losses_lib.get_loss_pair(config.loss)
        if pair.uses_coding:
            losses_lib.validate_coding(config.coding.a, config.coding.b, config.coding.c)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    compute_dtype(config)
    if config.runner not in RUNNERS:
        raise ConfigError(f"runner={config.runner!r}; choose one of {RUNNERS}.")
    for name in ("num_steps", "batch_size", "log_every", "checkpoint_every", "sample_every"):
        if int(config[name]) < 1:
            raise ConfigError(f"{name} must be >= 1, got {config[name]}.")
    if int(config.get("eval_every", 0)) < 0:
        raise ConfigError(
            f"eval_every must be >= 0 (0: evaluate only at the end), got {config.eval_every}."
        )


def _choose_runner(config) -> tuple[str, int]:
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


def build(config: ml_collections.ConfigDict, *, axis_name: str | None, num_classes: int = 0):
    """Models, optimizers, the step spec and the initial state for an image config."""
    key = jax.random.PRNGKey(config.seed)
    extra = {"num_classes": num_classes} if config.model.get("conditional", False) else {}
    dtype = compute_dtype(config)
    if dtype is not None:
        extra["dtype"] = dtype
    g = models_lib.create(
        config.model.g,
        rngs=nnx.Rngs(params=jax.random.fold_in(key, 0)),
        axis_name=axis_name,
        **extra,
        **config.model.g_kwargs,
    )
    d = models_lib.create(
        config.model.d,
        rngs=nnx.Rngs(params=jax.random.fold_in(key, 1)),
        axis_name=axis_name,
        **extra,
        **config.model.d_kwargs,
    )
    g_tx, d_tx = make_optimizer(config.optim_g), make_optimizer(config.optim_d)
    spec = StepSpec(
        g_graphdef=nnx.graphdef(g),
        d_graphdef=nnx.graphdef(d),
        g_tx=g_tx,
        d_tx=d_tx,
        batch_size=config.batch_size,
        latent_dim=g.latent_dim,
        latent_dist=g.latent_dist,
        loss_names=(config.loss,),
        update=config.update_mode,
        n_d=config.n_d,
        conditional=bool(config.model.get("conditional", False)),
        num_classes=num_classes,
        gp=config.get("gp", None) or None,
        gp_scale=config.get("gp_scale", 30.0),
        compute_dtype=dtype or jnp.float32,
    )
    state = init_state(g, d, g_tx, d_tx, jax.random.fold_in(key, 2))
    hp = make_hparams(
        lr_g=config.optim_g.lr,
        lr_d=config.optim_d.lr,
        a=config.coding.a,
        b=config.coding.b,
        c=config.coding.c,
        gp_weight=config.get("gp_weight", 0.0),
        ema_decay=config.get("ema_decay", 0.0),
    )
    return spec, state, hp


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    evaluators: dict[str, Evaluator] | None = None,
    make_iterator: Callable[..., Any] | None = None,
) -> dict:
    """Trains one image GAN; see the module docstring. Returns the summary dict.

    Args:
      config: the experiment config (see `experiments/digits.py` for the fields).
      workdir: output directory; an existing checkpoint there is resumed.
      evaluators: name -> function `(generate, step) -> {metric: value}` run every
        `config.eval_every` steps (0: never during training) and always at the end; one with a
        `protocol()` method has it recorded in `summary.json` under `protocols`; `generate(z, labels)` samples the generator
        (EMA weights when enabled) in inference mode, on host-visible arrays.
      make_iterator: override of `lsgan_jax.data.images.make_iterator` (same signature).
    """
    validate_config(config)
    os.makedirs(workdir, exist_ok=True)
    runner, n_dev = _choose_runner(config)
    is_main = jax.process_index() == 0

    # ---- input pipeline -----------------------------------------------------------------
    from lsgan_jax.data import images  # noqa: PLC0415  (TFDS/grain only for image runs)

    data_kw = dict(
        split=config.data.get("split", "train"), data_dir=config.data.get("data_dir", "") or None
    )
    try:
        _, info = images.load_source(config.data.name, image_size=config.data.image_size, **data_kw)
    except (images.DatasetNotPreparedError, images.MissingDependencyError) as e:
        raise ConfigError(str(e)) from e
    except ValueError as e:  # unknown dataset name
        raise ConfigError(str(e)) from e
    num_classes = int(info.num_classes)
    data_iter = (make_iterator or images.make_iterator)(
        config.data.name,
        global_batch=config.batch_size,
        image_size=config.data.image_size,
        seed=config.seed,
        **data_kw,
    )

    # ---- models, state, step ---------------------------------------------------------------
    axis = runners.DATA_AXIS if runner in ("data_parallel", "pmap") else None
    spec, state, hp = build(config, axis_name=axis, num_classes=num_classes)
    step_fn = make_train_step(spec)
    mesh = None
    if runner == "single":
        run_step = runners.single(step_fn)
    elif runner == "data_parallel":
        mesh = runners.make_mesh()
        run_step = runners.data_parallel(step_fn, mesh, global_batch=config.batch_size)
        state = runners.replicate(state, mesh)
    else:
        run_step = runners.pmap(step_fn, global_batch=config.batch_size)

    def to_device(batch):
        batch = {k: np.asarray(v) for k, v in batch.items() if k in ("image", "label")}
        if not spec.conditional:
            batch.pop("label", None)
        if mesh is None:
            return batch
        sharding = NamedSharding(mesh, P(runners.DATA_AXIS))
        return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}

    # ---- sampling -----------------------------------------------------------------------------
    generate_fn = jax.jit(make_generate(spec))
    use_ema = config.get("ema_decay", 0.0) > 0
    z_fixed = sample_latent(
        jax.random.PRNGKey(config.get("sample_seed", 42)),
        config.get("num_samples", 64),
        spec.latent_dim,
        spec.latent_dist,
    )
    labels_fixed = np.arange(z_fixed.shape[0]) % max(num_classes, 1) if spec.conditional else None

    def generate(z, labels=None):
        params = state.g_ema if use_ema else state.g_params
        return generate_fn(params, state.g_rest, z, labels)

    # ---- resume -------------------------------------------------------------------------------
    ckpt = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=config.get("keep_checkpoints", 2)
    )
    meta: dict[str, Any] = {"config": config.to_dict(), "evals": [], "steps_per_s": None}
    restored = ckpt.restore_latest(state, data_iter=data_iter)
    if restored is not None:
        state, meta, start = restored
        print(f"Resumed from the checkpoint at step {start} in {workdir}.")
    start = int(jax.device_get(state.step))

    writer = MetricWriter(workdir) if is_main else None
    if writer and start == 0:
        writer.write_hparams(config.to_dict())
    sample_dir = os.path.join(workdir, "samples")

    def write_samples(step):
        if not is_main:
            return
        x = np.asarray(jax.device_get(generate(z_fixed, labels_fixed)), np.float32)
        if config.model.get("output", "tanh") == "sigmoid":
            x = x * 2.0 - 1.0
        grid = viz.image_grid(x)
        viz.save_image(grid, os.path.join(sample_dir, f"step_{step:07d}.png"))
        viz.save_image(grid, os.path.join(workdir, "samples.png"))
        writer.write_image(step, "samples", grid)

    def run_evals(step):
        results = {}
        for name, fn in (evaluators or {}).items():
            for k, v in fn(generate, step).items():
                results[f"{name}/{k}"] = float(v)
        if results:
            meta["evals"].append({"step": step, **results})
            if writer:
                writer.write_scalars(step, results)
        return results

    # ---- loop -----------------------------------------------------------------------------------
    bar = progress(config.num_steps, initial=start, desc=config.data.name)
    t_start, steps_timed = None, 0
    step = start
    pending = []
    with PreemptionGuard() as guard:
        while step < config.num_steps:
            batch = to_device(next(data_iter))
            state, metrics = run_step(state, batch, hp)
            step += 1
            pending.append(metrics)
            if step == start + 2:  # skip compilation when timing
                jax.block_until_ready(state)
                t_start, steps_timed = time.perf_counter(), 0
            elif t_start is not None:
                steps_timed += 1
            last = step == config.num_steps
            if step % config.log_every == 0 or last or guard.requested:
                host = jax.device_get(pending)
                pending = []
                vals = {k: float(np.mean([m[k] for m in host])) for k in host[-1]}
                bad = [k for k in host[-1] if not all(np.isfinite(m[k]) for m in host)]
                if bad:
                    ckpt.wait()
                    raise NonFiniteError(
                        f"Non-finite {bad} before step {step}. The last good checkpoint (step "
                        f"{ckpt.latest_step()}) is kept in {ckpt.directory}; lower the learning "
                        "rate or change the loss/coding, then rerun to resume from it."
                    )
                if t_start is not None and steps_timed:
                    meta["steps_per_s"] = steps_timed / (time.perf_counter() - t_start)
                    vals["steps_per_s"] = meta["steps_per_s"]
                if writer:
                    writer.write_scalars(step, vals)
                bar.set_postfix(d=f"{vals['d_loss']:.3f}", g=f"{vals['g_loss']:.3f}")
            if step % config.sample_every == 0 or last:
                write_samples(step)
            every = config.get("eval_every", 0)
            if last or (every and step % every == 0):
                run_evals(step)
            bar.update(1)
            if step % config.checkpoint_every == 0 or last or guard.requested:
                ckpt.save(step, state, meta, data_iter=data_iter)
            if guard.requested:
                ckpt.close()
                bar.close()
                if writer:
                    writer.close()
                print(
                    f"SIGTERM: saved a checkpoint at step {step}; rerun the same command to resume."
                )
                return {"preempted_at": step}
    bar.close()
    ckpt.close()
    if start == config.num_steps:  # resumed a finished run: refresh the outputs
        write_samples(step)
        run_evals(step)
    if writer:
        writer.close()

    summary = {
        "steps": int(step),
        "steps_per_s": meta.get("steps_per_s"),
        "images_per_s": (meta.get("steps_per_s") or 0.0) * config.batch_size or None,
        "runner": runner,
        "devices": n_dev,
        "evals": meta["evals"],
        "final": meta["evals"][-1] if meta["evals"] else {},
        "best": _best(meta["evals"]),
        "config": config.to_dict(),
    }
    protocols = {  # how each evaluator's numbers were measured, where it says
        name: fn.protocol() for name, fn in (evaluators or {}).items() if hasattr(fn, "protocol")
    }
    if protocols:
        summary["protocols"] = protocols
    if is_main:
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2, default=str)
    return summary


# Metrics where larger is better; everything else is "lower is better".
_HIGHER_IS_BETTER = (
    "inception_score", "coverage", "accuracy", "precision", "recall", "density", "confidence",
    "diversity",
)  # fmt: skip


def _best(evals: list[dict]) -> dict:
    """Best value of every evaluation metric over the run (with its step)."""
    best: dict[str, dict] = {}
    for row in evals:
        for k, v in row.items():
            if k == "step" or v is None or not np.isfinite(v):
                continue
            higher = any(h in k for h in _HIGHER_IS_BETTER)
            cur = best.get(k)
            if cur is None or (v > cur["value"] if higher else v < cur["value"]):
                best[k] = {"value": v, "step": row["step"]}
    return best
