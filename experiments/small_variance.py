r"""The TPAMI "datasets with small variance": LSGAN vs the regular GAN on Times-font digits.

    python -m experiments.small_variance                  # CPU minutes: both sets, 2 seeds
    python -m experiments.small_variance --variant=paper  # the official 50k steps, full widths
    python -m experiments.small_variance --variant=smoke  # seconds; for tests
    python -m experiments.small_variance --config.datasets="('times_shift_rotate',)" \
        --config.seeds=5

Mao et al., TPAMI 2019 (xudonmao/improved_LSGAN ``small_variance_datasets/``; the protocol
facts are in ``docs/protocols.md``): two synthetic sets of 10 classes × 1,000 white Times-font
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

* ``default`` (CPU minutes): both sets × {LSGAN χ², NS-GAN} × 2 seeds,
  ``digit_g`` narrowed to ``base_features`` 16 (widths 128-64-32 instead of 512-256-128; the D is
  the official one), batch 32 (official 64), 800 steps per run — a CPU budget: it shows early
  collapse and coverage, not the converged behaviour of the official 50k steps.
* ``paper``: the official networks and 50,001 steps, 3 seeds (a GPU job).
* ``smoke``: tiny, for tests.

Metrics: the ``times`` evaluator (``evals=("times",)``, :mod:`lsgan_jax.evaluators.digits`): a
classifier trained on the same Times set (:mod:`lsgan_jax.metrics.digits_classifier` at 14×14;
its held-out accuracy is in the protocol) scores ``num_eval_samples`` samples every
``eval_every`` steps and at the end: per-class fractions, class
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
from lsgan_jax.metrics.digits_classifier import load_real_images
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
#: FD and KL are never negative (their intervals are cut there).
NONNEGATIVE = (0.0, float("inf"))


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    """The study's config; per-run image configs come from :func:`run_config`."""
    c = image_common.base_config()
    c.variant = variant
    c.datasets = DATASETS
    c.losses = ("lsgan", "nsgan")
    c.seeds = 2  # a count (seed offsets 0..n-1 added to `seed`) or a tuple of offsets
    c.data.name = "times_shift_rotate"
    c.data.image_size = 28
    c.model.g, c.model.d = "digit_g", "digit_d"
    c.model.g_kwargs = {"base_features": 16}
    c.model.d_kwargs = {}
    c.batch_size = 32
    c.num_steps = 800
    c.eval_every = 200
    c.evals = ("times",)
    c.num_eval_samples = 1_000
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
        c.seeds = 3
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
        c.seeds = 1
        c.model.g_kwargs = {"base_features": 4, "latent_dim": 8}
        c.model.d_kwargs = {"features": (4, 8), "hidden": 16}
        c.batch_size = 16
        c.num_steps = 4
        c.eval_every = 2
        c.num_eval_samples = 64
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
    for value, known, what in ((dataset, DATASETS, "dataset"), (loss, tuple(LOSSES), "loss")):
        if value not in known:
            close = difflib.get_close_matches(value, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown {what} {value!r}.{hint} Choose from {known}.")
    c = copy.deepcopy(config)
    c.unlock()
    c.data.name = dataset
    c.seed = int(config.seed) + seed
    c.loss, coding = LOSSES[loss]
    c.coding = ml_collections.ConfigDict(dict(zip("abc", coding, strict=True)))
    return c


def make_table(rows: list[dict], config: ml_collections.ConfigDict) -> tuple[list[dict], str]:
    """Per (dataset, loss) aggregates and their Markdown table.

    Final fd and KL are ``mean [low, high]`` with the 95 % Student-t interval over seeds; the
    collapse rate gets its 95 % Wilson interval (:mod:`lsgan_jax.stats`).
    """
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
        "| KL(hist‖unif) | mean class fractions 0..9 | collapse rate 95 % CI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in table:
        loss = "LSGAN (−1,1,0)" if e["loss"] == "lsgan" else "NS-GAN"
        hist = " ".join(f"{p:.2f}" for p in e["mean_class_hist"]) if e["mean_class_hist"] else "n/a"
        n_fin = len(e["final_fd"])
        ci = studies.rate_interval(e["collapsed"], n_fin) if n_fin else None
        lines.append(
            f"| {e['dataset']} | {loss} | {', '.join(f'{c}/10' for c in e['classes_covered'])} "
            f"| {e['collapsed']}/{e['runs']} | {e['diverged']}/{e['runs']} | "
            f"{studies.fmt_mean_ci(e['final_fd'], 1, bounds=NONNEGATIVE)} | "
            f"{studies.fmt_mean_ci(e['final_kl_uniform'], 2, bounds=NONNEGATIVE)} | {hist} | "
            f"{'n/a' if ci is None else f'[{ci[0]:.2f}, {ci[1]:.2f}]'} |"
        )
    return table, "\n".join(lines)


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains every (dataset, loss, seed) run in turn; writes the table, grids and summary."""
    for ds in config.datasets:
        run_config(config, ds, config.losses[0], 0)  # validates the names before training
    for loss in config.losses:
        run_config(config, config.datasets[0], loss, 0)
    evaluators.check_names(config.evals)
    enable_compilation_cache(config.compilation_cache)
    t0 = time.perf_counter()
    runs = [
        studies.SequentialRun(
            group=f"{ds}_{loss}",
            labels={"dataset": ds, "loss": loss},
            config=run_config(config, ds, loss, k),
            workdir=os.path.join(workdir, "runs", ds, loss, f"seed{k}"),
        )  # fmt: skip
        for ds in config.datasets
        for loss in config.losses
        for k in studies.seed_list(config)
    ]
    result = studies.run_sequential(runs, train=image_trainer.train)
    if result.preempted:
        return result.preempted
    rows = result.rows
    table, md = make_table(rows, config)
    grids, grid_paths, titles = {}, {}, {}
    for e in table:
        key = f"{e['dataset']}_{e['loss']}"
        grids[key] = viz.sample_rows(result.samples.get(key, []))
        if grids[key] is not None:
            grid_paths[key] = viz.save_image(
                grids[key], os.path.join(workdir, "grids", f"{key}.png")
            )
        covered = ", ".join(str(c) for c in e["classes_covered"])
        titles[key] = f"{e['dataset']} {e['loss']}: classes covered per seed {covered}"
    overview = viz.save_overview(grids, titles, os.path.join(workdir, "grids.png"))
    real = []
    data_dir = config.data.get("data_dir", "") or None
    for ds in config.datasets:
        x, y = load_real_images(ds, source_size=config.data.image_size, data_dir=data_dir)
        real.append(np.concatenate([x[y == k][:8] for k in range(10)]))
    real_path = viz.save_image(
        viz.image_grid(np.concatenate(real), ncol=16), os.path.join(workdir, "real.png")
    )
    rule = CollapseRule.from_config(config.collapse)
    summary = {
        "variant": config.variant,
        "collapse_rule": str(rule),
        "protocol": {
            ds: result.protocols.get(f"{ds}_{loss}", {}).get(config.evals[0])
            for ds in config.datasets
            for loss in config.losses
            if config.evals
        },
        "table": table,
        "table_markdown": md,
        "runs": rows,
        "grids": grid_paths,
        "overview": overview,
        "real": real_path,
        "seconds": round(time.perf_counter() - t0, 1),
        "config": config.to_dict(),
    }
    return studies.write_study(workdir, summary, md, summary["collapse_rule"])


cli.run(__name__, get_config, main, VARIANTS)
