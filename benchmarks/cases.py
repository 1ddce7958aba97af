"""The benchmark cases: each builds "ours" and a reference, times them and returns rows.

A case is ``case_NAME(ctx, cfg) -> list[row]`` with ``cfg`` its entry of the suite
(:data:`benchmarks.run.SUITES`); :data:`CASE_FNS` maps the names of :data:`CASES` to them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from benchmarks.flops import gan_step_flops
from benchmarks.harness import (
    TARGETS,
    Context,
    block,
    copy_tree,
    environment,
    interleave,
    make_row,
    set_target,
)
from lsgan_jax.models.layers import resolve_deconv_impl
from lsgan_jax.training import runners
from lsgan_jax.training.state import unstack
from lsgan_jax.training.step import latent_pool_sampler, make_train_step

CASES = (
    "mixture_official",
    "mixture_vectorized_vs_sequential",
    "dcgan64",
    "dcgan28_digits",
    "lsun112",
    "pipeline",
)

# Model sizes of each case (the paper's); suites override batch sizes and a few widths.
MIXTURE_G = {}  # mixture_mlp_g defaults: z 256 -> 128 tanh -> 128 tanh -> 2
MIXTURE_D = {}  # mixture_mlp_d defaults: 2 -> 128 tanh -> 128 tanh -> 1
DCGAN64_G = dict(image_size=64, channels=3, base_features=64, latent_dim=100, kernel_size=5)
DCGAN64_D = dict(image_size=64, channels=3, base_features=64, kernel_size=5)
DIGIT_G = dict(image_size=28, channels=1, base_features=64, latent_dim=100, kernel_size=5)
DIGIT_D = dict(image_size=28, channels=1, hidden=500)
LSUN_G = dict(image_size=112, channels=3, base_features=64, latent_dim=1024, kernel_size=3)
LSUN_D = dict(image_size=112, channels=3, base_features=64, kernel_size=5)

IMPLS = ("subpixel", "conv_transpose")


# ---------------------------------------------------------------------------------------------
# Cases.
# ---------------------------------------------------------------------------------------------


def _matmul_variants(ctx: Context, n: int, dtype_name: str) -> dict[str, Callable[[], float]]:
    dt = jnp.dtype(dtype_name)
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(ka, (n, n), jnp.float32).astype(dt)
    b = jax.random.normal(kb, (n, n), jnp.float32).astype(dt)
    mm = jax.jit(lambda a, b: a @ b)
    gflop = 2.0 * n**3 / 1e9

    def ours() -> float:
        block(mm(a, b))
        return gflop

    variants = {"ours": ours}
    if ctx.torch_ref is not None:
        import torch  # noqa: PLC0415

        tdt = torch.bfloat16 if dtype_name == "bfloat16" else torch.float32
        ref_mm = ctx.torch_ref.matmul_call(n, dtype=tdt, device=ctx.torch_device)

        def ref() -> float:
            ref_mm()
            ctx.torch_ref.sync(ctx.torch_device)
            return gflop

        variants["reference"] = ref
    return variants


def case_matmul(ctx: Context, n: int) -> list[dict]:
    """The machine's matmul peak in the compute dtype: JAX (ours) and torch.mm (reference).

    `peak_gflops` is the best JAX repeat (the other rows' utilisation is relative to it).
    """
    rows = []
    for dtype_name in ["float32"] + (["bfloat16"] if ctx.bf16 else []):
        variants = _matmul_variants(ctx, n, dtype_name)
        rates, calls, shares = interleave(
            variants, repeats=max(ctx.repeats, 3), target_s=ctx.target_s, log=ctx.log
        )
        ctx.peak[dtype_name] = max(rates["ours"])
        row = make_row(
            f"matmul_peak[{dtype_name}]",
            unit="GFLOP/s",
            ours=rates["ours"],
            reference=rates.get("reference"),
            shares=(shares.get("ours"), shares.get("reference")),
            ctx=ctx,
            config={"n": n, "dtype": dtype_name, "calls_per_repeat": calls},
        )
        row["peak_gflops"] = ctx.peak[dtype_name]
        row["env"] = environment(ctx)
        rows.append(row)
    return rows


def _mixture_setup(ctx: Context, cfg: dict, seeds: int):
    from experiments import mixture as mixture_exp  # noqa: PLC0415
    from lsgan_jax.training import build  # noqa: PLC0415

    c = mixture_exp.get_config("official")
    c.seeds = seeds
    c.losses = ("lsgan",)
    c.batch_size = cfg["batch"]
    g_kwargs = {**MIXTURE_G, **cfg.get("g_kwargs", {})}
    d_kwargs = {**MIXTURE_D, **cfg.get("d_kwargs", {})}
    if ctx.bf16:
        g_kwargs["dtype"] = d_kwargs["dtype"] = jnp.bfloat16
    c.model.g_kwargs, c.model.d_kwargs = g_kwargs, d_kwargs
    runs, spec, states, hps, mixture, _ = build.build_mixture(c)
    if ctx.bf16:
        spec = dataclasses.replace(spec, compute_dtype=jnp.bfloat16)
    flat_g = {k: v for k, v in g_kwargs.items() if k != "dtype"}
    flat_d = {k: v for k, v in d_kwargs.items() if k != "dtype"}
    flops = gan_step_flops(c.model.g, flat_g, c.model.d, flat_d, c.batch_size)[2]
    return c, spec, states, hps, mixture, flops


def case_mixture_official(ctx: Context, cfg: dict) -> list[dict]:
    """One official mixture run: scanned (K steps per call) and unscanned, vs PyTorch eager."""
    c, spec, states, hps, mixture, flops = _mixture_setup(ctx, cfg, seeds=1)
    step = make_train_step(spec)
    k, chunk = cfg["scan_steps"], cfg["no_scan_chunk"]
    scanned, plain = runners.single(step, scan_steps=k), runners.single(step)
    # Diagnostic, not the protocol: latents drawn from a fixed pool (`latent_pool_sampler`)
    # instead of fresh Threefry normals, to measure what the PRNG costs in the step.
    pool = jax.random.normal(jax.random.PRNGKey(5), (cfg.get("pool", 4096), spec.latent_dim))
    pooled = runners.single(
        make_train_step(dataclasses.replace(spec, sample_latents=latent_pool_sampler(pool))),
        scan_steps=k,
    )
    hp = unstack(hps, 0)
    box_scan, box_plain = [copy_tree(unstack(states, 0))], [copy_tree(unstack(states, 0))]
    box_pool = [copy_tree(unstack(states, 0))]

    def ours_pool() -> float:
        box_pool[0], metrics = pooled(box_pool[0], hp)
        block((box_pool[0], metrics))
        return k

    def ours_scan() -> float:
        box_scan[0], metrics = scanned(box_scan[0], hp)
        block((box_scan[0], metrics))
        return k

    def ours_plain() -> float:
        for _ in range(chunk):
            box_plain[0], metrics = plain(box_plain[0], None, hp)
        block((box_plain[0], metrics))
        return chunk

    variants = {"scan": ours_scan, "no_scan": ours_plain, "latent_pool": ours_pool}
    g_kw = c.model.g_kwargs
    if ctx.torch_ref is not None:
        tr = ctx.torch_ref
        ref_step = tr.mixture_step(
            means=np.asarray(mixture.means),
            std=float(np.asarray(mixture.stds)[0]),
            batch=c.batch_size,
            latent_dim=g_kw.get("latent_dim", 256),
            g_hidden=g_kw.get("hidden", 128),
            d_hidden=c.model.d_kwargs.get("hidden", 128),
            lr_g=c.optim_g.lr,
            lr_d=c.optim_d.lr,
            b1=c.optim_d.b1,
            device=ctx.torch_device,
            amp_dtype=ctx.amp_dtype(),
        )
        variants["reference"] = _torch_call(ctx, ref_step, cfg.get("ref_chunk", 5))
    rates, calls, shares = interleave(variants, **ctx.timing(cfg))
    config = {
        "batch": c.batch_size,
        "runs": 1,
        "model": f"{c.model.g}{dict(g_kw)} / {c.model.d}{dict(c.model.d_kwargs)}",
        "update": spec.update,
        "dtype": ctx.dtype_name,
        "torch_threads": ctx.torch_threads,
        "calls_per_repeat": calls,
    }
    extra = {
        "scan": {"scan_steps": k},
        "no_scan": {"steps_dispatched_per_block": chunk},
        "latent_pool": {"scan_steps": k, "latents": f"pool of {pool.shape[0]} (diagnostic)"},
    }
    names = {"scan": "scan", "no_scan": "no_scan", "latent_pool": "scan,latent_pool"}
    rows = [
        make_row(
            f"mixture_official[{names[v]}]",
            unit="steps/s",
            ours=rates[v],
            reference=rates.get("reference"),
            shares=(shares.get(v), shares.get("reference")),
            ctx=ctx,
            config={**config, **extra[v]},
            flops_per_unit=flops,
        )
        for v in ("scan", "no_scan", "latent_pool")
    ]
    rows[0]["scan_speedup_vs_no_scan"] = rows[0]["ours_per_s"] / rows[1]["ours_per_s"]
    return rows


def case_mixture_vectorized(ctx: Context, cfg: dict) -> list[dict]:
    """R official runs as one vmapped program (ours) vs the same R runs one after another."""
    r = cfg["runs"]
    c, spec, states, hps, _, flops = _mixture_setup(ctx, cfg, seeds=r)
    step = make_train_step(spec)
    k = cfg["scan_steps"]
    vec = runners.vectorized(step, scan_steps=k)
    seq = runners.single(step, scan_steps=k)
    seq_states = [copy_tree(unstack(states, i)) for i in range(r)]
    seq_hps = [unstack(hps, i) for i in range(r)]
    box = [copy_tree(states)]

    def vectorized() -> float:
        box[0], metrics = vec(box[0], hps)
        block((box[0], metrics))
        return r * k

    def sequential() -> float:
        out = []
        for i in range(r):
            seq_states[i], metrics = seq(seq_states[i], seq_hps[i])
            out.append(metrics)
        block((seq_states, out))
        return r * k

    rates, calls, shares = interleave(
        {"vectorized": vectorized, "sequential": sequential}, **ctx.timing(cfg)
    )
    row = make_row(
        "mixture_vectorized_vs_sequential",
        unit="run-steps/s",
        ours=rates["vectorized"],
        reference=rates["sequential"],
        shares=(shares.get("vectorized"), shares.get("sequential")),
        ctx=ctx,
        config={
            "batch": c.batch_size,
            "runs": r,
            "scan_steps": k,
            "dtype": ctx.dtype_name,
            "reference": "the same runs, one runners.single(scan) call each, in turn",
            "calls_per_repeat": calls,
        },
        flops_per_unit=flops,
    )
    return [row]


def _adam_cfg(lr: float = 2e-4) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {"name": "adam", "lr": lr, "b1": 0.5, "b2": 0.999, "eps": 1e-8}
    )


def _jax_image_step(
    ctx: Context, g_name: str, g_kwargs: dict, d_name: str, d_kwargs: dict, batch: int, impl: str
) -> Callable[[int], float]:
    """Our image step (D then G, LSGAN 0-1-1, Adam 2e-4 β1 .5) on a fixed real batch on device,
    built by the trainers' own `build_image` from an image config."""
    from experiments import image_common  # noqa: PLC0415
    from lsgan_jax.training import build  # noqa: PLC0415

    c = image_common.base_config()
    c.model.g, c.model.d = g_name, d_name
    # D's stride-2 conv input gradients are stride-2 transposed convs: both take `impl`.
    c.model.g_kwargs = {**g_kwargs, "deconv_impl": impl}
    c.model.d_kwargs = {**d_kwargs, "deconv_impl": impl}
    c.loss, c.update_mode, c.batch_size, c.seed = "lsgan", "alternating", batch, 0
    c.coding.update(a=0.0, b=1.0, c=1.0)
    c.optim_g, c.optim_d = _adam_cfg(), _adam_cfg()
    c.compute_dtype = "bfloat16" if ctx.bf16 else "float32"
    spec, state, hp = build.build_image(c, axis_name=None)
    box = [state]
    image_shape = (g_kwargs["image_size"], g_kwargs["image_size"], g_kwargs["channels"])
    real = jax.random.uniform(jax.random.PRNGKey(3), (batch, *image_shape), minval=-1.0)
    fn = runners.single(make_train_step(spec))

    def call(chunk: int) -> float:
        for _ in range(chunk):
            box[0], metrics = fn(box[0], {"image": real}, hp)
        block((box[0], metrics))
        return chunk

    return call


def _torch_call(ctx: Context, step: Callable[[], None], chunk: int) -> Callable[[], float]:
    """`chunk` PyTorch steps, then a device sync.

    The thread count stays what `make_context` set for the whole process: switching
    `torch.set_num_threads` between timed variants was seen to slow the 2-thread runs of this
    PyTorch build several-fold afterwards (OpenMP team re-creation), so compare thread counts
    in separate processes (`--torch_threads`).
    """

    def call() -> float:
        for _ in range(chunk):
            step()
        ctx.torch_ref.sync(ctx.torch_device)
        return chunk

    return call


def _image_case(
    ctx: Context,
    cfg: dict,
    *,
    name: str,
    g_name: str,
    g_defaults: dict,
    d_name: str,
    d_defaults: dict,
    torch_models: Callable[[dict, dict], tuple[Any, Any]],
) -> list[dict]:
    batch, chunk = cfg["batch"], cfg.get("chunk", 1)
    g_kwargs = {**g_defaults, **cfg.get("g_kwargs", {})}
    d_kwargs = {**d_defaults, **cfg.get("d_kwargs", {})}
    g_fwd, d_fwd, flops = gan_step_flops(g_name, g_kwargs, d_name, d_kwargs, batch)
    ctx.log(
        f"  model FLOPs per image: G fwd {g_fwd / batch / 1e6:.1f} M, D fwd {d_fwd / batch / 1e6:.1f} M"
    )
    impls = tuple(cfg.get("impls", IMPLS))
    variants: dict[str, Callable[[], float]] = {}
    for impl in impls:
        call = _jax_image_step(ctx, g_name, g_kwargs, d_name, d_kwargs, batch, impl)
        variants[impl] = lambda call=call: call(chunk)
    if ctx.torch_ref is not None:
        g_t, d_t = torch_models(g_kwargs, d_kwargs)
        latent = g_kwargs["latent_dim"]
        shape = (g_kwargs["image_size"], g_kwargs["image_size"], g_kwargs["channels"])
        ref_step = ctx.torch_ref.image_step(
            g_t,
            d_t,
            batch=batch,
            latent_dim=latent,
            image_shape=shape,
            device=ctx.torch_device,
            amp_dtype=ctx.amp_dtype(),
        )
        variants["reference"] = _torch_call(ctx, ref_step, chunk)
    rates, calls, shares = interleave(variants, **ctx.timing(cfg))
    auto = resolve_deconv_impl("auto")
    rows = []
    for impl in impls:
        config = {
            "batch": batch,
            "deconv_impl": impl,
            "default_impl_here": auto,
            "g": f"{g_name}{g_kwargs}",
            "d": f"{d_name}{d_kwargs}",
            "dtype": ctx.dtype_name,
            "torch_threads": ctx.torch_threads,
            "steps_per_call": chunk,
            "calls_per_repeat": calls,
        }
        row = make_row(
            f"{name}[{impl}]",
            unit="steps/s",
            ours=rates[impl],
            reference=rates.get("reference"),
            shares=(shares.get(impl), shares.get("reference")),
            ctx=ctx,
            config=config,
            flops_per_unit=flops,
            images_per_unit=batch,
        )
        if impl == auto:
            set_target(row, TARGETS.get(f"{name}[auto]"))
        rows.append(row)
    return rows


def case_dcgan64(ctx: Context, cfg: dict) -> list[dict]:
    """DCGAN-64 LSGAN step (dcgan_g / dcgan_d, 64x64x3, z 100): both deconv forms vs PyTorch."""

    def torch_models(gk, dk):
        tr = ctx.torch_ref
        return tr.DCGANGenerator(**gk), tr.DCGANDiscriminator(**dk)

    return _image_case(
        ctx,
        cfg,
        name="dcgan64",
        g_name="dcgan_g",
        g_defaults=DCGAN64_G,
        d_name="dcgan_d",
        d_defaults=DCGAN64_D,
        torch_models=torch_models,
    )


def case_dcgan28_digits(ctx: Context, cfg: dict) -> list[dict]:
    """The TPAMI digits model (digit_g / digit_d, 28x28x1, z 100) vs PyTorch."""

    def torch_models(gk, dk):
        tr = ctx.torch_ref
        return tr.DCGANGenerator(**gk), tr.DigitDiscriminator(**dk)

    return _image_case(
        ctx,
        cfg,
        name="dcgan28_digits",
        g_name="digit_g",
        g_defaults=DIGIT_G,
        d_name="digit_d",
        d_defaults=DIGIT_D,
        torch_models=torch_models,
    )


def case_lsun112(ctx: Context, cfg: dict) -> list[dict]:
    """The ICCV 112x112 scene model (lsun_g / lsun_d, z 1024) vs PyTorch."""

    def torch_models(gk, dk):
        tr = ctx.torch_ref
        return tr.LSUNGenerator(**gk), tr.DCGANDiscriminator(**dk)

    return _image_case(
        ctx,
        cfg,
        name="lsun112",
        g_name="lsun_g",
        g_defaults=LSUN_G,
        d_name="lsun_d",
        d_defaults=LSUN_D,
        torch_models=torch_models,
    )


def case_pipeline(ctx: Context, cfg: dict) -> list[dict]:
    """The digits DCGAN train loop fed by `images.make_iterator("digits")` vs synthetic batches."""
    from experiments import digits as digits_exp  # noqa: PLC0415
    from lsgan_jax.data import images  # noqa: PLC0415
    from lsgan_jax.training import build  # noqa: PLC0415

    c = digits_exp.get_config("smoke" if cfg.get("tiny_model") else "default")
    c.batch_size = batch = cfg["batch"]
    chunk = cfg["chunk"]
    spec, state, hp = build.build_image(c, axis_name=None)
    fn = runners.single(make_train_step(spec))
    size, channels = c.data.image_size, c.model.g_kwargs["channels"]
    real_it = images.make_iterator(
        c.data.name, global_batch=batch, image_size=size, seed=0, data_dir=ctx.data_dir
    )
    synth_it = images.synthetic_batches(batch, size, channels, 10, seed=0)

    def loop_over(it, box):
        def call() -> float:
            for _ in range(chunk):
                b = next(it)
                box[0], metrics = fn(box[0], {"image": np.asarray(b["image"])}, hp)
            block((box[0], metrics))
            return chunk

        return call

    variants = {
        "make_iterator": loop_over(real_it, [copy_tree(state)]),
        "synthetic": loop_over(synth_it, [state]),
    }
    rates, calls, shares = interleave(variants, **ctx.timing(cfg))
    g_fwd, d_fwd, flops = gan_step_flops(
        c.model.g, dict(c.model.g_kwargs), c.model.d, dict(c.model.d_kwargs), batch
    )
    row = make_row(
        "pipeline",
        unit="steps/s",
        ours=rates["make_iterator"],
        reference=rates["synthetic"],
        shares=(shares.get("make_iterator"), shares.get("synthetic")),
        ctx=ctx,
        config={
            "dataset": c.data.name,
            "image_size": size,
            "batch": batch,
            "model": f"{c.model.g}{dict(c.model.g_kwargs)} / {c.model.d}{dict(c.model.d_kwargs)}",
            "reference": "the same loop fed by images.synthetic_batches",
            "steps_per_call": chunk,
            "calls_per_repeat": calls,
            "num_threads": images.DEFAULT_NUM_THREADS,
        },
        flops_per_unit=flops,
        images_per_unit=batch,
    )
    return [row]


CASE_FNS: dict[str, Callable[[Context, dict], list[dict]]] = {
    "mixture_official": case_mixture_official,
    "mixture_vectorized_vs_sequential": case_mixture_vectorized,
    "dcgan64": case_dcgan64,
    "dcgan28_digits": case_dcgan28_digits,
    "lsun112": case_lsun112,
    "pipeline": case_pipeline,
}
