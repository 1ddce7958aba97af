"""The 2-D mixture trainer: `train(config, workdir, *, points=None)`.

R runs (losses × seeds × sweep points) train as one `jit(vmap(lax.scan(step)))` program with the
mixture sampled on device; `eval_every` steps form one scanned chunk. Reads top to bottom:

* build — check the whole config and the workdir (nothing is created before), then the runs,
  the step spec, the stacked states and hparams (`lsgan_jax.training.build.build_mixture`);
* restore — `guards.open_run`: lock, config check against the stored run, the newest usable
  checkpoint, writers; a finished run returns its stored summary and writes nothing;
* loop — a chunk; NaN/Inf check of the losses and of the state (a run that is not finite stops
  the study with `nan_policy="stop"`, or is marked and left behind with "mark"); evaluation of
  every run on fixed latents; snapshots; metrics; checkpoints (never of a non-finite state);
  SIGTERM saves and returns `{"preempted_at": step}`;
* summary — final metrics per run, mean ± s.e. per group, the protocol and the resolved config
  in `summary.json`, the evaluation history in `history.json`.

Resuming: everything but `RESUMABLE` must equal the stored config. `num_steps` may grow (not
shrink below the checkpoint); the checkpoint cadence and count, the snapshot steps, the NaN
policy and the run-to-device layout may change. `eval_every` may not: it is the length of the
compiled scan and the cadence of the stored history.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

import jax
import ml_collections
import numpy as np

from lsgan_jax.metrics import mixture as mixture_metrics
from lsgan_jax.studies import summarize
from lsgan_jax.training import guards, runners
from lsgan_jax.training import workdir as workdir_lib
from lsgan_jax.training.build import build_mixture, validate_mixture
from lsgan_jax.training.step import make_train_step, sample_latent

log = logging.getLogger(__name__)

#: Config fields that may differ from the stored run on resume.
RESUMABLE = frozenset(
    {
        "num_steps",
        "checkpoint_every",
        "keep_checkpoints",
        "snapshot_steps",
        "nan_policy",
        "shard_runs",
        "resume",
    }
)


def default_config() -> ml_collections.ConfigDict:
    """The mixture trainer's default config: the default study of ``experiments.mixture``.

    xudonmao/LSGAN's mixture networks (``mixture_mlp_g`` / ``mixture_mlp_d``), optimizers
    (Adam, G 1e-3, D 1e-4, β1 0.5) and simultaneous updates, on PacGAN's equal-weight 8-mode ring
    (radius 1, std 0.01), 3 seeds × {LSGAN (0, 1, 1), NS-GAN}, batch 512, 8,000 steps. The
    experiments derive their protocols from it (``docs/protocols.md``); a user of the installed
    package (which does not ship ``experiments``) starts here::

        config = mixture_trainer.default_config()
        config.num_steps = 2_000
        summary = mixture_trainer.train(config, "/tmp/ring")
    """
    c = ml_collections.ConfigDict()
    c.losses = ("lsgan", "nsgan")
    c.seeds = 3
    c.coding = ml_collections.ConfigDict({"a": 0.0, "b": 1.0, "c": 1.0})  # ZERO_ONE, as ls.py
    # Default data: PacGAN's ring, 8 equal-weight modes (the same 8 centres as the official ring,
    # which instead weights the (0, 1) mode 2/9: `experiments.mixture --variant=official`).
    c.data = ml_collections.ConfigDict(
        {
            "name": "ring",
            "label": "ring: 8 equal-weight modes, radius 1, std 0.01",
            "kwargs": {"radius": 1.0, "std": 0.01},
            "dataset_size": 0,  # 0: fresh samples every step (official); >0: a fixed dataset (PacGAN)
            "dataset_seed": 1234,
            # 0: fresh latents every step (official, PacGAN); >0: a fixed latent set (Welfert)
            "latent_pool_size": 0,
        }
    )
    c.model = ml_collections.ConfigDict(
        {"g": "mixture_mlp_g", "g_kwargs": {}, "d": "mixture_mlp_d", "d_kwargs": {}}
    )
    c.optim_g = ml_collections.ConfigDict(
        {"name": "adam", "lr": 1e-3, "b1": 0.5, "b2": 0.999, "eps": 1e-8}
    )
    c.optim_d = ml_collections.ConfigDict(
        {"name": "adam", "lr": 1e-4, "b1": 0.5, "b2": 0.999, "eps": 1e-8}
    )
    c.update_mode = "simultaneous"
    c.n_d = 1
    c.batch_size = 512
    c.num_steps = 8_000
    c.eval_every = 500
    c.snapshot_steps = (0, 2_000, 4_000, 6_000, 8_000)
    c.checkpoint_every = 2_000
    c.num_eval_samples = 2_500
    c.eval_seed = 2333
    c.ema_decay = 0.0
    c.nan_policy = "stop"
    c.compute_dtype = "float32"  # "bfloat16" for GPU/TPU: bf16 compute, float32 params/losses
    c.shard_runs = True
    c.keep_checkpoints = 2
    c.resume = True  # False: move an earlier run in --workdir aside (never deleted), start afresh
    return c


def train(
    config: ml_collections.ConfigDict, workdir: str, *, points: list[dict] | None = None
) -> dict:
    """Trains a vectorized 2-D mixture study and writes its outputs to `workdir`.

    Outputs: `config.json`, `metrics.jsonl`, TensorBoard events, `checkpoints/`,
    `snapshots/step_XXXXXXX.npz` (fixed-z samples of every run at `config.snapshot_steps`),
    `history.json`, `summary.json`; the caller draws the figures.

    Args:
      config: a mixture config (see `experiments/mixture.py`).
      workdir: output directory; an earlier run of the same config there is resumed.
      points: optional sweep points (config path -> value, traced fields only), vectorized.

    Returns:
      The summary dict (also in `workdir/summary.json`), or `{"preempted_at": step}`.

    Raises:
      ConfigError: a config or workdir mistake, or a resume whose config changed.
      NonFiniteError: NaN/Inf with `nan_policy="stop"`; names the last finite checkpoint.
    """
    # ---- checks (nothing is created before they pass) --------------------------------------------
    validate_mixture(config, points)
    workdir_lib.check_workdir_writable(workdir)
    run_config = config
    if points:  # the sweep points are part of what a resume must match
        run_config = ml_collections.ConfigDict(config.to_dict())
        run_config.sweep_points = [dict(p) for p in points]
    with contextlib.ExitStack() as stack:  # closes everything once, on every exit path
        run = guards.open_run(stack, workdir, run_config, resumable=RESUMABLE)
        if run.finished is not None:  # rerun of a finished run: its summary, nothing written
            return run.finished

        # ---- build -------------------------------------------------------------------------------
        runs, spec, states, hps, mixture, generate = build_mixture(config, points)
        mesh = None
        n_dev = jax.device_count()
        if config.get("shard_runs", True) and n_dev > 1 and len(runs) % n_dev == 0:
            mesh = runners.make_mesh(axis_name=runners.RUN_AXIS)
            states, hps = runners.shard_runs(states, mesh), runners.shard_runs(hps, mesh)
        chunk = runners.vectorized(make_train_step(spec), scan_steps=config.eval_every, mesh=mesh)
        z_eval = sample_latent(
            jax.random.PRNGKey(config.eval_seed),
            config.num_eval_samples,
            spec.latent_dim,
            spec.latent_dist,
        )
        use_ema = bool(config.get("ema_decay", 0.0))

        @jax.jit
        def evaluate(states):
            def one(g_params, g_rest):
                x = generate(g_params, g_rest, z_eval)
                return x, mixture_metrics.mixture_metrics(x, mixture)

            return jax.vmap(one)(states.g_ema if use_ema else states.g_params, states.g_rest)

        # ---- restore -----------------------------------------------------------------------------
        states, meta, start = run.restore(
            states,
            meta={"history": [], "diverged": [], "steps_per_s": None},
            desc="mixture",
            step_of=lambda s: s.step[0],
        )
        ckpt, writer = run.ckpt, run.writer
        index = {r.name: r.index for r in runs}
        diverged = set(meta.get("diverged", []))
        snap_dir = os.path.join(workdir, "snapshots")
        os.makedirs(snap_dir, exist_ok=True)

        def snapshot(step, samples, metrics):
            np.savez_compressed(
                os.path.join(snap_dir, f"step_{step:07d}.npz"),
                samples=np.asarray(samples, np.float32),
                **{k: np.asarray(v) for k, v in metrics.items()},
            )

        if start == 0 and 0 in config.snapshot_steps:
            samples, m = jax.device_get(evaluate(states))
            snapshot(0, samples, m)

        # ---- loop --------------------------------------------------------------------------------
        train_time, train_steps = 0.0, 0
        step = start
        while step < config.num_steps:
            t0 = time.perf_counter()
            states, metrics = chunk(states, hps)
            metrics = jax.device_get(metrics)  # (R, K) arrays; also waits for the chunk
            dt = time.perf_counter() - t0
            step += config.eval_every
            if step - start > config.eval_every:  # exclude the first (compiling) chunk
                train_time, train_steps = train_time + dt, train_steps + config.eval_every
            ok_steps = np.all([np.isfinite(v) for v in metrics.values()], axis=0)  # (R, K)
            finite = ok_steps.all(axis=1) & guards.finite_runs(states)
            newly = [runs[i].name for i in np.flatnonzero(~finite) if runs[i].name not in diverged]
            if newly and config.nan_policy == "stop":
                rows = ok_steps[[index[n] for n in newly]]  # first bad step of the chunk
                k = np.where(rows.all(1), config.eval_every - 1, np.argmin(rows, 1)).min()
                raise guards.nonfinite_error(
                    f"loss, gradient or state in run(s) {newly}",
                    step - config.eval_every + 1 + int(k),
                    ckpt,
                    "Lower the learning rate (in another --workdir, or with "
                    "--config.resume=False), or rerun with --config.nan_policy=mark to keep "
                    "the other runs going.",
                )
            if newly:
                diverged.update(newly)
                log.warning("Run(s) %s diverged (non-finite); marked and kept going.", newly)
            samples, ev = jax.device_get(evaluate(states))
            meta["history"].append(
                {"step": step, **{k: np.asarray(v).tolist() for k, v in ev.items()}}
            )
            if step in config.snapshot_steps:
                snapshot(step, samples, ev)
            scalars, postfix = {}, {}
            for group in dict.fromkeys(r.group for r in runs):
                ok = [r.index for r in runs if r.group == group and r.name not in diverged]
                if not ok:
                    continue
                for k, v in metrics.items():
                    scalars[f"{group}/{k}"] = np.mean(v[ok])  # mean over the chunk and seeds
                for k, v in ev.items():
                    scalars[f"{group}/eval/{k}"] = np.mean(np.asarray(v)[ok])
                postfix[f"{group} modes"] = f"{scalars[f'{group}/eval/modes_covered']:.2f}"
            if train_steps:
                scalars["steps_per_s"] = meta["steps_per_s"] = train_steps / train_time
            if writer:
                writer.write_scalars(step, scalars)
            run.bar.set_postfix(postfix)
            run.bar.update(config.eval_every)
            meta["diverged"] = sorted(diverged)
            stop = run.preemption.requested
            if step % config.checkpoint_every == 0 or step == config.num_steps or stop:
                marked = [index[n] for n in sorted(diverged)]  # NaN allowed only in these runs
                ckpt.save(step, states, meta, allow_nonfinite_runs=marked)
            if stop:
                return guards.preempted(run, step)

    # ---- summary ---------------------------------------------------------------------------------
    _, final = jax.device_get(evaluate(states))
    final = {k: np.asarray(v) for k, v in final.items()}
    sps = meta.get("steps_per_s")
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
            "steps_per_s": sps,
            "run_steps_per_s": (sps or 0.0) * len(runs) or None,
            "num_runs": len(runs),
            "config": run_config.to_dict(),
        },
    )
    if jax.process_index() == 0:
        guards.write_json(os.path.join(workdir, "history.json"), meta["history"], indent=None)
        guards.write_json(os.path.join(workdir, guards.SUMMARY), summary)
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


__all__ = ["RESUMABLE", "load_snapshots", "train"]
