r"""The ICCV "difficult architectures" stability comparison: DCGAN without BatchNorm.

    python -m experiments.stability                   # digits, 5 settings x 2 seeds, CPU minutes
    python -m experiments.stability --variant=paper   # LSUN bedroom 64x64, the four official runs
    python -m experiments.stability --variant=smoke   # seconds; for tests
    python -m experiments.stability --config.settings="('BN_GD_ls_rms','BN_GD_sigmoid_rms')" \
        --config.num_seeds=3

ICCV 2017 §4.2 (xudonmao/LSGAN ``stability_comparison/``; ``shared/research/paper.md`` §2.3):
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
| ``BN_GD_lsgp_adam`` | LSGAN-GP (0, 1, 1) + λ·DRAGAN GP | none | Adam(1e-4, .5, .9) | TPAMI |

RMSProp is TF1's ``RMSPropOptimizer`` (decay 0.9, momentum 0, ε 1e-10, accumulator initialised at
1.0). LSGAN-GP is improved_LSGAN ``difficult_architectures/*/gan_64x64.py`` mode ``lsgan-gp``:
penalty ``E[(‖∇D(x̂)‖ − 1)²]`` on perturbed real data ``x̂ = x + α·30·u`` (see
:func:`lsgan_jax.training.step.dragan_penalty`), weight ``λ = 150`` on ½·**sum** losses, i.e.
**λ = 150/64 ≈ 2.34** with our ½·**mean** losses at batch 64 (``config.lsgp.gp_weight``; the
same penalty is available to every image experiment as ``--config.gp=dragan
--config.gp_weight=2.34``); the official D uses LayerNorm in place of BN, ours has no
normalization (``d_batchnorm=False``); one D step per G step (the official ``others/``
architectures; 2 for its 101-layer ResNet).

Variants:

* ``default`` (CPU, ~10 min on 2 cores): sklearn ``digits`` (natively 8×8) at 16×16,
  ``dcgan_g`` 4→8→16 / ``dcgan_d`` 16→8→4 (2 stride-2 layers each), ``base_features`` 16,
  z ~ U[−1, 1]^64, batch 64, 1,000 steps per run, 2 seeds per setting, the four official
  settings + LSGAN-GP. (16 px rather than the digits experiment's 32 px: 1.2 vs 3.5 GFLOP per
  step, ~4× faster on CPU, and the data has no detail beyond 8×8. LSGAN-GP keeps the official
  Adam(1e-4, β2 .9), half the others' rate, so it is the slowest to converge in this budget.)
  Every run is evaluated in the loop (every ``eval_every`` steps and at the end) with the offline
  digits classifier (:mod:`lsgan_jax.metrics.digits_classifier`: class coverage, KL to uniform,
  confidence, Fréchet distance in its features "fd", precision/recall, density/coverage,
  diversity, collapsed).
* ``paper`` (GPU): LSUN bedroom 64×64 (``lsun/bedroom``; prepare it once, see
  ``lsgan_jax.data.images``), the official DCGAN (``base_features`` 64, 4 layers, BN γ ~ N(1,
  0.02)), z ~ U[−1, 1]^1024, lr 2e-4, batch 64, the four official runs, one seed; 100k steps each
  (the official ``max_steps=5,000,000`` is an upper bound, not a schedule). LSUN has no offline
  classifier, so runs get no in-loop metric and "success" is left to the sample grids (``n/a``).
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
import json
import os
import time

import jax
import ml_collections
import numpy as np

from experiments import image_common
from lsgan_jax import cli, viz
from lsgan_jax.errors import NonFiniteError
from lsgan_jax.training import image_trainer

VARIANTS = ("default", "paper", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": (
        "no-BatchNorm G / G+D on digits 16x16: 4 official settings + LSGAN-GP, 2 seeds",
        "~15 min",
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
      source: Where it comes from.
    """

    loss: str
    coding: tuple[float, float, float]
    g_batchnorm: bool
    d_batchnorm: bool
    optimizer: str
    gp: bool = False
    source: str = "official"


ZERO_ONE, CHI2 = (0.0, 1.0, 1.0), (-1.0, 1.0, 0.0)
SETTINGS: dict[str, Setting] = {
    "BN_G_ls_adam": Setting("lsgan", ZERO_ONE, False, True, "adam"),
    "BN_G_sigmoid_adam": Setting("nsgan", ZERO_ONE, False, True, "adam"),
    "BN_GD_ls_rms": Setting("lsgan", CHI2, False, False, "rmsprop"),
    "BN_GD_sigmoid_rms": Setting("nsgan", ZERO_ONE, False, False, "rmsprop"),
    "BN_G_ls_chi2_adam": Setting("lsgan", CHI2, False, True, "adam", source="TPAMI coding"),
    "BN_GD_ls01_rms": Setting("lsgan", ZERO_ONE, False, False, "rmsprop", source="ICCV coding"),
    "BN_GD_lsgp_adam": Setting("lsgan", ZERO_ONE, False, False, "adam_gp", gp=True, source="TPAMI"),
}
OFFICIAL = ("BN_G_ls_adam", "BN_G_sigmoid_adam", "BN_GD_ls_rms", "BN_GD_sigmoid_rms")


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    """The study's config; the per-run image configs are derived by :func:`run_config`."""
    c = image_common.base_config()
    c.variant = variant
    c.settings = (*OFFICIAL, "BN_GD_lsgp_adam")
    c.num_seeds = 2
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
    # LSGAN-GP: official LAMBDA=150 on 1/2-sum losses over 64 samples -> 150/64 with mean losses.
    c.lsgp = ml_collections.ConfigDict(
        {"gp_weight": 150.0 / 64.0, "gp_scale": 30.0, "lr": 1e-4, "b1": 0.5, "b2": 0.9, "n_d": 1}
    )
    c.num_steps = 1_000
    c.eval_every = 250
    c.eval_samples = 1_000
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
    if variant == "paper":
        c.settings = OFFICIAL
        c.num_seeds = 1
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
        c.num_seeds = 1
        c.data.image_size = 16
        c.model.g_kwargs = {"image_size": 16, "channels": 1, "base_features": 4,
                            "latent_dim": 8, "num_upsamples": 2}  # fmt: skip
        c.model.d_kwargs = {"image_size": 16, "channels": 1, "base_features": 4, "num_layers": 2}
        c.batch_size = 16
        c.num_steps = 6
        c.eval_every = 3
        c.eval_samples = 64
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
    if name not in SETTINGS:
        raise cli.ConfigError(f"Unknown setting {name!r}; choose from {', '.join(SETTINGS)}.")
    s = SETTINGS[name]
    c = copy.deepcopy(config)
    c.unlock()
    c.seed = int(config.seed) + seed
    c.loss = s.loss
    c.coding = ml_collections.ConfigDict(dict(zip("abc", s.coding, strict=True)))
    c.model.g_kwargs = {**dict(config.model.g_kwargs), "g_batchnorm": s.g_batchnorm}
    c.model.d_kwargs = {**dict(config.model.d_kwargs), "d_batchnorm": s.d_batchnorm}
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
    else:
        c.gp, c.gp_weight = "", 0.0
    c.setting = name
    return c


def _has_classifier(name: str) -> bool:
    return name == "digits" or name.startswith("times_")


def enable_compilation_cache(setting: str) -> None:
    """JAX's persistent compilation cache: seeds of one setting compile once (saves ~10-25 s a run
    on CPU)."""
    if not setting:
        return
    if setting == "auto":
        from lsgan_jax.metrics import fid_weights  # noqa: PLC0415

        setting = os.fspath(fid_weights.default_cache_dir() / "xla")
    jax.config.update("jax_compilation_cache_dir", setting)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def collapse_rule(config: ml_collections.ConfigDict):
    """The :class:`~lsgan_jax.metrics.digits_classifier.CollapseRule` of ``config.collapse``
    (``max_fd`` 0 turns the FD term off)."""
    from lsgan_jax.metrics.digits_classifier import CollapseRule  # noqa: PLC0415

    kw = dict(config.collapse)
    kw["max_fd"] = kw.get("max_fd") or float("inf")
    return CollapseRule(**kw)


def _success(final: dict, crit: ml_collections.ConfigDict) -> bool | None:
    if not final:
        return None
    return bool(
        final["class_coverage"] >= crit.min_class_coverage
        and final["fd"] <= crit.max_fd
        and not final["collapsed"]
    )


def mean_sd(values: list[float]) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "n/a"
    return f"{np.mean(v):.1f} ± {np.std(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def make_table(rows: list[dict], settings: tuple[str, ...]) -> tuple[list[dict], str]:
    """Per-setting aggregates and their Markdown table."""
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
        succ = "n/a" if e["successes"] is None else f"{e['successes']}/{e['runs']}"
        loss = e["loss"] + (" + GP" if e["gp"] else "")
        cov = e["final_class_coverage"]
        cov = f"{np.mean(cov):.2f}" if cov else "n/a"
        lines.append(
            f"| {e['setting']} | {loss} | {e['batchnorm']} | {e['optimizer']} | {succ} | "
            f"{mean_sd(e['final_fd'])} | {mean_sd(e['best_fd'])} | {cov} | "
            f"{e['collapsed_final']}/{e['runs']} | {e['diverged']}/{e['runs']} |"
        )
    return table, "\n".join(lines)


def save_grid(samples: list[np.ndarray], path: str, ncol: int = 16) -> str | None:
    rows = [np.asarray(s[:ncol], np.float32) for s in samples if s is not None and len(s)]
    if not rows:
        return None
    rows = [np.concatenate([r, np.ones((ncol - len(r), *r.shape[1:]), r.dtype)]) for r in rows]
    return viz.save_image(viz.image_grid(np.concatenate(rows), ncol=ncol), path)


def save_overview(paths: dict[str, str], titles: dict[str, str], path: str) -> str | None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    items = [(k, p) for k, p in paths.items() if p and os.path.exists(p)]
    if not items:
        return None
    fig, axes = plt.subplots(len(items), 1, figsize=(8, 1.2 + len(items)), squeeze=False)
    for ax, (name, p) in zip(axes[:, 0], items, strict=True):
        ax.imshow(np.asarray(Image.open(p).convert("RGB")))
        ax.set_title(titles.get(name, name), fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains every (setting, seed) run in turn, then writes the table, grids and summary."""
    from lsgan_jax.metrics import digits_classifier as dcl  # noqa: PLC0415

    for name in config.settings:
        if name not in SETTINGS:
            raise cli.ConfigError(f"Unknown setting {name!r}; choose from {', '.join(SETTINGS)}.")
        if SETTINGS[name].gp and SETTINGS[name].d_batchnorm:
            raise cli.ConfigError(f"{name}: LSGAN-GP needs a D without BatchNorm.")
    enable_compilation_cache(config.compilation_cache)
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    evaluate = _has_classifier(config.data.name) and config.eval_samples > 0
    clf = ref = None
    rule = collapse_rule(config)
    data_dir = config.data.get("data_dir", "") or None
    if evaluate:
        clf = dcl.get_classifier(config.data.name, config.data.image_size, data_dir=data_dir)
        ref = dcl.make_reference(clf, data_dir=data_dir)
        print(
            f"{config.data.name} classifier: held-out accuracy {clf.accuracy:.4f} "
            f"({clf.n_test} images); features {clf.space.features}"
        )
    rows, samples, protocol = [], {}, None
    for name in config.settings:
        for k in range(config.num_seeds):
            rc = run_config(config, name, k)
            run_dir = os.path.join(workdir, "runs", name, f"seed{k}")
            evaluators, ev = None, None
            if evaluate:
                dim, dist = dcl.latent_of(rc)
                ev = dcl.ClassifierEvaluator(
                    clf, ref, num_samples=config.eval_samples, seed=config.eval_seed,
                    latent_dim=dim, latent_dist=dist, output=rc.model.get("output", "tanh"),
                    rule=rule,
                )  # fmt: skip
                evaluators = {"digits": ev}
                protocol = ev.protocol()
            t_run = time.perf_counter()
            diverged, summary = False, {}
            try:
                summary = image_trainer.train(rc, run_dir, evaluators=evaluators)
            except NonFiniteError as err:
                diverged = True
                print(f"{name} seed {k}: stopped, {str(err).splitlines()[0]}")
            if "preempted_at" in summary:
                return summary
            final = {
                key.split("/", 1)[1]: v
                for key, v in summary.get("final", {}).items()
                if key.startswith("digits/")
            }
            best = {
                key.split("/", 1)[1]: v["value"]
                for key, v in summary.get("best", {}).items()
                if key.startswith("digits/")
            }
            success = False if diverged else (_success(final, config.success) if evaluate else None)
            row = {
                "setting": name,
                "seed": rc.seed,
                "success": success,
                "diverged": diverged,
                "final": final,
                "best": best,
                "final_class_hist": ev.last.as_dict()["class_hist"] if ev and ev.last else None,
                "steps_per_s": summary.get("steps_per_s"),
                "seconds": round(time.perf_counter() - t_run, 1),
                "workdir": run_dir,
            }
            rows.append(row)
            if ev is not None and ev.last_samples is not None:
                samples.setdefault(name, []).append(ev.last_samples)
            else:
                samples.setdefault(name, []).append(_run_samples(rc, run_dir))
            brief = {
                m: round(final[m], 3) for m in ("fd", "class_coverage", "collapsed") if m in final
            }
            print(f"{name} seed {k}: {row['seconds']} s, success={success} {brief}")
    table, md = make_table(rows, tuple(config.settings))
    grid_paths, titles = {}, {}
    for e in table:
        name = e["setting"]
        grid_paths[name] = save_grid(
            samples.get(name, []), os.path.join(workdir, "grids", f"{name}.png")
        )
        succ = "n/a" if e["successes"] is None else f"{e['successes']}/{e['runs']}"
        titles[name] = f"{name} ({e['loss']}{' + GP' if e['gp'] else ''}): success {succ}"
    overview = save_overview(grid_paths, titles, os.path.join(workdir, "grids.png"))
    criterion = (
        f"success = final class_coverage >= {config.success.min_class_coverage} and final fd <= "
        f"{config.success.max_fd} and not collapsed (and no non-finite stop); {rule}"
    )
    if not evaluate:
        criterion = f"n/a: no offline classifier for {config.data.name!r}; judge grids.png"
    summary = {
        "variant": config.variant,
        "criterion": criterion,
        "protocol": protocol,
        "table": table,
        "table_markdown": md,
        "runs": rows,
        "grids": {k: v for k, v in grid_paths.items() if v},
        "overview": overview,
        "seconds": round(time.perf_counter() - t0, 1),
        "config": config.to_dict(),
    }
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    with open(os.path.join(workdir, "table.md"), "w") as f:
        f.write(f"{md}\n\n{criterion}\n")
    print(md)
    print(criterion)
    print(
        f"{len(rows)} runs in {summary['seconds']:.0f} s. Wrote "
        f"{os.path.join(workdir, 'summary.json')}, table.md and grids/."
    )
    return summary


def _run_samples(rc: ml_collections.ConfigDict, run_dir: str) -> np.ndarray | None:
    """The run's last ``samples.png`` tiles as images (for runs without an evaluator)."""
    path = os.path.join(run_dir, "samples.png")
    if not os.path.exists(path):
        return None
    from PIL import Image  # noqa: PLC0415

    grid = np.asarray(Image.open(path), np.float32) / 127.5 - 1.0
    if grid.ndim == 2:
        grid = grid[..., None]
    s, pad = rc.data.image_size, 1
    n = rc.get("num_samples", 64)
    ncol = int(np.ceil(np.sqrt(n)))
    tiles = []
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = pad + r * (s + pad), pad + col * (s + pad)
        if y + s <= grid.shape[0] and x + s <= grid.shape[1]:
            tiles.append(grid[y : y + s, x : x + s])
    return np.stack(tiles) if tiles else None


cli.run(__name__, get_config, main, VARIANTS)
