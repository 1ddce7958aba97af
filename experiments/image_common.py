"""Shared config and entry point of the image experiments (digits, mnist, cifar10, celeba, lsun,
conditional): each experiment module overrides a few fields of `base_config()`."""

from __future__ import annotations

import json
import os

import ml_collections

from lsgan_jax.evaluators import inception as fid_evaluator
from lsgan_jax.training import image_trainer


def base_config() -> ml_collections.ConfigDict:
    """DCGAN-style LSGAN defaults shared by the image experiments (the paper's §2 settings)."""
    c = ml_collections.ConfigDict()
    c.variant = "default"
    c.seed = 0
    c.loss = "lsgan"
    c.coding = ml_collections.ConfigDict({"a": 0.0, "b": 1.0, "c": 1.0})  # the ICCV code's 0-1-1
    c.data = ml_collections.ConfigDict(
        {"name": "digits", "image_size": 32, "split": "train", "data_dir": ""}
    )
    c.model = ml_collections.ConfigDict(
        {
            "g": "dcgan_g",
            "g_kwargs": {},
            "d": "dcgan_d",
            "d_kwargs": {},
            "conditional": False,
            "output": "tanh",
        }
    )
    adam = {"name": "adam", "lr": 2e-4, "b1": 0.5, "b2": 0.999, "eps": 1e-8}
    c.optim_g = ml_collections.ConfigDict(dict(adam))
    c.optim_d = ml_collections.ConfigDict(dict(adam))
    c.update_mode = "alternating"  # D step, then G step (the official image code)
    c.n_d = 1
    c.gp = ""  # "" or "dragan" (LSGAN-GP of the TPAMI code)
    c.gp_weight = 0.0  # λ on the official ½·Σ loss scale (LSGAN-GP: 150); the step divides by B
    c.gp_scale = 30.0
    # LSGAN-GP as the official code (docs/protocols.md): "fixed" perturbation or "per_step";
    # λ on the ½·Σ scale ("sum") or on our ½·mean losses ("mean"); G's z "auto"/"shared"/"fresh".
    c.gp_perturbation = "fixed"
    c.gp_weight_scale = "sum"
    c.g_latents = "auto"
    c.reuse_real_batch = False  # n_d > 1: True reuses one real batch for every D update
    c.batch_size = 64
    c.num_steps = 10_000
    c.runner = "auto"  # auto | single | data_parallel | pmap
    c.compute_dtype = "float32"  # "bfloat16": bf16 compute, float32 params/losses (GPU/TPU)
    c.ema_decay = 0.0
    c.log_every = 50
    c.sample_every = 500
    c.num_samples = 64
    c.sample_seed = 42
    c.evals = ()  # in-loop evaluators by name: "inception" (FID/KID/IS), "digits" (classifier)
    c.eval_every = 0  # 0: evaluate only at the end
    c.num_eval_samples = 10_000  # generated samples per evaluation (every evaluator)
    c.eval_seed = 0  # seed of the fixed evaluation latents
    c.fid = ml_collections.ConfigDict(dict(fid_evaluator.DEFAULTS))  # the "inception" protocol
    c.checkpoint_every = 1_000
    c.keep_checkpoints = 2
    c.resume = True  # False: move an earlier run in --workdir aside (never deleted), start afresh
    return c


def make_smoke(c: ml_collections.ConfigDict, *, g_kwargs: dict, d_kwargs: dict) -> None:
    """Turns `c` into a seconds-long test variant: tiny models, 4 steps, batch 8, no evaluators."""
    c.model.g_kwargs = g_kwargs
    c.model.d_kwargs = d_kwargs
    c.batch_size = 8
    c.num_steps = 4
    c.log_every = 2
    c.sample_every = 4
    c.checkpoint_every = 2
    c.num_samples = 8
    c.evals = ()


def run(config: ml_collections.ConfigDict, workdir: str, *, evaluators=None) -> dict:
    """Trains with `lsgan_jax.training.image_trainer.train` and prints what it wrote.

    `evaluators` default to those named in `config.evals` (the trainer builds them).
    """
    summary = image_trainer.train(config, workdir, evaluators=evaluators)
    if "preempted_at" in summary:
        return summary
    sps = summary.get("steps_per_s")
    rate = f"{sps:.2f} steps/s ({summary['images_per_s']:.0f} images/s)" if sps else "n/a"
    print(f"{config.data.name}: {summary['steps']} steps on {summary['devices']} device(s), {rate}")
    if summary["final"]:
        print("final: " + json.dumps({k: round(v, 4) for k, v in summary["final"].items()}))
    print(
        f"Wrote {os.path.join(workdir, 'summary.json')} and {os.path.join(workdir, 'samples.png')}"
    )
    return summary
