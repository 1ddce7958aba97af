r"""The paper's 2-D Gaussian-mixture stability study: LSGAN vs the regular GAN.

    python -m experiments.mixture                      # default: ~2-3 min on 2 CPU cores
    python -m experiments.mixture --variant=official   # the official protocol: 35k steps, 10 seeds/loss
    python -m experiments.mixture --variant=pacgan_ring  # PacGAN protocol A (compare PacGAN Table 1)
    python -m experiments.mixture --variant=pacgan_grid
    python -m experiments.mixture --variant=smoke      # seconds; for tests
    python -m experiments.mixture --config.seeds=10 --config.coding.a=-1 --config.coding.c=0 \
        --workdir=workdirs/mixture/pearson_chi2   # another config: another workdir

All runs of a study (losses × seeds) train as one `jit(vmap(lax.scan(step)))` program with the
mixture sampled on device. Outputs in `--workdir` (default `workdirs/mixture/<variant>`):
`summary.json` (per run: loss, coding, seed, modes_covered, high_quality, reverse_kl; per loss:
mean ± s.e. and the fraction of runs that cover all modes), `metrics.jsonl`, TensorBoard events,
`mixture.png` (density panels at snapshot steps, one row per loss, the target at the end),
`mode_curves.png`, `config.json` and checkpoints. Rerunning the same command resumes; a
changed config (other than more steps or another checkpoint cadence) is refused with the fields
named, unless `--config.resume=False`, which moves the old run aside (never deletes it).

Protocols (sources and every remaining difference: docs/protocols.md):

* `official` — xudonmao/LSGAN `stability_comparison/mixture_gaussian/{ls,sig}.py`: the official
  data (`official_ring`: 8 modes on a ring of radius 1, std 0.01, weights 2/9 for (0, 1) and 1/9
  for the others, from `linspace(0, 2π, 9)`); G z(256)→128 tanh→128 tanh→2, D 2→128 tanh→128
  tanh→1, orthogonal init gain 1.4; D Adam(1e-4, β1 .5), G Adam(1e-3, β1 .5); batch 512;
  simultaneous updates; 35k steps; 10 repetitions per loss; LSGAN 0-1-1 coding vs the
  non-saturating GAN. We add PacGAN's metrics on 2,500 samples (the official code has none).
* `default` — the official protocol shortened to minutes on a CPU (3 seeds per loss, 8k steps),
  on `ring`: the same 8 centres with equal weights (the table says which data it used).
* `pacgan_ring` / `pacgan_grid` — PacGAN protocol A (fjxmlzn/PacGAN): fixed 100k-point dataset,
  z∈R² N(0,I), G 4×400 BN-ReLU, D 3 maxout layers (200×5), Adam(1e-4, β1 .8), batch 100,
  simultaneous updates, 400k steps (400 epochs), 10 trials.
* `welfert` — the 200-seed ring success-rate study of Welfert et al. Also a sweep:
  `python -m experiments.sweep welfert_ring`. As the paper, training uses fixed sets of 50k real
  points and 50k latents (`data.latent_pool_size`).
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np

from lsgan_jax import cli, studies, viz
from lsgan_jax.data import mixtures
from lsgan_jax.training import mixture_trainer

VARIANTS = ("default", "official", "pacgan_ring", "pacgan_grid", "welfert", "smoke")

#: Per variant: (what it runs, wall time on 2 CPU cores); shown by `--help` and
#: `python -m experiments`.
VARIANT_HELP = {
    "default": (
        "equal-weight 8-mode ring, official networks, 3 seeds x {LSGAN, NS-GAN}, 8k steps",
        "~4 min",
    ),
    "official": (
        "xudonmao/LSGAN's protocol and data (weights 2/9, 1/9 x 7): 35k steps x 10 seeds per loss",
        "~45 min",
    ),
    "pacgan_ring": (
        "PacGAN protocol A on the ring: 400k steps x 10 trials (compare PacGAN Table 1)",
        "GPU",
    ),
    "pacgan_grid": ("PacGAN protocol A on the 5x5 grid: 400k steps x 10 trials", "GPU"),
    "welfert": ("Welfert et al.'s ring success rates: 200 seeds x 3 losses", "GPU"),
    "smoke": ("tiny networks, 40 steps (tests)", "< 1 min"),
}


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    """Configs as code; `variant` picks a named protocol (see the module docstring)."""
    c = ml_collections.ConfigDict({"variant": variant})
    c.update(mixture_trainer.default_config())  # the official networks on the equal-weight ring
    if variant == "official":
        # The official data: ls.py's sample_mog(n_mixture=9) repeats the (0, 1) centre.
        c.data.name = "official_ring"
        c.data.label = "official_ring: ls.py's 9 centres, 8 modes, weights 2/9 (0,1) and 1/9 x 7"
        c.data.kwargs = {"radius": 1.0, "std": 0.01, "duplicate_endpoint": True}
        c.seeds = 10
        c.num_steps = 35_000
        c.eval_every = 1_000
        c.snapshot_steps = (0, 5_000, 15_000, 25_000, 35_000)
        c.checkpoint_every = 5_000
    elif variant in ("pacgan_ring", "pacgan_grid"):
        grid = variant == "pacgan_grid"
        c.data.name = "grid" if grid else "ring"
        c.data.label = (
            "grid: 25 equal-weight modes, spacing 2, std 0.05" if grid else c.data.label
        ) + ", fixed set of 100,000 points"
        c.data.kwargs = {"spacing": 2.0, "std": 0.05} if grid else {"radius": 1.0, "std": 0.01}
        c.data.dataset_size = 100_000
        c.model = ml_collections.ConfigDict(
            {"g": "pacgan_g", "g_kwargs": {}, "d": "pacgan_d", "d_kwargs": {}}
        )
        for opt in (c.optim_g, c.optim_d):
            opt.lr, opt.b1 = 1e-4, 0.8
        c.batch_size = 100
        c.seeds = 10
        c.num_steps = 400_000
        c.eval_every = 1_000
        c.snapshot_steps = (0, 10_000, 100_000, 200_000, 400_000)
        c.checkpoint_every = 10_000
    elif variant == "welfert":
        # Welfert et al. (docs/protocols.md): ring radius 1, std 0.01, 50k fixed training points,
        # G 4x400 ReLU / D 4x200 LeakyReLU(0.2), Adam(1e-4, betas (0.9, 0.99)), batch 128,
        # D then G, 400 epochs (391 steps each), 25,000 evaluation samples, 200 seeds.
        # Published success rates (8/8 modes): LSGAN 32.5 %, NS-GAN 22 %, saturating GAN 47 %.
        c.losses = ("lsgan", "nsgan", "minimax")
        c.seeds = 200
        c.data.name = "ring"
        c.data.label = "ring: 8 equal-weight modes, radius 1, std 0.01, fixed set of 50,000 points"
        c.data.kwargs = {"radius": 1.0, "std": 0.01}
        c.data.dataset_size = 50_000
        c.data.latent_pool_size = 50_000
        c.model = ml_collections.ConfigDict(
            {"g": "welfert_g", "g_kwargs": {}, "d": "welfert_d", "d_kwargs": {}}
        )
        for opt in (c.optim_g, c.optim_d):
            opt.lr, opt.b1, opt.b2 = 1e-4, 0.9, 0.99
        c.update_mode = "alternating"
        c.batch_size = 128
        c.num_steps = 156_400
        c.eval_every = 3_910
        c.snapshot_steps = (0, 39_100, 78_200, 117_300, 156_400)
        c.checkpoint_every = 19_550
        c.num_eval_samples = 25_000
    elif variant == "smoke":
        c.seeds = 2
        c.batch_size = 64
        c.num_steps = 40
        c.eval_every = 10
        c.snapshot_steps = (0, 20, 40)
        c.checkpoint_every = 20
        c.num_eval_samples = 256
        c.model.g_kwargs = {"latent_dim": 16, "hidden": 32}
        c.model.d_kwargs = {"hidden": 32}
    elif variant != "default":
        raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
    return c


def make_figures(
    workdir: str, config: ml_collections.ConfigDict, points: list[dict] | None = None
) -> list[str]:
    """Density panels (first seed of each group) and mode-coverage curves from the saved outputs."""
    runs = studies.runs_from_config(config, points)
    groups = list(dict.fromkeys(r.group for r in runs))
    mixture = mixtures.get_mixture(config.data.name, **config.data.kwargs)
    means = np.asarray(mixture.means)
    lim = float(np.abs(means).max() * 1.35 + 4 * float(np.max(mixture.stds)))
    truth = np.asarray(mixtures.sample(mixture, jax.random.PRNGKey(0), config.num_eval_samples))
    snaps = {s: d["samples"] for s, d in mixture_trainer.load_snapshots(workdir).items()}
    rows = []
    for group in groups:
        first = next(r for r in runs if r.group == group)
        rows.append((f"{group} (seed {first.seed})", first.index))
    paths = [
        viz.density_panels(
            snaps,
            rows,
            truth,
            os.path.join(workdir, "mixture.png"),
            lim=lim,
            means=means,
            title=f"{config.data.name}: density of G(z) during training",
        )
    ]
    ckpt_meta = _history(workdir)
    if ckpt_meta:
        steps = np.asarray([h["step"] for h in ckpt_meta])
        curves, bands = {}, {}
        for group in groups:
            sel = [r.index for r in runs if r.group == group]
            mc = np.asarray([[h["modes_covered"][i] for i in sel] for h in ckpt_meta])
            m = mc.mean(1)
            se = mc.std(1, ddof=1) / np.sqrt(len(sel)) if len(sel) > 1 else np.zeros_like(m)
            curves[group], bands[group] = m, (m - se, m + se)
        paths.append(
            viz.line_plot(
                steps,
                curves,
                os.path.join(workdir, "mode_curves.png"),
                xlabel="step",
                ylabel="modes covered (mean ± s.e.)",
                bands=bands,
            )
        )
    return paths


def _history(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "history.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return []


def main(config: ml_collections.ConfigDict, workdir: str, points: list[dict] | None = None) -> dict:
    """Trains the study (optionally a vectorized sweep over `points`), draws, prints the table."""
    summary = mixture_trainer.train(config, workdir, points=points)
    if "preempted_at" in summary:
        return summary
    paths = make_figures(workdir, config, points)
    num_modes = summary["protocol"]["num_modes"]
    print(studies.format_table(summary, num_modes))
    sps = summary.get("steps_per_s")
    if sps:
        print(
            f"{summary['num_runs']} runs vectorized: {sps:.1f} steps/s "
            f"({sps * summary['num_runs']:.0f} run-steps/s)"
        )
    print(f"Wrote {os.path.join(workdir, 'summary.json')} and {', '.join(paths)}")
    return summary


cli.run(__name__, get_config, main, VARIANTS)
