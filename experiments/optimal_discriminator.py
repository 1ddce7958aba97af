r"""The optimal LSGAN discriminator, learned and in closed form, for two label codings.

    python -m experiments.optimal_discriminator                   # default: ~20-35 s on 2 CPU cores
    python -m experiments.optimal_discriminator --variant=smoke   # seconds; for tests
    python -m experiments.optimal_discriminator --config.num_steps=8000 --config.p_g.means="(1.0,)"

For a *fixed* generator density ``p_g``, the LSGAN discriminator objective
``½ E_{p_d}[(D(x) − b)²] + ½ E_{p_g}[(D(x) − a)²]`` is minimized pointwise by
(Mao et al. 2017, Eq. 4; :func:`lsgan_jax.theory.optimal_discriminator`)

    D*(x) = (b·p_d(x) + a·p_g(x)) / (p_d(x) + p_g(x)).

This experiment trains a discriminator alone (the registry's ``mixture_mlp_d`` with
``data_dim=1``: 1 → 64 tanh → 64 tanh → 1, orthogonal(1.4) init) with the jitted
:func:`lsgan_jax.losses.lsgan_discriminator_loss` on fresh samples of two fixed 1-D densities every
step (default: ``p_d`` = ½N(−2, 0.6²) + ½N(2, 0.6²), ``p_g`` = N(0.5, 1.6²); batch 1,024 of
each; Adam 3e-3 with a cosine decay to 3e-5; 10,000 steps in one ``lax.scan``), for both codings
:data:`lsgan_jax.losses.ZERO_ONE` (a, b, c) = (0, 1, 1) and
:data:`lsgan_jax.losses.PEARSON_CHI2` (−1, 1, 0) at once: the training step is ``jax.vmap``-ed over
the coding, and both runs start from the same initial weights and see the same samples.

It then compares the learned D with D* on a grid (``x ∈ [−6, 6]``, 1,201 points) where
``p_d + p_g`` exceeds ``support_threshold`` (5 %) of its maximum (the region where the data pin D
down; far in the tails D* is defined by vanishing densities and no sample constrains D), and
reports, per coding:

* ``max_abs_err`` and ``mean_abs_err`` of ``|D − D*|`` over that region, and the same divided by
  the label gap ``|b − a|`` (``*_rel``; D* spans ``[a, b]``, so these compare across codings);
* ``d_objective_trained`` and ``d_objective_optimal``: the D objective (exact expectation on the
  grid) at the learned D and at D*; their difference ``d_objective_excess ≥ 0`` is the part of the
  error that matters to the objective;
* ``criterion_C = C(G)`` (:func:`lsgan_jax.theory.lsgan_criterion`), ``two_C`` and
  ``pearson_chi2`` ``= χ²_Pearson(p_d + p_g ‖ 2 p_g)`` (:func:`lsgan_jax.theory.pearson_chi2`,
  first argument in the denominator). For PEARSON_CHI2 (b − c = 1, b − a = 2) the paper's identity
  ``2·C(G) = χ²_Pearson(p_d + p_g ‖ 2 p_g)`` holds (``chi2_identity_gap`` ≈ 0); for ZERO_ONE it
  does not. ``criterion_at_trained_d`` is the same generator objective evaluated with the learned
  D in place of D*.

Outputs in ``--workdir`` (default ``workdirs/optimal_discriminator/<variant>``): ``summary.json``
and ``optimal_discriminator.png`` (densities, learned D and D* per coding).

References:
    Mao et al. "Least Squares Generative Adversarial Networks". ICCV 2017, arXiv:1611.04076,
    §3.2.2 (optimal D and the Pearson χ² relation).
    Mao et al. "On the Effectiveness of Least Squares Generative Adversarial Networks".
    IEEE TPAMI 2019, arXiv:1712.06391.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from lsgan_jax import (
    cli,
    losses,
    theory,
    viz,  # noqa: F401  (selects matplotlib's Agg backend)
)
from lsgan_jax import models as models_lib

VARIANTS = ("default", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": ("LS discriminator trained alone vs the closed-form D*, both codings", "< 1 min"),
    "smoke": ("fewer steps (tests)", "< 1 min"),
}

#: The codings this experiment knows by name.
CODINGS: dict[str, losses.LSCoding] = {
    "zero_one": losses.ZERO_ONE,
    "pearson_chi2": losses.PEARSON_CHI2,
}


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    """Configs as code; ``variant`` is ``default`` or ``smoke`` (see the module docstring).

    Args:
        variant: a name from :data:`VARIANTS`.

    Returns:
        The experiment config.

    Raises:
        ValueError: unknown variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.variant = variant
    c.codings = ("zero_one", "pearson_chi2")
    c.p_data = ml_collections.ConfigDict(
        {"means": (-2.0, 2.0), "stds": (0.6, 0.6), "weights": (0.5, 0.5)}
    )
    c.p_g = ml_collections.ConfigDict({"means": (0.5,), "stds": (1.6,), "weights": (1.0,)})
    c.model = ml_collections.ConfigDict(
        {"name": "mixture_mlp_d", "kwargs": {"hidden": 64, "depth": 2}}
    )
    c.optim = ml_collections.ConfigDict(
        {"lr": 3e-3, "b1": 0.9, "b2": 0.999, "final_lr_fraction": 0.01}
    )
    c.batch_size = 1024
    c.num_steps = 10_000
    c.seed = 0
    c.grid = ml_collections.ConfigDict({"lo": -6.0, "hi": 6.0, "num": 1201})
    c.support_threshold = 0.05  # compare where p_d + p_g > 5 % of its maximum
    if variant == "smoke":
        c.optim.lr = 1e-2
        c.batch_size = 256
        c.num_steps = 1_500
        c.grid.num = 601
    return c


# --------------------------------------------------------------------------------------------
# Densities
# --------------------------------------------------------------------------------------------


def _mixture_params(cfg: ml_collections.ConfigDict, name: str) -> tuple[np.ndarray, ...]:
    means = np.asarray(cfg.means, np.float64)
    stds = np.asarray(cfg.stds, np.float64)
    weights = np.asarray(cfg.weights, np.float64)
    if not (means.shape == stds.shape == weights.shape) or means.ndim != 1 or not means.size:
        raise ValueError(
            f"{name}: means, stds and weights must be non-empty tuples of the same length; got "
            f"{tuple(cfg.means)}, {tuple(cfg.stds)}, {tuple(cfg.weights)}."
        )
    if np.any(stds <= 0) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"{name}: stds must be > 0 and weights >= 0 with a positive sum.")
    return means, stds, weights / weights.sum()


def mixture_pdf(x: np.ndarray, means, stds, weights) -> np.ndarray:
    """Density of a 1-D Gaussian mixture ``Σ_k w_k N(x; μ_k, σ_k²)`` (weights summing to 1)."""
    x = np.asarray(x, np.float64)[..., None]
    means, stds, weights = (np.asarray(v, np.float64) for v in (means, stds, weights))
    z = (x - means) / stds
    return np.sum(weights * np.exp(-0.5 * z * z) / (stds * math.sqrt(2.0 * math.pi)), axis=-1)


def mixture_sampler(means, stds, weights):
    """``sample(key, n) -> (n, 1)`` draws of a 1-D Gaussian mixture, on device."""
    means = jnp.asarray(means, jnp.float32)
    stds = jnp.asarray(stds, jnp.float32)
    logits = jnp.log(jnp.asarray(weights, jnp.float32))

    def sample(key: jax.Array, n: int) -> jax.Array:
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.categorical(k_comp, logits, shape=(n,))
        return (means[comp] + stds[comp] * jax.random.normal(k_noise, (n,)))[:, None]

    return sample


# --------------------------------------------------------------------------------------------
# Training D alone, vmapped over the codings
# --------------------------------------------------------------------------------------------


def train_discriminators(config: ml_collections.ConfigDict, a: np.ndarray, b: np.ndarray):
    """Trains one D per coding (``a[k]``, ``b[k]``) with the LS loss, all in one jitted program.

    Args:
        config: the experiment config.
        a: fake labels, ``(K,)``.
        b: real labels, ``(K,)``.

    Returns:
        ``(evaluate, final_losses)``: ``evaluate(x (N,)) -> (K, N)`` raw outputs of the K trained
        discriminators, and the last step's sample loss per coding ``(K,)``.
    """
    init_key, data_key = jax.random.split(jax.random.PRNGKey(config.seed))
    d = models_lib.create(
        config.model.name, rngs=nnx.Rngs(params=init_key), data_dim=1, **config.model.kwargs
    )
    graphdef, params, rest = nnx.split(d, nnx.Param, ...)
    k = len(a)
    params = jax.tree.map(lambda p: jnp.stack([p] * k), params)  # same init for every coding
    schedule = optax.cosine_decay_schedule(
        config.optim.lr, config.num_steps, alpha=config.optim.final_lr_fraction
    )
    tx = optax.adam(schedule, b1=config.optim.b1, b2=config.optim.b2)
    sample_real = mixture_sampler(*_mixture_params(config.p_data, "p_data"))
    sample_fake = mixture_sampler(*_mixture_params(config.p_g, "p_g"))
    n = int(config.batch_size)

    def apply(p, x):
        return nnx.merge(graphdef, p, rest, copy=True)(x, train=False)[:, 0]

    def update_one(p, opt, a_k, b_k, real, fake):
        def loss_fn(p):
            return losses.lsgan_discriminator_loss(apply(p, real), apply(p, fake), a=a_k, b=b_k)

        loss, g = jax.value_and_grad(loss_fn)(p)
        updates, opt = tx.update(g, opt, p)
        return optax.apply_updates(p, updates), opt, loss

    update_all = jax.vmap(update_one, in_axes=(0, 0, 0, 0, None, None))

    @jax.jit
    def fit(params, a, b, key):
        def step(carry, key):
            p, opt = carry
            k_real, k_fake = jax.random.split(key)
            p, opt, loss = update_all(p, opt, a, b, sample_real(k_real, n), sample_fake(k_fake, n))
            return (p, opt), loss

        opt = jax.vmap(tx.init)(params)
        keys = jax.random.split(key, config.num_steps)
        (params, _), history = jax.lax.scan(step, (params, opt), keys)
        return params, history[-1]

    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    params, final = fit(params, a, b, data_key)

    @jax.jit
    def evaluate(x):
        return jax.vmap(apply, in_axes=(0, None))(params, x[:, None])

    return evaluate, np.asarray(final, np.float64)


# --------------------------------------------------------------------------------------------
# Comparison with the closed forms
# --------------------------------------------------------------------------------------------


def compare(
    x: np.ndarray,
    pd: np.ndarray,
    pg: np.ndarray,
    d_learned: np.ndarray,
    coding: losses.LSCoding,
    *,
    threshold: float,
) -> dict:
    """Errors of a learned D against D*, and the closed-form criteria, for one coding.

    Args:
        x: the grid, ``(N,)`` (uniform spacing).
        pd: data density on the grid.
        pg: generator density on the grid.
        d_learned: the learned D on the grid.
        coding: the (a, b, c) labels D was trained with.
        threshold: compare where ``pd + pg > threshold · max(pd + pg)``.

    Returns:
        A dict of Python floats (see the module docstring for the keys).
    """
    a, b, c = (float(v) for v in coding)
    dx = float(x[1] - x[0])
    d_star = np.asarray(theory.optimal_discriminator(pd, pg, a=a, b=b), np.float64)
    mass = pd + pg
    region = mass > threshold * mass.max()
    err = np.abs(d_learned - d_star)

    def d_objective(dd):
        return float(0.5 * np.sum(pd * (dd - b) ** 2 + pg * (dd - a) ** 2) * dx)

    crit = float(theory.lsgan_criterion(pd, pg, a=a, b=b, c=c, dx=dx))
    chi2 = float(theory.pearson_chi2(pd + pg, 2.0 * pg, dx=dx))
    trained_obj, optimal_obj = d_objective(d_learned), d_objective(d_star)
    return {
        "a": a,
        "b": b,
        "c": c,
        "pearson_condition": bool(b - c == 1.0 and b - a == 2.0),
        "max_abs_err": float(err[region].max()),
        "mean_abs_err": float(err[region].mean()),
        "max_abs_err_rel": float(err[region].max() / abs(b - a)),
        "mean_abs_err_rel": float(err[region].mean() / abs(b - a)),
        "d_objective_trained": trained_obj,
        "d_objective_optimal": optimal_obj,
        "d_objective_excess": trained_obj - optimal_obj,
        "criterion_C": crit,
        "two_C": 2.0 * crit,
        "pearson_chi2": chi2,
        "chi2_identity_gap": abs(2.0 * crit - chi2),
        "criterion_at_trained_d": float(0.5 * np.sum(mass * (d_learned - c) ** 2) * dx),
    }


def plot(
    x: np.ndarray,
    pd: np.ndarray,
    pg: np.ndarray,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    region: np.ndarray,
    path: str,
    *,
    threshold: float,
) -> str:
    """One panel per coding: learned D and D* (left axis) over the two densities (right axis)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415  (viz set the Agg backend on import)

    fig, axes = plt.subplots(1, len(curves), figsize=(5.0 * len(curves), 3.6), squeeze=False)
    for ax, (name, (d_learned, d_star)) in zip(axes[0], curves.items(), strict=True):
        dens = ax.twinx()
        dens.fill_between(x, pd, color="tab:blue", alpha=0.15, label="p_data")
        dens.fill_between(x, pg, color="tab:orange", alpha=0.15, label="p_g")
        dens.set_ylim(0, 1.15 * max(pd.max(), pg.max()))
        dens.set_ylabel("density", fontsize=8)
        ax.set_zorder(dens.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(x, d_star, "k--", lw=1.6, label="D* (closed form)")
        ax.plot(x, d_learned, color="tab:green", lw=1.3, label="D (trained MLP)")
        lo, hi = min(d_star.min(), d_learned.min()), max(d_star.max(), d_learned.max())
        pad = 0.1 * (hi - lo + 1e-6)
        ax.fill_between(x, lo - pad, hi + pad, where=~region, color="0.85", alpha=0.5, lw=0)
        ax.set_ylim(lo - pad, hi + pad)
        coding = CODINGS[name]
        ax.set_title(f"{name}: a={coding.a:g}, b={coding.b:g}, c={coding.c:g}", fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("D(x)")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = dens.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Trained LSGAN discriminator vs D* = (b·p_d + a·p_g)/(p_d + p_g)"
        f"  (gray: p_d + p_g < {threshold:g}·max, not compared)",
        fontsize=9,
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_table(summary: dict) -> str:
    """The printed results table."""
    lines = [
        f"Compared where p_d + p_g > {summary['support_threshold']:g}·max "
        f"({100 * summary['region_mass_fraction']:.1f} % of the mass, "
        f"{summary['region_fraction_of_grid'] * 100:.0f} % of the grid)",
        f"{'coding':<13} {'a':>4} {'b':>4} {'c':>4} {'max|D-D*|':>10} {'/(b-a)':>7} {'mean|D-D*|':>11} "
        f"{'V_D excess':>11} {'C(G)':>8} {'2C(G)':>8} {'chi2(pd+pg||2pg)':>17}",
    ]
    for name, r in summary["codings"].items():
        lines.append(
            f"{name:<13} {r['a']:>4g} {r['b']:>4g} {r['c']:>4g} {r['max_abs_err']:>10.4f} "
            f"{r['max_abs_err_rel']:>7.4f} "
            f"{r['mean_abs_err']:>11.4f} {r['d_objective_excess']:>11.2e} {r['criterion_C']:>8.4f} "
            f"{r['two_C']:>8.4f} {r['pearson_chi2']:>17.4f}"
        )
    return "\n".join(lines)


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains the discriminators, compares them with D*, writes ``summary.json`` and the figure."""
    unknown = [n for n in config.codings if n not in CODINGS]
    if unknown or not config.codings:
        raise ValueError(f"Unknown coding(s) {unknown}; choose from {sorted(CODINGS)}.")
    if not 0.0 <= config.support_threshold < 1.0:
        raise ValueError(f"support_threshold={config.support_threshold} must be in [0, 1).")
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    codings = [CODINGS[n] for n in config.codings]
    a = np.asarray([cd.a for cd in codings], np.float32)
    b = np.asarray([cd.b for cd in codings], np.float32)
    evaluate, final_losses = train_discriminators(config, a, b)

    x = np.linspace(config.grid.lo, config.grid.hi, config.grid.num)
    dx = float(x[1] - x[0])
    pd = mixture_pdf(x, *_mixture_params(config.p_data, "p_data"))
    pg = mixture_pdf(x, *_mixture_params(config.p_g, "p_g"))
    d_all = np.asarray(evaluate(jnp.asarray(x, jnp.float32)), np.float64)
    mass = pd + pg
    region = mass > config.support_threshold * mass.max()

    results, curves = {}, {}
    for k, (name, coding) in enumerate(zip(config.codings, codings, strict=True)):
        results[name] = compare(x, pd, pg, d_all[k], coding, threshold=config.support_threshold)
        results[name]["final_sample_loss"] = float(final_losses[k])
        d_star = np.asarray(theory.optimal_discriminator(pd, pg, a=coding.a, b=coding.b))
        curves[name] = (d_all[k], d_star)
    fig = plot(
        x,
        pd,
        pg,
        curves,
        region,
        os.path.join(workdir, "optimal_discriminator.png"),
        threshold=config.support_threshold,
    )
    summary = {
        "variant": config.variant,
        "support_threshold": float(config.support_threshold),
        "region_fraction_of_grid": float(region.mean()),
        "region_mass_fraction": float(np.sum(mass[region]) / np.sum(mass)),
        "grid": {"lo": float(x[0]), "hi": float(x[-1]), "num": int(x.size), "dx": dx},
        "grid_mass": {"p_data": float(pd.sum() * dx), "p_g": float(pg.sum() * dx)},
        "codings": results,
        "steps": int(config.num_steps),
        "batch_size": int(config.batch_size),
        "figure": fig,
        "runtime_s": time.perf_counter() - t0,
    }
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(format_table(summary))
    print(f"Wrote {os.path.join(workdir, 'summary.json')} and {fig} ({summary['runtime_s']:.1f} s)")
    return summary


cli.run(__name__, get_config, main, VARIANTS)
