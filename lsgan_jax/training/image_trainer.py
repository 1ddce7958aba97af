"""The image trainer: `train(config, workdir, *, evaluators=None)`, one GAN on a TFDS/grain
pipeline, on one device or data parallel. Reads top to bottom:

* build — check the whole config and the workdir (nothing is created before), build the
  evaluators of `config.evals` (unless given); pick the runner:
  one device (`jax.jit`), a data-parallel mesh over all devices (`jit(shard_map)`, the default
  when more than one device is visible, also across hosts after `jax.distributed.initialize`), or
  `jax.pmap` when `config.runner == "pmap"`; the dataset (each process reads its shard through
  `lsgan_jax.data.images.make_iterator`); models, step spec, state and hparams
  (`lsgan_jax.training.build.build_image`, which checks that the images fit the models);
* restore — `guards.open_run`: lock, config check against the stored run, the newest usable
  checkpoint including the data iterator position (an interrupted run continues bitwise
  identically), writers; a finished run returns its stored summary and writes nothing;
* loop — the train step; every `log_every` steps the metrics (`metrics.jsonl`, TensorBoard,
  progress line) and a NaN/Inf check; every `sample_every` steps a sample grid from fixed latents
  (EMA weights when enabled); the `evaluators` every `eval_every` steps (0: only at the end) and
  at the end; every `checkpoint_every` steps (and on SIGTERM) a checkpoint of a state checked
  finite first;
* summary — `summary.json` with the final and best evaluation values, each evaluator's protocol,
  the measured steps/s and the resolved config.

Resuming: everything but `RESUMABLE` must equal the stored config: `num_steps` may grow (not
shrink below the checkpoint); the logging, sampling, checkpoint and evaluation cadences, the
checkpoint count, the sample-grid size and the evaluators (`evals`, `num_eval_samples`, `eval_seed`, `fid.*`)
may change.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lsgan_jax import viz
from lsgan_jax.errors import ConfigError
from lsgan_jax.evaluators import make_evaluators
from lsgan_jax.training import guards, runners
from lsgan_jax.training import workdir as workdir_lib
from lsgan_jax.training.build import build_image, choose_runner, validate_image
from lsgan_jax.training.step import make_generate, make_train_step, sample_latent

#: Config fields that may differ from the stored run on resume.
RESUMABLE = frozenset(
    {
        "num_steps",
        "log_every",
        "sample_every",
        "num_samples",
        "checkpoint_every",
        "keep_checkpoints",
        "eval_every",
        "evals",
        "num_eval_samples",
        "eval_seed",
        "fid",
        "resume",
    }
)

# An evaluation: (generate_fn, step) -> dict of scalars; built from `config.evals`.
Evaluator = Callable[[Callable[[jax.Array, Any], jax.Array], int], dict[str, float]]

_ADVICE = (
    "Lower the learning rate or change the loss/coding, in another --workdir or with "
    "--config.resume=False."
)


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    evaluators: dict[str, Evaluator] | None = None,
) -> dict:
    """Trains one image GAN; see the module docstring.

    Args:
      config: the experiment config (see `experiments/image_common.py` for the fields).
      workdir: output directory; an earlier run of the same config there is resumed.
      evaluators: default: those named in `config.evals`, built before anything is written
        (`lsgan_jax.evaluators.make_evaluators`). Name -> function
        `(generate, step) -> {metric: value}` run every
        `config.eval_every` steps (0: never during training) and always at the end; one with a
        `protocol()` method has it recorded in `summary.json` under `protocols`;
        `generate(z, labels)` samples the generator (EMA weights when enabled) in inference
        mode, on host-visible arrays.

    Returns:
      The summary dict (also in `workdir/summary.json`), or `{"preempted_at": step}`.

    Raises:
      ConfigError: a config, dataset or workdir mistake, or a resume whose config changed.
      NonFiniteError: NaN/Inf in the losses or the state; names the last finite checkpoint.
    """
    # ---- build -----------------------------------------------------------------------------------
    validate_image(config)
    workdir_lib.check_workdir_writable(workdir)
    runner, n_dev = choose_runner(config)
    from lsgan_jax.data import images  # noqa: PLC0415  (TFDS/grain only for image runs)

    size = config.data.image_size
    data_kw = dict(
        split=config.data.get("split", "train"), data_dir=config.data.get("data_dir", "") or None
    )
    try:
        _, info = images.load_source(config.data.name, image_size=size, **data_kw)
    except (images.DatasetNotPreparedError, images.MissingDependencyError, ValueError) as e:
        raise ConfigError(str(e)) from e  # not prepared, TFDS missing, unknown name or split
    num_classes = int(info.num_classes)
    axis = runners.DATA_AXIS if runner in ("data_parallel", "pmap") else None
    spec, state, hp = build_image(
        config,
        axis_name=axis,
        num_classes=num_classes,
        data_shape=(size, size, info.image_shape[2]),
    )
    if evaluators is None:  # missing weights or datasets fail here, before the workdir
        evaluators = make_evaluators(config)
    data_iter = images.make_iterator(
        config.data.name, global_batch=config.batch_size, image_size=size, seed=config.seed,
        **data_kw,
    )  # fmt: skip
    # With n_d > 1 every D update takes its own real batch: n_d batches stacked on a new axis 0.
    stacked = spec.n_d > 1 and not spec.reuse_real_batch
    batch_axis = 1 if stacked else 0
    mesh, train_step = None, make_train_step(spec)
    if runner == "single":
        run_step = runners.single(train_step)
    elif runner == "data_parallel":
        mesh = runners.make_mesh()
        run_step = runners.data_parallel(
            train_step, mesh, global_batch=config.batch_size, batch_axis=batch_axis
        )
        state = runners.replicate(state, mesh)
    else:
        run_step = runners.pmap(train_step, global_batch=config.batch_size, batch_axis=batch_axis)

    keys = ("image", "label") if spec.conditional else ("image",)
    sharding = None
    if mesh is not None:  # each process's local rows, split over the mesh on the example axis
        sharding = NamedSharding(mesh, P(*([None] * batch_axis), runners.DATA_AXIS))

    def next_batch():
        if stacked:
            batches = [next(data_iter) for _ in range(spec.n_d)]
            batch = {k: np.stack([np.asarray(b[k]) for b in batches]) for k in keys}
        else:
            b = next(data_iter)
            batch = {k: np.asarray(b[k]) for k in keys}
        if sharding is None:
            return batch
        return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}

    generate_fn = jax.jit(make_generate(spec))
    use_ema = config.get("ema_decay", 0.0) > 0
    z_fixed = sample_latent(
        jax.random.PRNGKey(config.get("sample_seed", 42)),
        config.get("num_samples", 64),
        spec.latent_dim,
        spec.latent_dist,
    )
    labels_fixed = np.arange(z_fixed.shape[0]) % max(num_classes, 1) if spec.conditional else None

    def generate(z, labels=None):  # the current state's G (EMA when enabled)
        return generate_fn(state.g_ema if use_ema else state.g_params, state.g_rest, z, labels)

    with contextlib.ExitStack() as stack:  # closes everything once, on every exit path
        run = guards.open_run(stack, workdir, config, resumable=RESUMABLE)
        if run.finished is not None:  # rerun of a finished run: its summary, nothing written
            return run.finished

        # ---- restore -----------------------------------------------------------------------------
        state, meta, start = run.restore(
            state,
            meta={"evals": [], "steps_per_s": None},
            desc=config.data.name,
            data_iter=data_iter,
        )
        ckpt, writer = run.ckpt, run.writer

        def write_samples(step):
            if writer is None:  # only process 0 writes
                return
            grid = viz.image_grid(jax.device_get(generate(z_fixed, labels_fixed)))
            viz.save_image(grid, os.path.join(workdir, "samples", f"step_{step:07d}.png"))
            viz.save_image(grid, os.path.join(workdir, "samples.png"))
            writer.write_image(step, "samples", grid)

        def run_evals(step):
            results = {}
            for name, fn in (evaluators or {}).items():
                results.update({f"{name}/{k}": float(v) for k, v in fn(generate, step).items()})
            if results:
                meta["evals"].append({"step": step, **results})
                if writer:
                    writer.write_scalars(step, results)

        # ---- loop --------------------------------------------------------------------------------
        t_start, steps_timed = None, 0
        step, pending = start, []
        while step < config.num_steps:
            state, metrics = run_step(state, next_batch(), hp)
            step += 1
            pending.append(metrics)
            if step == start + 2:  # skip compilation when timing
                jax.block_until_ready(state)
                t_start, steps_timed = time.perf_counter(), 0
            elif t_start is not None:
                steps_timed += 1
            last, stop = step == config.num_steps, run.preemption.requested
            if step % config.log_every == 0 or last or stop:
                host, pending = jax.device_get(pending), []
                bad = [i for i, m in enumerate(host) if not all(np.isfinite(v) for v in m.values())]
                if bad:
                    raise guards.nonfinite_error(
                        "loss", step - len(host) + 1 + bad[0], ckpt, _ADVICE
                    )
                vals = {k: float(np.mean([m[k] for m in host])) for k in host[-1]}
                if t_start is not None and steps_timed:
                    meta["steps_per_s"] = steps_timed / (time.perf_counter() - t_start)
                    vals["steps_per_s"] = meta["steps_per_s"]
                if writer:
                    writer.write_scalars(step, vals)
                run.bar.set_postfix(
                    {"d_loss": f"{vals['d_loss']:.3f}", "g_loss": f"{vals['g_loss']:.3f}"}
                )
            if step % config.sample_every == 0 or last:
                write_samples(step)
            every = config.get("eval_every", 0)
            if last or (every and step % every == 0):
                run_evals(step)
            run.bar.update(1)
            if step % config.checkpoint_every == 0 or last or stop:  # refuses a NaN state
                ckpt.save(step, state, meta, data_iter=data_iter)
            if stop:
                return guards.preempted(run, step)
        if start == config.num_steps and not any(e["step"] == start for e in meta["evals"]):
            run_evals(start)  # a run that ended before its summary was written

    # ---- summary ---------------------------------------------------------------------------------
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
    if jax.process_index() == 0:
        guards.write_json(os.path.join(workdir, guards.SUMMARY), summary)
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


__all__ = ["RESUMABLE", "Evaluator", "train"]
