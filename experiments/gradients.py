r"""Vanishing gradients made visible: the generator's gradient under each loss.

    python -m experiments.gradients                   # default: ~45-80 s on 2 busy CPU cores
    python -m experiments.gradients --variant=smoke   # seconds; for tests
    python -m experiments.gradients --config.part2.enabled=False           # part 1 only, seconds
    python -m experiments.gradients --config.part2.mixture.losses="('lsgan','nsgan','minimax')"

**Part 1: a fixed discriminator.** A small MLP D (the registry's ``mixture_mlp_d``, 2 → 64 tanh →
64 tanh → 1) is trained with the *sigmoid cross-entropy* loss for a few hundred Adam steps to
separate a real Gaussian cluster from a fake one, then frozen. Fake samples are placed on the line
through both cluster centres at positions where D's logit takes the values
``t ∈ [t_min, t_max]`` (t < 0: the fake side of the decision boundary D(x) = 0, t > 0: the real
side; ``t`` is "distance from the boundary in units of the logit"). For each sample we take
``|∂L_G/∂x|`` with ``jax.grad`` with respect to the sample itself (``reduction="sum"``, so each
sample's gradient is its own term's) for four generator losses from :mod:`lsgan_jax.losses`:

================  ======================================  ====================  ===============
curve             L_G(f), f = D(x) the raw logit           |dL_G/df|             vanishes when
================  ======================================  ====================  ===============
saturating        log(1 − σ(f)) = −softplus(f)             σ(f)                  f → −∞
non-saturating    −log σ(f) = softplus(−f)                 1 − σ(f) = σ(−f)      f → +∞
LS, c = 1 (0-1)   ½ (f − 1)²                               |f − 1|               only at f = 1
LS, c = 0 (χ²)    ½ f²                                     |f|                   only at f = 0
================  ======================================  ====================  ===============

and ``|∂L_G/∂x| = |dL_G/df| · |∇_x D(x)|``. The second factor belongs to D and is the same for every
loss, so the curves differ exactly by the loss's own ``|dL_G/df|``. The same curves are drawn for
an analytic linear D, ``D(x) = w·x`` with ``|w| = 1``, where ``t`` is also the Euclidean distance
to the boundary and the closed forms above hold exactly (the tests check them).

Two saturation regimes are visible (``gradients_fixed_d.png``, log y axis):

* **fake side (t → −∞)** — the saturating minimax loss ``log(1 − D(G(z)))`` stops giving gradient
  when D confidently rejects the fakes: Goodfellow et al.'s early-training problem, the reason for
  the non-saturating ``−log D(G(z))`` trick (which is fine there: ``1 − σ(f) → 1``).
* **real side (t → +∞)** — the non-saturating loss stops giving gradient to fakes that sit on the
  real side of the boundary but far from the data: they already fool D, so the sigmoid cross-entropy
  charges them almost nothing. **This is the LSGAN paper's argument** (Mao et al. 2017, §3.2.1 and
  Figs. 1–2): the least-squares loss is flat at one point only (``f = c``), so it keeps penalizing
  those samples and pulls them back toward the boundary, which for successful training crosses the
  data. Its gradient grows linearly with ``|f − c|`` on both sides.

The fixed D is trained with the sigmoid loss, so its ``f = 0`` is the sigmoid decision boundary; all
four losses are evaluated on the *same* D outputs (what a generator loss does with a given D).

**Part 2: during training.** The 2-D ring study of :mod:`experiments.mixture` (official networks,
batch 512, simultaneous updates; 2 seeds × {lsgan, nsgan} × 2,500 steps by default), trained by
:func:`lsgan_jax.training.mixture_trainer.train` into ``<workdir>/training``. The trainer logs
``<loss>/g_grad_norm`` (global norm of G's parameter gradient of the mean-reduced loss, at the last
step of every ``eval_every`` chunk, averaged over seeds) to ``metrics.jsonl``; we plot it per loss
on a log axis (``gradients_training.png``) and report its mean over the last 20 % of training.
Every field of the mixture config is overridable under ``--config.part2.mixture.*``; rerunning the
same command resumes (or reuses) the finished training run from its checkpoint.

Outputs in ``--workdir`` (default ``workdirs/gradients/<variant>``): ``summary.json``,
``gradients_fixed_d.png``, ``gradients_training.png`` and ``training/`` (the mixture run).

References:
    Mao et al. "Least Squares Generative Adversarial Networks". ICCV 2017, arXiv:1611.04076, §3.2.1.
    Goodfellow et al. "Generative Adversarial Nets". NeurIPS 2014 (saturation of log(1 − D)).
    Arjovsky, Bottou. "Towards Principled Methods for Training GANs". ICLR 2017, arXiv:1701.04862.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from lsgan_jax import cli, losses, viz
from lsgan_jax import models as models_lib
from lsgan_jax.training import metrics_log as train_logging
from lsgan_jax.training import mixture_trainer

VARIANTS = ("default", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": (
        "G's gradient vs distance from D's boundary per loss; gradient norms in a mixture run",
        "~1.5 min",
    ),
    "smoke": ("fewer points and steps (tests)", "< 1 min"),
}

#: The generator losses of part 1, as elementwise functions of the raw logit f = D(G(z)).
GENERATOR_LOSSES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "saturating": lambda f: losses.minimax_generator_loss(f, reduction="none"),
    "non_saturating": lambda f: losses.non_saturating_generator_loss(f, reduction="none"),
    "ls_zero_one": lambda f: losses.lsgan_generator_loss(f, c=losses.ZERO_ONE.c, reduction="none"),
    "ls_pearson": lambda f: losses.lsgan_generator_loss(
        f, c=losses.PEARSON_CHI2.c, reduction="none"
    ),
}

#: Plot labels of the losses in :data:`GENERATOR_LOSSES`.
LABELS = {
    "saturating": "saturating  log(1−σ(f))",
    "non_saturating": "non-saturating  −log σ(f)",
    "ls_zero_one": "LS  ½(f−1)²  (0-1 coding, c=1)",
    "ls_pearson": "LS  ½f²  (χ² coding, c=0)",
}


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    """Configs as code; ``variant`` is ``default`` or ``smoke`` (see the module docstring).

    Args:
        variant: a name from :data:`VARIANTS`.

    Returns:
        The experiment config. ``part1`` holds the fixed-D study, ``part2.mixture`` a full
        :func:`lsgan_jax.training.mixture_trainer.default_config` config for the training study.

    Raises:
        ValueError: unknown variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.variant = variant
    c.part1 = ml_collections.ConfigDict(
        {
            # Fake samples are placed where D's logit is t, for t on this grid.
            "t_min": -6.0,
            "t_max": 8.0,
            "num_points": 281,  # step 0.05 in t
            "t_far": 4.0,  # reported at t = -t_far (far fake side), 0 (boundary), +t_far (far real)
            "real_mean": (1.0, 0.0),
            "fake_mean": (-1.0, 0.0),
            "cluster_std": 0.3,
            "d_model": "mixture_mlp_d",
            "d_kwargs": {"hidden": 64, "depth": 2},
            "d_steps": 500,
            "d_lr": 1e-3,
            "d_batch_size": 256,
            "seed": 0,
        }
    )
    m = mixture_trainer.default_config()  # the default mixture study, shortened
    m.seeds = 2
    m.num_steps = 2_500
    m.eval_every = 100
    m.checkpoint_every = 2_500
    m.snapshot_steps = ()
    if variant == "smoke":
        c.part1.num_points = 71  # step 0.2 in t
        c.part1.d_kwargs = {"hidden": 32, "depth": 2}
        c.part1.d_steps = 150
        c.part1.d_lr = 3e-3
        m.num_steps = 40
        m.eval_every = 10
        m.checkpoint_every = 40
        m.batch_size = 64  # the mixture study's smoke networks
        m.num_eval_samples = 256
        m.model.g_kwargs = {"latent_dim": 16, "hidden": 32}
        m.model.d_kwargs = {"hidden": 32}
    c.part2 = ml_collections.ConfigDict({"enabled": True, "last_fraction": 0.2, "mixture": m})
    return c


# --------------------------------------------------------------------------------------------
# Pure helpers (tested in tests/test_experiments_theory.py)
# --------------------------------------------------------------------------------------------


def closed_form_logit_gradients(f: np.ndarray) -> dict[str, np.ndarray]:
    """The exact ``|dL_G/df|`` of every loss in :data:`GENERATOR_LOSSES` (NumPy, float64).

    Args:
        f: raw discriminator outputs (logits).

    Returns:
        ``{loss name: |dL_G/df|}``: σ(f), 1 − σ(f), |f − 1| and |f|.
    """
    f = np.asarray(f, np.float64)
    sig = 0.5 * (1.0 + np.tanh(0.5 * f))  # stable σ(f)
    return {
        "saturating": sig,
        "non_saturating": 0.5 * (1.0 - np.tanh(0.5 * f)),
        "ls_zero_one": np.abs(f - losses.ZERO_ONE.c),
        "ls_pearson": np.abs(f - losses.PEARSON_CHI2.c),
    }


def logit_gradients(f: jax.Array) -> dict[str, jax.Array]:
    """``|dL_G/df|`` per element for every loss in :data:`GENERATOR_LOSSES`, by ``jax.grad``.

    Args:
        f: raw discriminator outputs, any shape.

    Returns:
        ``{loss name: |dL_G/df|}``, each of ``f``'s shape.
    """
    f = jnp.asarray(f, jnp.float32)
    return {
        name: jnp.abs(jax.grad(lambda v, fn=fn: jnp.sum(fn(v)))(f))
        for name, fn in GENERATOR_LOSSES.items()
    }


def input_gradients(
    disc: Callable[[jax.Array], jax.Array], x: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Per-sample ``|∂L_G/∂x|`` of every loss for a fixed discriminator.

    The loss is summed over the samples (``reduction="sum"``), so the gradient with respect to
    sample ``i`` is the gradient of its own term: ``dL_G/df(x_i) · ∇_x D(x_i)``.

    Args:
        disc: ``x (N, d) -> raw logits (N,)``.
        x: the fake samples, ``(N, d)``.

    Returns:
        ``(logits (N,), {loss name: Euclidean norm of ∂L_G/∂x_i, shape (N,)})``.
    """
    out = {}
    for name, fn in GENERATOR_LOSSES.items():
        g = jax.grad(lambda v, fn=fn: jnp.sum(fn(disc(v))))(x)
        out[name] = jnp.sqrt(jnp.sum(jnp.square(g), axis=-1))
    return disc(x), out


def values_at(t: np.ndarray, values: np.ndarray, t_query: float) -> float:
    """Linear interpolation of ``values`` (given at increasing ``t``) at ``t_query``.

    Raises:
        ValueError: ``t_query`` outside the sampled range (no extrapolation).
    """
    t = np.asarray(t, np.float64)
    if not t[0] - 1e-6 <= t_query <= t[-1] + 1e-6:
        raise ValueError(f"t={t_query} is outside the sampled range [{t[0]:.3g}, {t[-1]:.3g}].")
    return float(np.interp(t_query, t, np.asarray(values, np.float64)))


def summarize_curves(t: np.ndarray, grads: dict[str, np.ndarray], t_far: float) -> dict:
    """Per loss: the gradient at ``−t_far``, ``0``, ``+t_far`` and the ratios to the boundary.

    Args:
        t: increasing logits of the samples.
        grads: ``{loss: gradient magnitude at t}``.
        t_far: distance (in logits) of the "far" points from the boundary.

    Returns:
        ``{loss: {"far_fake", "boundary", "far_real", "ratio_far_real_to_boundary",
        "ratio_far_fake_to_boundary"}}``. The ratios are None where the boundary value is 0 up to
        1e-6 of the far values (``ls_pearson``, whose target c = 0 is the boundary itself).
    """
    out = {}
    for name, g in grads.items():
        ff, b0, fr = (values_at(t, g, v) for v in (-t_far, 0.0, t_far))
        defined = b0 > 1e-6 * max(ff, fr)  # else the boundary is the loss's zero (its target)
        out[name] = {
            "far_fake": ff,
            "boundary": b0,
            "far_real": fr,
            "ratio_far_real_to_boundary": fr / b0 if defined else None,
            "ratio_far_fake_to_boundary": ff / b0 if defined else None,
        }
    return out


# --------------------------------------------------------------------------------------------
# Part 1: the fixed discriminators
# --------------------------------------------------------------------------------------------


def train_fixed_discriminator(cfg: ml_collections.ConfigDict) -> tuple[Callable, float]:
    """Trains the MLP D with the sigmoid cross-entropy loss on two Gaussian clusters.

    One jitted ``lax.scan`` of ``cfg.d_steps`` Adam steps; real and fake samples are drawn on device
    every step.

    Args:
        cfg: the ``part1`` config.

    Returns:
        ``(disc, final_loss)`` where ``disc(x (N, 2)) -> logits (N,)`` is the frozen D.
    """
    key = jax.random.PRNGKey(cfg.seed)
    init_key, data_key = jax.random.split(key)
    d = models_lib.create(cfg.d_model, rngs=nnx.Rngs(params=init_key), data_dim=2, **cfg.d_kwargs)
    graphdef, params, rest = nnx.split(d, nnx.Param, ...)
    real_mean = jnp.asarray(cfg.real_mean, jnp.float32)
    fake_mean = jnp.asarray(cfg.fake_mean, jnp.float32)
    std, n = float(cfg.cluster_std), int(cfg.d_batch_size)
    tx = optax.adam(cfg.d_lr)

    def logits(p, x):
        return nnx.merge(graphdef, p, rest, copy=True)(x, train=False)[:, 0]

    @jax.jit
    def fit(params, key):
        def step(carry, k):
            p, opt = carry
            k_real, k_fake = jax.random.split(k)
            real = real_mean + std * jax.random.normal(k_real, (n, 2))
            fake = fake_mean + std * jax.random.normal(k_fake, (n, 2))
            loss, g = jax.value_and_grad(
                lambda p: losses.minimax_discriminator_loss(logits(p, real), logits(p, fake))
            )(p)
            updates, opt = tx.update(g, opt, p)
            return (optax.apply_updates(p, updates), opt), loss

        (p, _), history = jax.lax.scan(
            step, (params, tx.init(params)), jax.random.split(key, cfg.d_steps)
        )
        return p, history[-1]

    params, final_loss = fit(params, data_key)
    return jax.jit(lambda x: logits(params, x)), float(final_loss)


def place_on_logit_grid(
    disc: Callable, start: np.ndarray, end: np.ndarray, t_grid: np.ndarray, *, extent: float = 6.0
) -> np.ndarray:
    """Points on the line from ``start`` (fake) to ``end`` (real) where ``disc`` equals ``t_grid``.

    The line is sampled densely out to ``extent`` times the start-end distance on both sides of the
    midpoint; the positions are found by inverting the (checked monotone) logit along it.

    Args:
        disc: ``x (N, d) -> logits (N,)``.
        start: a point on the fake side, ``(d,)``.
        end: a point on the real side, ``(d,)``.
        t_grid: increasing target logits.
        extent: how far to search, in units of ``|end − start|``.

    Returns:
        ``(len(t_grid), d)`` points.

    Raises:
        ValueError: the logit does not cover ``t_grid`` along the line, or is not monotone there
            (train D longer or narrow ``t_min``/``t_max``).
    """
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    mid, delta = 0.5 * (start + end), end - start
    s = np.linspace(-extent, extent, 4001)
    x = mid + s[:, None] * delta
    f = np.asarray(disc(jnp.asarray(x, jnp.float32)), np.float64)
    lo, hi = float(t_grid[0]), float(t_grid[-1])
    if f.min() > lo or f.max() < hi:
        raise ValueError(
            f"The fixed D's logit spans [{f.min():.2f}, {f.max():.2f}] along the line, which does "
            f"not cover t in [{lo}, {hi}]; raise part1.d_steps or narrow part1.t_min/t_max."
        )
    i0 = int(np.nonzero(f <= lo)[0].max()) if np.any(f <= lo) else 0
    i1 = i0 + int(np.nonzero(f[i0:] >= hi)[0].min())
    if not np.all(np.diff(f[i0 : i1 + 1]) > 0):
        raise ValueError(
            "The fixed D's logit is not monotone along the line between t_min and t_max; "
            "train it longer (part1.d_steps) or narrow part1.t_min/t_max."
        )
    s_of_t = np.interp(t_grid, f[i0 : i1 + 1], s[i0 : i1 + 1])
    return mid + s_of_t[:, None] * delta


@functools.partial(jax.jit, static_argnums=0)
def _gradients_jit(disc: Callable, x: jax.Array):
    """``input_gradients`` plus ``∇_x D`` in one compiled call."""
    f, grads = input_gradients(disc, x)
    return f, grads, jax.grad(lambda v: jnp.sum(disc(v)))(x)


def run_part1(cfg: ml_collections.ConfigDict) -> dict:
    """The fixed-D study: curves for the analytic linear D and the trained MLP D.

    Returns:
        ``{"linear": {...}, "mlp": {...}}``, each with ``t`` (the samples' logits), ``d_grad``
        (``|∇_x D|``, the factor common to all losses), ``grads`` (``{loss: |∂L_G/∂x|}``) and
        ``logit_grads`` (``{loss: |dL_G/df|}``), NumPy arrays;
        ``mlp`` also has ``final_d_loss``.
    """
    if not cfg.t_min < 0.0 < cfg.t_far <= cfg.t_max or -cfg.t_far < cfg.t_min:
        raise ValueError(
            f"Need t_min <= -t_far < 0 < t_far <= t_max; got t_min={cfg.t_min}, "
            f"t_far={cfg.t_far}, t_max={cfg.t_max}."
        )
    t_grid = np.linspace(cfg.t_min, cfg.t_max, cfg.num_points)
    w = jnp.asarray([1.0, 0.0], jnp.float32)  # |w| = 1: logit = signed distance to the boundary
    curves = {}

    def linear(x):
        return x @ w

    x_lin = jnp.stack([jnp.asarray(t_grid, jnp.float32), jnp.zeros(len(t_grid))], axis=1)
    disc_mlp, final_loss = train_fixed_discriminator(cfg)
    x_mlp = place_on_logit_grid(
        disc_mlp, np.asarray(cfg.fake_mean), np.asarray(cfg.real_mean), t_grid
    )
    for name, disc, x in (
        ("linear", linear, x_lin),
        ("mlp", disc_mlp, jnp.asarray(x_mlp, jnp.float32)),
    ):
        f, grads, d_grad = _gradients_jit(disc, x)
        f = np.asarray(f, np.float64)
        curves[name] = {
            "t": f,
            "d_grad": np.linalg.norm(np.asarray(d_grad, np.float64), axis=-1),
            "grads": {k: np.asarray(grads[k], np.float64) for k in GENERATOR_LOSSES},
            "logit_grads": {k: np.asarray(v, np.float64) for k, v in logit_gradients(f).items()},
        }
    curves["mlp"]["final_d_loss"] = final_loss
    return curves


def plot_part1(curves: dict, path: str) -> str:
    """Two log-y panels of ``|∂L_G/∂x|`` against the sample's logit: linear D and trained MLP D."""
    import matplotlib.pyplot as plt  # noqa: PLC0415  (viz set the Agg backend on import)

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.9), sharey=True)
    titles = {
        "linear": "analytic linear D(x) = w·x, |w| = 1",
        "mlp": "trained MLP D (sigmoid cross-entropy), frozen",
    }
    top = 3.0 * max(float(np.max(g)) for cur in curves.values() for g in cur["grads"].values())
    for ax, (name, cur) in zip(axes, curves.items(), strict=True):
        t = cur["t"]
        for loss, g in cur["grads"].items():
            ax.plot(t, np.maximum(g, 1e-8), label=LABELS[loss], lw=1.5)
        ax.plot(t, cur["d_grad"], "k:", lw=1.0, label="|∇ₓD(x)| (D's factor, common to all)")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, top)
        ax.axvline(0.0, color="k", lw=0.8)
        ax.axvspan(t[0], 0.0, color="tab:red", alpha=0.05)
        ax.axvspan(0.0, t[-1], color="tab:green", alpha=0.05)
        ax.text(0.02, 0.03, "fake side", transform=ax.transAxes, fontsize=8, color="tab:red")
        ax.text(
            0.98,
            0.03,
            "real side →",
            transform=ax.transAxes,
            fontsize=8,
            ha="right",
            color="tab:green",
        )
        ax.set_xlabel("t = D's logit at the fake sample (0 = decision boundary)")
        ax.set_title(titles[name], fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("|∂L_G/∂x| per sample")
    axes[0].legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 0.08))
    fig.suptitle(
        "Saturating loss vanishes on the fake side; non-saturating on the real side "
        "(LSGAN's argument); LS grows with |f − c|",
        fontsize=9,
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Part 2: during training
# --------------------------------------------------------------------------------------------


def grad_norm_curves(workdir: str, loss_names: tuple[str, ...]) -> tuple[np.ndarray, dict]:
    """Reads ``<loss>/g_grad_norm`` from ``workdir/metrics.jsonl`` (last row wins per step).

    Returns:
        ``(steps, {loss: g_grad_norm at steps})``; missing values are NaN.
    """
    rows = {}
    for row in train_logging.read_metrics(workdir):
        rows[int(row["step"])] = row
    steps = np.asarray(sorted(rows))
    curves = {}
    for loss in loss_names:
        vals = [rows[s].get(f"{loss}/g_grad_norm") for s in steps]
        curves[loss] = np.asarray([np.nan if v is None else v for v in vals], np.float64)
    return steps, curves


def run_part2(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains (or resumes) the mixture study and summarizes the generator gradient norms."""
    mcfg = cfg.mixture
    sub = os.path.join(workdir, "training")
    train_summary = mixture_trainer.train(mcfg, sub)
    if "preempted_at" in train_summary:
        return {"preempted_at": train_summary["preempted_at"]}
    steps, curves = grad_norm_curves(sub, tuple(mcfg.losses))
    n_last = max(1, int(round(cfg.last_fraction * len(steps))))
    per_loss = {}
    for loss, v in curves.items():
        agg = train_summary["per_loss"].get(loss, {})
        per_loss[loss] = {
            "g_grad_norm_last": float(np.nanmean(v[-n_last:])),
            "g_grad_norm_all": float(np.nanmean(v)),
            "modes_covered": agg.get("modes_covered", {}).get("mean"),
        }
    path = viz.line_plot(
        steps,
        curves,
        os.path.join(workdir, "gradients_training.png"),
        xlabel="step",
        ylabel="‖∇_θ L_G‖ (mean over seeds)",
        logy=True,
        title=f"{mcfg.data.name}: generator gradient norm during training",
    )
    return {
        "per_loss": per_loss,
        "last_fraction": cfg.last_fraction,
        "num_points_last": n_last,
        "steps": int(mcfg.num_steps),
        "seeds": mcfg.seeds,
        "eval_every": int(mcfg.eval_every),
        "data": mcfg.data.name,
        "figure": path,
        "training_workdir": sub,
    }


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else format(x, ".3g")


def format_tables(summary: dict) -> str:
    """The printed tables (part 1 per D, then part 2)."""
    p1 = summary["part1"]
    tf = p1["t_far"]
    lines = []
    for d_name, title in (("linear", "analytic linear D"), ("mlp", "trained MLP D")):
        lines.append(f"Part 1, {title}: |dL_G/dx| at logit t")
        lines.append(
            f"  {'loss':<16} {f't={-tf:+g}':>10} {'t=0':>10} {f't={tf:+g}':>10} "
            f"{'far real/boundary':>18}"
        )
        for loss, v in p1[d_name].items():
            lines.append(
                f"  {loss:<16} {v['far_fake']:>10.3g} {v['boundary']:>10.3g} "
                f"{v['far_real']:>10.3g} {_fmt(v['ratio_far_real_to_boundary']):>18}"
            )
    p2 = summary.get("part2")
    if p2 and "per_loss" in p2:
        pct = round(100 * p2["last_fraction"])
        lines.append(
            f"Part 2, {p2['data']} ({p2['seeds']} seeds x {p2['steps']} steps): "
            "generator gradient norm"
        )
        lines.append(f"  {'loss':<10} {f'last {pct}%':>12} {'all steps':>12} {'modes':>7}")
        for loss, v in p2["per_loss"].items():
            modes = v["modes_covered"]
            lines.append(
                f"  {loss:<10} {v['g_grad_norm_last']:>12.4g} {v['g_grad_norm_all']:>12.4g} "
                f"{modes if modes is None else format(modes, '.2f'):>7}"
            )
    return "\n".join(lines)


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs both parts and writes ``summary.json`` and the two figures to ``workdir``."""
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    curves = run_part1(config.part1)
    fig1 = plot_part1(curves, os.path.join(workdir, "gradients_fixed_d.png"))
    t1 = time.perf_counter()
    tf = float(config.part1.t_far)
    part1 = {
        "t_far": tf,
        "t_range": [float(config.part1.t_min), float(config.part1.t_max)],
        "target_c": {"ls_zero_one": losses.ZERO_ONE.c, "ls_pearson": losses.PEARSON_CHI2.c},
        "mlp_final_d_loss": curves["mlp"]["final_d_loss"],
        "figure": fig1,
        "runtime_s": t1 - t0,
    }
    for name, cur in curves.items():
        part1[name] = summarize_curves(cur["t"], cur["grads"], tf)
    # |dL_G/df| alone (the loss's own factor; the same for every D).
    part1["logit_grads"] = summarize_curves(
        curves["linear"]["t"], curves["linear"]["logit_grads"], tf
    )
    summary = {"variant": config.variant, "part1": part1}
    if config.part2.enabled:
        summary["part2"] = run_part2(config.part2, workdir)
        summary["part2"]["runtime_s"] = time.perf_counter() - t1
    summary["runtime_s"] = time.perf_counter() - t0
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(format_tables(summary))
    figs = [fig1] + ([summary["part2"]["figure"]] if "figure" in summary.get("part2", {}) else [])
    print(
        f"Wrote {os.path.join(workdir, 'summary.json')} and {', '.join(figs)} "
        f"({summary['runtime_s']:.1f} s)"
    )
    return summary


cli.run(__name__, get_config, main, VARIANTS)
