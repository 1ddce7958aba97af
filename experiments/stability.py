r"""The ICCV "difficult architectures" stability comparison: DCGAN without BatchNorm.

    python -m experiments.stability                   # digits, 5 settings x 2 seeds, CPU minutes
    python -m experiments.stability --variant=paper   # LSUN bedroom 64x64, the four official runs
    python -m experiments.stability --variant=smoke   # seconds; for tests
    python -m experiments.stability --config.settings="('BN_GD_ls_rms','BN_GD_sigmoid_rms')" \
        --config.seeds=3

ICCV 2017 §4.2 (xudonmao/LSGAN ``stability_comparison/``; the protocol facts are in
``docs/protocols.md``):
LSGAN and the regular GAN (sigmoid cross-entropy D, non-saturating G) train the DCGAN of the
LSUN experiments with BatchNorm removed from G (``BN_G``, Adam) or from G and D (``BN_GD``,
RMSProp). The official runs and the extra settings here (one per name in ``config.settings``):

| setting | loss (a, b, c) | BatchNorm | optimizer | source |
|---|---|---|---|---|
| ``BN_G_ls_adam`` | LSGAN (0, 1, 1) | D only | Adam(2e-4, β1 .5) | official |
| ``BN_G_sigmoid_adam`` | NS-GAN | D only | Adam(2e-4, β1 .5) | official |
| ``BN_GD_ls_rms`` | LSGAN (−1, 1, 0) (χ²) | none | RMSProp(2e-4) | official |
| ``BN_GD_sigmoid_rms`` | NS-GAN | none | RMSProp(2e-4) | official |
| ``BN_G_ls_chi2_adam`` | LSGAN (−1, 1, 0) | D only | Adam(2e-4, β1 .5) | TPAMI coding |
| ``BN_GD_ls01_rms`` | LSGAN (0, 1, 1) | none | RMSProp(2e-4) | ICCV coding |
| ``BN_GD_lsgp_adam`` | LSGAN-GP (0, 1, 1) + λ·DRAGAN GP | none (LayerNorm in D) | Adam(1e-4, .5, .9) | TPAMI |

RMSProp is TF1's ``RMSPropOptimizer`` (decay 0.9, momentum 0, ε 1e-10, accumulator initialised at
1.0). LSGAN-GP is improved_LSGAN ``difficult_architectures/*/gan_64x64.py`` mode ``lsgan-gp``:
penalty ``E[(‖∇D(x̂)‖ − 1)²]`` on perturbed real data ``x̂ = x + α·30·u`` (see
:func:`lsgan_jax.training.step.dragan_penalty`), weight ``λ = 150`` on the official ½·**sum** loss
scale (``config.lsgp.gp_weight``; the train step divides it by the batch size to match our
½·**mean** losses, so it is right at every batch size; every image experiment has the same
penalty as ``--config.gp=dragan --config.gp_weight=150``); D uses LayerNorm in place of BN,
as the official D does (``config.lsgp.layer_norm``; False runs D without normalization);
one D step per G step (the official ``others/``
architectures; 2 for its 101-layer ResNet).

Variants:

* ``default`` (CPU minutes): sklearn ``digits`` (natively 8×8) at 16×16,
  ``dcgan_g`` 4→8→16 / ``dcgan_d`` 16→8→4 (2 stride-2 layers each), ``base_features`` 16,
  z ~ U[−1, 1]^64, batch 64, 1,000 steps per run, 2 seeds per setting, the four official
  settings + LSGAN-GP. (16 px rather than the digits experiment's 32 px: about a third of the
  FLOPs per step, and the data has no detail beyond 8×8. LSGAN-GP keeps the official
  Adam(1e-4, β2 .9), half the others' rate, so it is the slowest to converge in this budget.)
  Every run is evaluated in the loop (every ``eval_every`` steps and at the end) by the
  ``digits`` evaluator (``evals=("digits",)``, :mod:`lsgan_jax.evaluators.digits`: class
  coverage, KL to uniform, confidence, Fréchet distance in the classifier's features "fd",
  precision/recall, density/coverage, diversity, collapsed).
* ``paper`` (GPU): LSUN bedroom 64×64 (``lsun/bedroom``; prepare it once, see
  ``lsgan_jax.data.images``), the official DCGAN (``base_features`` 64, 4 layers, BN γ ~ N(1,
  0.02)), z ~ U[−1, 1]^1024, lr 2e-4, batch 64, the four official runs, one seed; 100k steps each
  (the official ``max_steps=5,000,000`` is an upper bound, not a schedule). LSUN has no offline
  classifier (``evals=()``), so runs get no in-loop metric and "success" is left to the sample
  grids (``n/a``).
* ``smoke``: two tiny settings for the tests.

Success criterion (``config.success``; stated in ``summary.json``): at the final evaluation
``class_coverage ≥ min_class_coverage`` and ``fd ≤ max_fd`` and not ``collapsed``. ``max_fd`` is
calibrated on digits (see the default's comment); a run that stops with non-finite losses is a
failure (``diverged``).

Outputs (``--workdir``, default ``workdirs/stability/<variant>``): ``summary.json`` (criterion,
protocol, table, every run's final/best metrics), ``table.md``, ``grids/<setting>.png`` (final
samples, one row per seed), ``grids.png`` (all settings), and each run's own workdir under
``runs/<setting>/seed<k>/`` (logs, checkpoints; rerunning resumes and re-evaluates).

Differences from the official code, on purpose: the data (digits at 16 px instead of LSUN 64 px in
the CPU default), the narrower networks and fewer steps (CPU budget), mean-reduced losses (Adam
and RMSProp are invariant to the scale up to ε, and λ_GP is rescaled as above).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import time

import ml_collections
import numpy as np

from experiments import image_common
from lsgan_jax import cli, evaluators, studies, viz
from lsgan_jax.cache import enable_compilation_cache
from lsgan_jax.errors import ConfigError
from lsgan_jax.metrics.classifier_metrics import CollapseRule
from lsgan_jax.training import image_trainer

VARIANTS = ("default", "sn", "paper", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": (
        "no-BatchNorm G / G+D on digits 16x16: 4 official settings + LSGAN-GP, 2 seeds",
        "~15 min",
    ),
    "sn": (
        "LSGAN vs NS-GAN with a spectrally normalized D (no BN in D), beside the BN-D runs",
        "~12 min",
    ),
    "paper": ("the four official runs on LSUN bedroom 64x64", "GPU"),
    "smoke": ("tiny, for tests", "< 1 min"),
}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One column of the comparison.

    Attributes:
      loss: ``"lsgan"`` or ``"nsgan"``.
      coding: LSGAN labels (a, b, c).
      g_batchnorm: BatchNorm in G.
      d_batchnorm: BatchNorm in D.
      optimizer: ``"adam"``, ``"rmsprop"`` or ``"adam_gp"`` (the LSGAN-GP Adam).
      gp: LSGAN-GP penalty on.
      spectral_norm: Spectral normalization of every D layer (Miyato et al., 2018).
      source: Where it comes from.
    """

    loss: str
    coding: tuple[float, float, float]
    g_batchnorm: bool
    d_batchnorm: bool
    optimizer: str
    gp: bool = False
    source: str = "official"
    spectral_norm: bool = False


ZERO_ONE, CHI2 = (0.0, 1.0, 1.0), (-1.0, 1.0, 0.0)
SETTINGS: dict[str, Setting] = {
    "BN_G_ls_adam": Setting("lsgan", ZERO_ONE, False, True, "adam"),
    "BN_G_sigmoid_adam": Setting("nsgan", ZERO_ONE, False, True, "adam"),
    "BN_GD_ls_rms": Setting("lsgan", CHI2, False, False, "rmsprop"),
    "BN_GD_sigmoid_rms": Setting("nsgan", ZERO_ONE, False, False, "rmsprop"),
    "BN_G_ls_chi2_adam": Setting("lsgan", CHI2, False, True, "adam", source="TPAMI coding"),
    "BN_GD_ls01_rms": Setting("lsgan", ZERO_ONE, False, False, "rmsprop", source="ICCV coding"),
    "BN_GD_lsgp_adam": Setting("lsgan", ZERO_ONE, False, False, "adam_gp", gp=True, source="TPAMI"),
    "SN_D_ls_adam": Setting(
        "lsgan", ZERO_ONE, False, False, "adam", source="SN", spectral_norm=True
    ),
    "SN_D_sigmoid_adam": Setting(
        "nsgan", ZERO_ONE, False, False, "adam", source="SN", spectral_norm=True
    ),
}
SPECTRAL = ("BN_G_ls_adam", "BN_G_sigmoid_adam", "SN_D_ls_adam", "SN_D_sigmoid_adam")
OFFICIAL = ("BN_G_ls_adam", "BN_G_sigmoid_adam", "BN_GD_ls_rms", "BN_GD_sigmoid_rms")


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    """The study's config; the per-run image configs are derived by :func:`run_config`."""
    c = image_common.base_config()
    c.variant = variant
    c.settings = (*OFFICIAL, "BN_GD_lsgp_adam")
    c.seeds = 2  # a count (seed offsets 0..n-1 added to `seed`) or a tuple of offsets
    c.data.name = "digits"
    c.data.image_size = 16
    c.model.g_kwargs = {
        "image_size": 16,
        "channels": 1,
        "base_features": 16,
        "latent_dim": 64,
        "num_upsamples": 2,
    }
    c.model.d_kwargs = {"image_size": 16, "channels": 1, "base_features": 16, "num_layers": 2}
    c.adam = ml_collections.ConfigDict(
        {"name": "adam", "lr": 2e-4, "b1": 0.5, "b2": 0.999, "eps": 1e-8}
    )
    c.rmsprop = ml_collections.ConfigDict(
        {"name": "rmsprop", "lr": 2e-4, "decay": 0.9, "eps": 1e-10, "initial_scale": 1.0}
    )
    # LSGAN-GP: official LAMBDA=150 on the 1/2-sum loss scale; the step divides by the batch
    # size (StepSpec.gp_weight_scale="sum"), so it is right at every batch size.
    # layer_norm: LayerNorm in D where BN would be (the official LSGAN-GP D); False: none.
    c.lsgp = ml_collections.ConfigDict(
        {
            "gp_weight": 150.0,
            "gp_scale": 30.0,
            "lr": 1e-4,
            "b1": 0.5,
            "b2": 0.9,
            "n_d": 1,
            "layer_norm": True,
        }  # fmt: skip
    )
    c.num_steps = 1_000
    c.eval_every = 250
    c.evals = ("digits",)
    c.num_eval_samples = 1_000
    c.eval_seed = 1234
    c.log_every = 100
    c.sample_every = 500
    c.checkpoint_every = 1_000
    c.keep_checkpoints = 1
    c.ema_decay = 0.0  # the official code samples the live G
    # Success at the final evaluation. max_fd (digits-classifier feature space, 64-d), calibrated:
    # real digits vs themselves ~0.3, real + N(0, 0.3²) pixel noise ~6, half the classes ~50, one
    # class ~350-400, uniform noise ~540; a 1,500-step pilot of the five default settings ended
    # at 11, 15, 30 (good samples) vs 128, 184 (blurry / 3 classes).
    c.success = ml_collections.ConfigDict({"min_class_coverage": 0.8, "max_fd": 60.0})
    c.collapse = ml_collections.ConfigDict(
        {"min_coverage": 0.5, "max_fd": 0.0, "max_diversity": 0.8, "min_class_frac": 0.01}
    )
    c.compilation_cache = "auto"  # "auto": <lsgan_jax cache>/xla; "" disables; or a directory
    if variant == "sn":  # Kurach et al. (2019) study LSGAN with a spectrally normalized D
        c.settings = SPECTRAL
    elif variant == "paper":
        c.settings = OFFICIAL
        c.seeds = 1
        c.evals = ()  # no offline classifier for LSUN
        c.data.name = "lsun/bedroom"
        c.data.image_size = 64
        c.model.g_kwargs = {"image_size": 64, "channels": 3, "base_features": 64,
                            "latent_dim": 1024, "latent_dist": "uniform"}  # fmt: skip
        c.model.d_kwargs = {"image_size": 64, "channels": 3, "base_features": 64,
                            "num_layers": 4, "bn_scale_std": 0.02}  # fmt: skip
        c.num_steps = 100_000
        c.eval_every = 0
        c.log_every = 100
        c.sample_every = 5_000
        c.checkpoint_every = 5_000
        c.keep_checkpoints = 2
    elif variant == "smoke":
        c.settings = ("BN_G_ls_adam", "BN_GD_lsgp_adam")
        c.seeds = 1
        c.data.image_size = 16
        c.model.g_kwargs = {"image_size": 16, "channels": 1, "base_features": 4,
                            "latent_dim": 8, "num_upsamples": 2}  # fmt: skip
        c.model.d_kwargs = {"image_size": 16, "channels": 1, "base_features": 4, "num_layers": 2}
        c.batch_size = 16
        c.num_steps = 6
        c.eval_every = 3
        c.num_eval_samples = 64
        c.log_every = 3
        c.sample_every = 6
        c.checkpoint_every = 6
        c.num_samples = 16
    elif variant != "default":
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    return c


def run_config(
    config: ml_collections.ConfigDict, name: str, seed: int
) -> ml_collections.ConfigDict:
    """The image config of one (setting, seed) run (``image_trainer.train`` reads it)."""
    _check_setting(name)
    s = SETTINGS[name]
    c = copy.deepcopy(config)
    c.unlock()
    c.seed = int(config.seed) + seed
    c.loss = s.loss
    c.coding = ml_collections.ConfigDict(dict(zip("abc", s.coding, strict=True)))
    c.model.g_kwargs = {**dict(config.model.g_kwargs), "g_batchnorm": s.g_batchnorm}
    c.model.d_kwargs = {**dict(config.model.d_kwargs), "d_batchnorm": s.d_batchnorm}
    if s.spectral_norm:
        c.model.d_kwargs["spectral_norm"] = True
    if s.optimizer == "rmsprop":
        opt = dict(config.rmsprop)
    elif s.optimizer == "adam_gp":
        opt = {"name": "adam", "lr": config.lsgp.lr, "b1": config.lsgp.b1,
               "b2": config.lsgp.b2, "eps": 1e-8}  # fmt: skip
    else:
        opt = dict(config.adam)
    c.optim_g = ml_collections.ConfigDict(dict(opt))
    c.optim_d = ml_collections.ConfigDict(dict(opt))
    if s.gp:
        c.gp, c.gp_weight, c.gp_scale = "dragan", config.lsgp.gp_weight, config.lsgp.gp_scale
        c.n_d = int(config.lsgp.n_d)
        c.model.d_kwargs["d_layernorm"] = bool(config.lsgp.layer_norm)
    else:
        c.gp, c.gp_weight = "", 0.0
    c.setting = name
    return c


def _check_setting(name: str) -> None:
    if name not in SETTINGS:
        close = difflib.get_close_matches(name, SETTINGS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown setting {name!r}.{hint} Choose from {', '.join(SETTINGS)}.")
    if SETTINGS[name].gp and SETTINGS[name].d_batchnorm:
        raise ConfigError(f"{name}: LSGAN-GP needs a D without BatchNorm.")


def _success(final: dict, crit: ml_collections.ConfigDict) -> bool | None:
    if not final:
        return None
    return bool(
        final["class_coverage"] >= crit.min_class_coverage
        and final["fd"] <= crit.max_fd
        and not final["collapsed"]
    )


#: A Fréchet distance is never negative (its intervals are cut there).
FD_RANGE = (0.0, float("inf"))


def make_table(rows: list[dict], settings: tuple[str, ...]) -> tuple[list[dict], str]:
    """Per-setting aggregates and their Markdown table.

    Success is ``k/n [low, high]`` with the 95 % Wilson interval of the rate; final and best fd
    are ``mean [low, high]`` with the 95 % Student-t interval over seeds (:mod:`lsgan_jax.stats`).
    """
    table = []
    for name in settings:
        runs = [r for r in rows if r["setting"] == name]
        s = SETTINGS[name]
        ok = [r["success"] for r in runs if r["success"] is not None]
        fin = [r["final"] for r in runs if r["final"]]
        entry = {
            "setting": name,
            "loss": s.loss + (f" {s.coding}" if s.loss == "lsgan" else ""),
            "gp": s.gp,
            "batchnorm": "D" if s.d_batchnorm else "none",
            "optimizer": s.optimizer,
            "runs": len(runs),
            "successes": int(sum(ok)) if ok else None,
            "success_rate": float(np.mean(ok)) if ok else None,
            "success_ci95": list(studies.rate_interval(sum(ok), len(ok))) if ok else None,
            "diverged": sum(r["diverged"] for r in runs),
            "collapsed_final": sum(int(f["collapsed"]) for f in fin),
            "final_fd": [f["fd"] for f in fin],
            "best_fd": [r["best"].get("fd") for r in runs if r["best"].get("fd") is not None],
            "final_class_coverage": [f["class_coverage"] for f in fin],
            "final_confidence": [f["confidence"] for f in fin],
        }
        table.append(entry)
    lines = [
        "| setting | loss | BN | optimizer | success | final fd | best fd | final class cov. "
        "| collapsed | diverged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in table:
        n_ok = sum(r["success"] is not None for r in rows if r["setting"] == e["setting"])
        succ = "n/a" if e["successes"] is None else studies.fmt_rate_ci(e["successes"], n_ok)
        loss = e["loss"] + (" + GP" if e["gp"] else "")
        cov = e["final_class_coverage"]
        cov = f"{np.mean(cov):.2f}" if cov else "n/a"
        lines.append(
            f"| {e['setting']} | {loss} | {e['batchnorm']} | {e['optimizer']} | {succ} | "
            f"{studies.fmt_mean_ci(e['final_fd'], 1, bounds=FD_RANGE)} | "
            f"{studies.fmt_mean_ci(e['best_fd'], 1, bounds=FD_RANGE)} | "
            f"{cov} | "
            f"{e['collapsed_final']}/{e['runs']} | {e['diverged']}/{e['runs']} |"
        )
    return table, "\n".join(lines)


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains every (setting, seed) run in turn, then writes the table, grids and summary."""
    for name in config.settings:
        _check_setting(name)
    evaluators.check_names(config.evals)
    enable_compilation_cache(config.compilation_cache)
    t0 = time.perf_counter()
    runs = [
        studies.SequentialRun(
            group=name,
            labels={"setting": name},
            config=run_config(config, name, k),
            workdir=os.path.join(workdir, "runs", name, f"seed{k}"),
        )  # fmt: skip
        for name in config.settings
        for k in studies.seed_list(config)
    ]
    result = studies.run_sequential(runs, train=image_trainer.train)
    if result.preempted:
        return result.preempted
    evaluate = bool(config.evals)
    rows = result.rows
    for row in rows:
        ok = _success(row["final"], config.success) if evaluate else None
        row["success"] = False if row["diverged"] else ok
    table, md = make_table(rows, tuple(config.settings))
    grids, grid_paths, titles = {}, {}, {}
    for e in table:
        name = e["setting"]
        grids[name] = viz.sample_rows(result.samples.get(name, []))
        if grids[name] is not None:
            grid_paths[name] = viz.save_image(
                grids[name], os.path.join(workdir, "grids", f"{name}.png")
            )
        succ = "n/a" if e["successes"] is None else f"{e['successes']}/{e['runs']}"
        titles[name] = f"{name} ({e['loss']}{' + GP' if e['gp'] else ''}): success {succ}"
    overview = viz.save_overview(grids, titles, os.path.join(workdir, "grids.png"))
    rule = CollapseRule.from_config(config.collapse)
    criterion = (
        f"success = final class_coverage >= {config.success.min_class_coverage} and final fd <= "
        f"{config.success.max_fd} and not collapsed (and no non-finite stop); {rule}"
    )
    if not evaluate:
        criterion = f"n/a: no in-loop evaluator for {config.data.name!r}; judge grids.png"
    summary = {
        "variant": config.variant,
        "criterion": criterion,
        "protocol": next(
            (p[config.evals[0]] for p in result.protocols.values() if config.evals), None
        ),
        "table": table,
        "table_markdown": md,
        "runs": rows,
        "grids": grid_paths,
        "overview": overview,
        "seconds": round(time.perf_counter() - t0, 1),
        "config": config.to_dict(),
    }
    return studies.write_study(workdir, summary, md, criterion)


cli.run(__name__, get_config, main, VARIANTS)
