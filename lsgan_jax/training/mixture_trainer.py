"""The 2-D mixture trainer: `train(config, workdir)`.

Linear and resumable (big_vision style): build → restore the latest checkpoint in `workdir` if
there is one → run → evaluate → checkpoint → summary. SIGTERM (TPU preemption) saves a checkpoint
at the next step boundary and exits cleanly; a non-finite loss stops with a clear message and
keeps the last good checkpoint.

This module holds the 2-D mixture trainer, which trains R runs (losses × seeds) as one
`jit(vmap(lax.scan(step)))` program with the data sampled on device.
"""

from __future__ import annotations

import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from lsgan_jax import losses as losses_lib
from lsgan_jax import models as models_lib
from lsgan_jax.data import mixtures
from lsgan_jax.errors import ConfigError, NonFiniteError
from lsgan_jax.metrics import mixture as mixture_metrics
from lsgan_jax.studies import (
    TRACED_FIELDS,
    run_value,
    runs_from_config,
    summarize,
)
from lsgan_jax.training import runners
from lsgan_jax.training.checkpoint import Checkpointer
from lsgan_jax.training.guards import PreemptionGuard
from lsgan_jax.training.metrics_log import MetricWriter
from lsgan_jax.training.progress import progress
from lsgan_jax.training.state import init_state, make_hparams, make_optimizer, stack
from lsgan_jax.training.step import (
    StepSpec,
    compute_dtype,
    latent_pool_sampler,
    make_generate,
    make_train_step,
    sample_latent,
)

log = logging.getLogger(__name__)


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks a mixture config before anything is built.

    Raises:
      ConfigError (a ValueError): with what to change.
    """
    try:
        _validate_config(config)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from e


def _validate_config(config: ml_collections.ConfigDict) -> None:
    for name in config.losses:
        losses_lib.get_loss_pair(name)
    if "lsgan" in config.losses:
        losses_lib.validate_coding(config.coding.a, config.coding.b, config.coding.c)
    if config.num_steps < 1 or config.eval_every < 1:
        raise ValueError("num_steps and eval_every must be positive.")
    if config.num_steps % config.eval_every:
        raise ValueError(
            f"num_steps={config.num_steps} must be a multiple of eval_every={config.eval_every}."
        )
    if config.checkpoint_every % config.eval_every:
        raise ValueError(
            f"checkpoint_every={config.checkpoint_every} must be a multiple of "
            f"eval_every={config.eval_every}."
        )
    bad = [s for s in config.snapshot_steps if s % config.eval_every]
    if bad:
        raise ValueError(
            f"snapshot_steps {bad} must be multiples of eval_every={config.eval_every} "
            "(steps past num_steps are ignored)."
        )
    if int(config.data.get("latent_pool_size", 0)) < 0:
        raise ValueError(
            f"data.latent_pool_size={config.data.latent_pool_size}; use 0 (fresh latents every "
            "step) or the size of a fixed latent set."
        )
    if config.nan_policy not in ("stop", "mark"):
        raise ValueError(f"nan_policy={config.nan_policy!r}; choose 'stop' or 'mark'.")


def build_mixture_study(config: ml_collections.ConfigDict, points: list[dict] | None = None):
    """Builds everything a vectorized mixture study needs (no training).

    Returns:
      (runs, spec, states, hparams, mixture, generate) where `states`/`hparams` are stacked over
      runs and `generate(g_params, g_rest, z)` samples one run's generator in inference mode.
    """
    validate_config(config)
    runs = runs_from_config(config, points)
    loss_names = tuple(dict.fromkeys(r.loss for r in runs))
    for name in loss_names:
        try:
            losses_lib.get_loss_pair(name)
        except ValueError as e:
            raise ConfigError(str(e)) from e
    for r in runs:
        if r.loss == "lsgan":
            a, b, c = (run_value(config, r, f"coding.{k}") for k in "abc")
            try:
                losses_lib.validate_coding(a, b, c)
            except ValueError as e:
                raise ConfigError(f"run {r.name}: {e}") from e
    mixture = mixtures.get_mixture(config.data.name, **config.data.kwargs)
    if config.data.dataset_size:
        points = mixtures.make_fixed_dataset(
            mixture, jax.random.PRNGKey(config.data.dataset_seed), config.data.dataset_size
        )
        sample_real = lambda key, n: mixtures.sample_from_dataset(points, key, n)
    else:
        sample_real = lambda key, n: mixtures.sample(mixture, key, n)

    dtype = compute_dtype(config)
    dkw = {} if dtype is None else {"dtype": dtype}

    def build_models(key):
        g = models_lib.create(
            config.model.g, rngs=nnx.Rngs(params=key), **dkw, **config.model.g_kwargs
        )
        d = models_lib.create(
            config.model.d,
            rngs=nnx.Rngs(params=jax.random.fold_in(key, 1)),
            **dkw,
            **config.model.d_kwargs,
        )
        return g, d

    g0, d0 = build_models(jax.random.PRNGKey(0))
    g_tx, d_tx = make_optimizer(config.optim_g), make_optimizer(config.optim_d)
    sample_latents = None
    if config.data.get("latent_pool_size", 0):  # a fixed latent set, shared by all runs
        pool = sample_latent(
            jax.random.fold_in(jax.random.PRNGKey(config.data.dataset_seed), 1),
            config.data.latent_pool_size,
            g0.latent_dim,
            g0.latent_dist,
        )
        sample_latents = latent_pool_sampler(pool)
    spec = StepSpec(
        g_graphdef=nnx.graphdef(g0),
        d_graphdef=nnx.graphdef(d0),
        g_tx=g_tx,
        d_tx=d_tx,
        batch_size=config.batch_size,
        latent_dim=g0.latent_dim,
        latent_dist=g0.latent_dist,
        loss_names=loss_names,
        update=config.update_mode,
        n_d=config.n_d,
        sample_real=sample_real,
        sample_latents=sample_latents,
        compute_dtype=dtype or jnp.float32,
    )

    def init_one(seed):
        key = jax.random.PRNGKey(seed)
        g, d = build_models(jax.random.fold_in(key, 0))
        return init_state(g, d, g_tx, d_tx, jax.random.fold_in(key, 1))

    # One compiled init called per run, then stacked. (`jit(vmap(init))` can deadlock XLA:CPU's
    # thread pool on the batched QR of the orthogonal initializer, seen with jaxlib 0.10.2.)
    init_jit = jax.jit(init_one)
    states = stack([init_jit(jnp.asarray(r.seed)) for r in runs])
    hps = stack(
        [
            make_hparams(
                **{
                    field: run_value(config, r, path)
                    for path, field in TRACED_FIELDS.items()
                    if path != "ema_decay" or "ema_decay" in config
                },
                loss_index=loss_names.index(r.loss),
            )
            for r in runs
        ]
    )
    return runs, spec, states, hps, mixture, make_generate(spec)


def train(
    config: ml_collections.ConfigDict, workdir: str, *, points: list[dict] | None = None
) -> dict:
    """Trains a vectorized 2-D mixture study and writes its outputs to `workdir`.

    Outputs: `metrics.jsonl`, TensorBoard events, `checkpoints/`, `snapshots/step_XXXXXX.npz`
    (2,500 fixed-z samples of every run), `summary.json`; the caller draws the figure.

    Returns:
      The summary dict (also written to `workdir/summary.json`).
    """
    os.makedirs(workdir, exist_ok=True)
    runs, spec, states, hps, mixture, generate = build_mixture_study(config, points)
    num_runs = len(runs)
    mesh = None
    if (
        config.get("shard_runs", True)
        and jax.device_count() > 1
        and num_runs % jax.device_count() == 0
    ):
        mesh = runners.make_mesh(axis_name=runners.RUN_AXIS)
        states, hps = runners.shard_runs(states, mesh), runners.shard_runs(hps, mesh)
    chunk = runners.vectorized(make_train_step(spec), scan_steps=config.eval_every, mesh=mesh)

    z_eval = sample_latent(
        jax.random.PRNGKey(config.eval_seed),
        config.num_eval_samples,
        spec.latent_dim,
        spec.latent_dist,
    )

    @jax.jit
    def evaluate(states):
        def one(g_params, g_rest):
            x = generate(g_params, g_rest, z_eval)
            return x, mixture_metrics.mixture_metrics(x, mixture)

        return jax.vmap(one)(
            states.g_ema if config.get("ema_decay", 0.0) else states.g_params, states.g_rest
        )

    ckpt = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=config.get("keep_checkpoints", 2)
    )
    meta = {"config": config.to_dict(), "history": [], "diverged": [], "steps_per_s": None}
    restored = ckpt.restore_latest(states)
    if restored is not None:
        states, meta, start = restored
        log.info("Resumed from step %d in %s", start, workdir)
        print(f"Resumed from the checkpoint at step {start} in {workdir}.")
    start = int(jax.device_get(states.step[0]))
    snap_dir = os.path.join(workdir, "snapshots")
    os.makedirs(snap_dir, exist_ok=True)
    writer = MetricWriter(workdir) if jax.process_index() == 0 else None
    if writer and start == 0:
        writer.write_hparams(config.to_dict())

    def snapshot(step, samples, metrics):
        np.savez_compressed(
            os.path.join(snap_dir, f"step_{step:07d}.npz"),
            samples=np.asarray(samples, np.float32),
            **{k: np.asarray(v) for k, v in metrics.items()},
        )

    if start == 0 and 0 in config.snapshot_steps:
        samples, m = jax.device_get(evaluate(states))
        snapshot(0, samples, m)

    diverged = set(meta.get("diverged", []))
    train_time, train_steps = 0.0, 0
    bar = progress(config.num_steps, initial=start, desc="mixture")
    step = start
    with PreemptionGuard() as guard:
        while step < config.num_steps:
            t0 = time.perf_counter()
            states, metrics = chunk(states, hps)
            metrics = jax.device_get(metrics)  # (R, K) arrays; also waits for the chunk
            dt = time.perf_counter() - t0
            step += config.eval_every
            if step - start > config.eval_every:  # exclude the first (compiling) chunk
                train_time, train_steps = train_time + dt, train_steps + config.eval_every
            finite = np.all([np.isfinite(v).all(axis=1) for v in metrics.values()], axis=0)
            newly = [runs[i].name for i in np.flatnonzero(~finite) if runs[i].name not in diverged]
            if newly:
                if config.nan_policy == "stop":
                    ckpt.wait()
                    raise NonFiniteError(
                        f"Non-finite loss or gradient in run(s) {newly} between steps "
                        f"{step - config.eval_every} and {step}. The last good checkpoint "
                        f"(step {ckpt.latest_step()}) is kept in {ckpt.directory}. Lower the "
                        "learning rate, or set --config.nan_policy=mark to keep the other runs going."
                    )
                diverged.update(newly)
                log.warning("Run(s) %s diverged (non-finite); marked and kept going.", newly)
            samples, ev = jax.device_get(evaluate(states))
            meta["history"].append(
                {"step": step, **{k: np.asarray(v).tolist() for k, v in ev.items()}}
            )
            if step in config.snapshot_steps:
                snapshot(step, samples, ev)
            if writer:
                scalars = {}
                for group in dict.fromkeys(r.group for r in runs):
                    sel = [r.index for r in runs if r.group == group]
                    ok = [i for i in sel if runs[i].name not in diverged]
                    if not ok:
                        continue
                    for k, v in metrics.items():
                        scalars[f"{group}/{k}"] = np.mean(v[ok])  # mean over the chunk and seeds
                    for k, v in ev.items():
                        scalars[f"{group}/eval/{k}"] = np.mean(np.asarray(v)[ok])
                if train_steps:
                    scalars["steps_per_s"] = train_steps / train_time
                writer.write_scalars(step, scalars)
            bar.update(config.eval_every)
            meta["diverged"] = sorted(diverged)
            if train_steps:
                meta["steps_per_s"] = train_steps / train_time
            if step % config.checkpoint_every == 0 or step == config.num_steps or guard.requested:
                ckpt.save(step, states, meta)
            if guard.requested:
                ckpt.wait()
                print(
                    f"SIGTERM: saved a checkpoint at step {step}; rerun the same command to resume."
                )
                bar.close()
                if writer:
                    writer.close()
                ckpt.close()
                return {"preempted_at": step}
    bar.close()
    ckpt.close()
    if writer:
        writer.close()

    _, final = jax.device_get(evaluate(states))
    final = {k: np.asarray(v) for k, v in final.items()}
    summary = summarize(
        runs,
        final,
        config,
        extra={
            "protocol": {
                "data": config.data.to_dict(),
                "num_modes": int(mixture.means.shape[0]),
                "num_eval_samples": config.num_eval_samples,
                "hq_threshold_std": 3.0,
                "steps": config.num_steps,
                "batch_size": config.batch_size,
                "update": config.update_mode,
                "coding": config.coding.to_dict(),
            },
            "diverged_runs": sorted(diverged),
            "steps_per_s": meta.get("steps_per_s"),
            "run_steps_per_s": (meta.get("steps_per_s") or 0.0) * num_runs or None,
            "num_runs": num_runs,
        },
    )
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(workdir, "history.json"), "w") as f:
        json.dump(meta["history"], f)
    return summary


def load_snapshots(workdir: str) -> dict[int, dict[str, np.ndarray]]:
    """Reads `workdir/snapshots/*.npz` into {step: arrays}."""
    snap_dir = os.path.join(workdir, "snapshots")
    out = {}
    for name in sorted(os.listdir(snap_dir)):
        if name.startswith("step_") and name.endswith(".npz"):
            with np.load(os.path.join(snap_dir, name)) as z:
                out[int(name[5:12])] = {k: z[k] for k in z.files}
    return out


__all__ = [
    "build_mixture_study",
    "load_snapshots",
    "train",
    "validate_config",
]
