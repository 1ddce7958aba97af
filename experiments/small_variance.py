r"""The TPAMI "datasets with small variance": LSGAN vs the regular GAN on Times-font digits.

    python -m experiments.small_variance                  # CPU minutes: both sets, 2 seeds
    python -m experiments.small_variance --variant=paper  # the official 50k steps, full widths
    python -m experiments.small_variance --variant=smoke  # seconds; for tests
    python -m experiments.small_variance --config.datasets="('times_shift_rotate',)" \
        --config.num_seeds=5

Mao et al., TPAMI 2019 (xudonmao/improved_LSGAN ``small_variance_datasets/``;
``shared/research/paper.md`` §3.2): two synthetic sets of 10 classes × 1,000 white Times-font
digits on black, 28×28, shifted (``times.shift``) or shifted and rotated
(``times.shift.rotate``). Each class is one glyph up to a small transform, so the data has very
little variance — the paper's test of whether a GAN collapses onto a few modes. We re-create the
sets (:mod:`lsgan_jax.data.times_fonts`; the official ``data.tar.gz`` is not available, so the
font, glyph size and transform ranges are ours and stated there).

Official settings (``main.py``, ``arch.py``): ``generator_digit`` (z(100) ~ U[−1, 1] → 4×4×512 →
7×7×256 → 14×14×128 → 28×28×1, BN) and the LeNet-like ``discriminator_digit`` (20, 50 filters,
500 hidden) — our ``digit_g`` / ``digit_d``; Adam(2e-4, β1 .5), batch 64, D then G with the same
z, 50,001 steps; LSGAN with the χ² coding (a, b, c) = (−1, 1, 0) against the regular GAN
(sigmoid cross-entropy D, non-saturating G). The official losses are sums over the batch; ours
are means (Adam is invariant to the scale up to ε).

Variants:

* ``default`` (CPU, about 10 min on 2 cores): both sets × {LSGAN χ², NS-GAN} × 2 seeds,
  ``digit_g`` narrowed to ``base_features`` 16 (widths 128-64-32 instead of 512-256-128; the D is
  the official one), batch 32 (official 64), 800 steps per run — a CPU budget: it shows early
  collapse and coverage, not the converged behaviour of the official 50k steps.
* ``paper``: the official networks and 50,001 steps, 3 seeds (a GPU job).
* ``smoke``: tiny, for tests.

Metrics: a classifier trained on the same Times set (the digits-classifier trainer of
:mod:`lsgan_jax.metrics.digits_classifier` at 14×14, held-out accuracy ≈ 1.0) scores
``eval_samples`` samples every ``eval_every`` steps and at the end: per-class fractions, class
coverage (classes with ≥ 1 % of the samples), KL to uniform, confidence, Fréchet distance in its
features, precision/recall, density/coverage, diversity, and ``collapsed``. The table reports, per
(dataset, loss), the classes covered by each seed at the end, the seeds that collapsed, mean final
FD and KL, and the mean per-class fractions (which digits a collapsed generator keeps).

Outputs (``--workdir``, default ``workdirs/small_variance/<variant>``): ``summary.json``,
``table.md``, ``grids/<dataset>_<loss>.png`` (final samples, one row per seed), ``grids.png``,
``real.png`` (real samples of each set) and each run's workdir under
``runs/<dataset>/<loss>/seed<k>/``.
"""

from __future__ import annotations

import copy
import json
import os
import time

import ml_collections
import numpy as np

from experiments import image_common
from experiments.stability import (
    collapse_rule,
    enable_compilation_cache,
    mean_sd,
    save_grid,
    save_overview,
)
from lsgan_jax import cli, viz
from lsgan_jax.errors import NonFiniteError
from lsgan_jax.training import image_trainer

VARIANTS = ("default", "paper", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": ("Times-font digits (2 sets) x {LSGAN chi2, NS-GAN} x 2 seeds, 800 steps", "~7 min"),
    "paper": ("the official networks, 50,001 steps, 3 seeds", "GPU"),
    "smoke": ("tiny, for tests", "< 1 min"),
}
DATASETS = ("times_shift", "times_shift_rotate")
#: name -> (loss, coding a, b, c). LSGAN uses the χ² coding of the official code.
LOSSES = {"lsgan": ("lsgan", (-1.0, 1.0, 0.0)), "nsgan": ("nsgan", (0.0, 1.0, 1.0))}


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    """The study's config; per-run image configs come from :func:`run_config`."""
    c = image_common.base_config()
    c.variant = variant
    c.datasets = DATASETS
    c.losses = ("lsgan", "nsgan")
    c.num_seeds = 2
    c.data.name = "times_shift_rotate"
    c.data.image_size = 28
    c.model.g, c.model.d = "digit_g", "digit_d"
    c.model.g_kwargs = {"base_features": 16}
    c.model.d_kwargs = {}
    c.batch_size = 32
    c.num_steps = 800
    c.eval_every = 200
    c.eval_samples = 1_000
    c.eval_seed = 1234
    c.log_every = 100
    c.sample_every = 400
    c.checkpoint_every = 800
    c.keep_checkpoints = 1
    c.ema_decay = 0.0
    c.collapse = ml_collections.ConfigDict(
        {"min_coverage": 0.5, "max_fd": 0.0, "max_diversity": 0.8, "min_class_frac": 0.01}
    )
    c.compilation_cache = "auto"
    if variant == "paper":
        c.num_seeds = 3
        c.model.g_kwargs = {}
        c.batch_size = 64
        c.num_steps = 50_001
        c.eval_every = 5_000
        c.log_every = 100
        c.sample_every = 1_000
        c.checkpoint_every = 10_000
        c.keep_checkpoints = 2
    elif variant == "smoke":
        c.datasets = ("times_shift",)
        c.num_seeds = 1
        c.model.g_kwargs = {"base_features": 4, "latent_dim": 8}
        c.model.d_kwargs = {"features": (4, 8), "hidden": 16}
        c.batch_size = 16
        c.num_steps = 4
        c.eval_every = 2
        c.eval_samples = 64
        c.log_every = 2
        c.sample_every = 4
        c.checkpoint_every = 4
        c.num_samples = 16
    elif variant != "default":
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    return c


def run_config(
    config: ml_collections.ConfigDict, dataset: str, loss: str, seed: int
) -> ml_collections.ConfigDict:
    """The image config of one (dataset, loss, seed) run."""
    if dataset not in DATASETS:
        raise cli.ConfigError(f"Unknown dataset {dataset!r}; choose from {DATASETS}.")
    if loss not in LOSSES:
        raise cli.ConfigError(f"Unknown loss {loss!r}; choose from {tuple(LOSSES)}.")
    c = copy.deepcopy(config)
    c.unlock()
    c.data.name = dataset
    c.seed = int(config.seed) + seed
    c.loss, coding = LOSSES[loss]
    c.coding = ml_collections.ConfigDict(dict(zip("abc", coding, strict=True)))
    return c


def make_table(rows: list[dict], config: ml_collections.ConfigDict) -> tuple[list[dict], str]:
    """Per (dataset, loss) aggregates and their Markdown table."""
    table = []
    for ds in config.datasets:
        for loss in config.losses:
            runs = [r for r in rows if r["dataset"] == ds and r["loss"] == loss]
            fin = [r for r in runs if r["final"]]
            hists = np.asarray([r["class_hist"] for r in fin]) if fin else np.zeros((0, 10))
            covered = [int(round(r["final"]["class_coverage"] * 10)) for r in fin]
            table.append(
                {
                    "dataset": ds,
                    "loss": loss,
                    "coding": LOSSES[loss][1] if loss == "lsgan" else None,
                    "runs": len(runs),
                    "classes_covered": covered,
                    "collapsed": sum(int(r["final"]["collapsed"]) for r in fin),
                    "diverged": sum(r["diverged"] for r in runs),
                    "final_fd": [r["final"]["fd"] for r in fin],
                    "final_kl_uniform": [r["final"]["kl_uniform"] for r in fin],
                    "mean_class_hist": hists.mean(0).round(3).tolist() if len(hists) else None,
                }
            )
    lines = [
        "| dataset | loss | classes covered (per seed) | collapsed | diverged | final fd "
        "| KL(hist‖unif) | mean class fractions 0..9 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in table:
        loss = "LSGAN (−1,1,0)" if e["loss"] == "lsgan" else "NS-GAN"
        hist = " ".join(f"{p:.2f}" for p in e["mean_class_hist"]) if e["mean_class_hist"] else "n/a"
        kl = mean_sd(e["final_kl_uniform"]) if len(e["final_kl_uniform"]) < 2 else (
            f"{np.mean(e['final_kl_uniform']):.2f} ± {np.std(e['final_kl_uniform']):.2f}"
        )  # fmt: skip
        lines.append(
            f"| {e['dataset']} | {loss} | {', '.join(f'{c}/10' for c in e['classes_covered'])} "
            f"| {e['collapsed']}/{e['runs']} | {e['diverged']}/{e['runs']} | "
            f"{mean_sd(e['final_fd'])} | {kl} | {hist} |"
        )
    return table, "\n".join(lines)


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains every (dataset, loss, seed) run in turn; writes the table, grids and summary."""
    from lsgan_jax.metrics import digits_classifier as dcl  # noqa: PLC0415

    for ds in config.datasets:
        run_config(config, ds, config.losses[0], 0)  # validates the names before training
    for loss in config.losses:
        run_config(config, config.datasets[0], loss, 0)
    enable_compilation_cache(config.compilation_cache)
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    rule = collapse_rule(config)
    data_dir = config.data.get("data_dir", "") or None
    rows, samples, protocols, real = [], {}, {}, []
    for ds in config.datasets:
        clf = dcl.get_classifier(ds, config.data.image_size, data_dir=data_dir)
        ref = dcl.make_reference(clf, data_dir=data_dir)
        x, y = dcl.load_real_images(ds, source_size=config.data.image_size, data_dir=data_dir)
        real.append(np.concatenate([x[y == k][:8] for k in range(10)]))
        print(f"{ds}: classifier held-out accuracy {clf.accuracy:.4f} ({clf.n_test} images)")
        for loss in config.losses:
            for k in range(config.num_seeds):
                rc = run_config(config, ds, loss, k)
                dim, dist = dcl.latent_of(rc)
                ev = dcl.ClassifierEvaluator(
                    clf, ref, num_samples=config.eval_samples, seed=config.eval_seed,
                    latent_dim=dim, latent_dist=dist, rule=rule,
                )  # fmt: skip
                protocols[ds] = ev.protocol()
                run_dir = os.path.join(workdir, "runs", ds, loss, f"seed{k}")
                t_run, diverged, summary = time.perf_counter(), False, {}
                try:
                    summary = image_trainer.train(rc, run_dir, evaluators={"times": ev})
                except NonFiniteError as err:
                    diverged = True
                    print(f"{ds} {loss} seed {k}: stopped, {str(err).splitlines()[0]}")
                if "preempted_at" in summary:
                    return summary
                final = {
                    key.split("/", 1)[1]: v
                    for key, v in summary.get("final", {}).items()
                    if key.startswith("times/")
                }
                row = {
                    "dataset": ds,
                    "loss": loss,
                    "seed": rc.seed,
                    "diverged": diverged,
                    "final": final,
                    "class_hist": ev.last.as_dict()["class_hist"] if ev.last else None,
                    "steps_per_s": summary.get("steps_per_s"),
                    "seconds": round(time.perf_counter() - t_run, 1),
                    "workdir": run_dir,
                }
                rows.append(row)
                samples.setdefault(f"{ds}_{loss}", []).append(ev.last_samples)
                brief = {m: round(final[m], 3) for m in ("class_coverage", "fd", "collapsed")
                         if m in final}  # fmt: skip
                print(f"{ds} {loss} seed {k}: {row['seconds']} s {brief}")
    table, md = make_table(rows, config)
    grid_paths, titles = {}, {}
    for e in table:
        key = f"{e['dataset']}_{e['loss']}"
        grid_paths[key] = save_grid(
            samples.get(key, []), os.path.join(workdir, "grids", f"{key}.png")
        )
        covered = ", ".join(str(c) for c in e["classes_covered"])
        titles[key] = f"{e['dataset']} {e['loss']}: classes covered per seed {covered}"
    overview = save_overview(grid_paths, titles, os.path.join(workdir, "grids.png"))
    real_path = viz.save_image(
        viz.image_grid(np.concatenate(real), ncol=16), os.path.join(workdir, "real.png")
    )
    summary = {
        "variant": config.variant,
        "collapse_rule": str(rule),
        "protocol": protocols,
        "table": table,
        "table_markdown": md,
        "runs": rows,
        "grids": {k: v for k, v in grid_paths.items() if v},
        "overview": overview,
        "real": real_path,
        "seconds": round(time.perf_counter() - t0, 1),
        "config": config.to_dict(),
    }
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    with open(os.path.join(workdir, "table.md"), "w") as f:
        f.write(f"{md}\n\n{summary['collapse_rule']}\n")
    print(md)
    print(summary["collapse_rule"])
    print(
        f"{len(rows)} runs in {summary['seconds']:.0f} s. Wrote "
        f"{os.path.join(workdir, 'summary.json')}, table.md and grids/."
    )
    return summary


cli.run(__name__, get_config, main, VARIANTS)
