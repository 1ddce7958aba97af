r"""RESULTS.md (and README's measured table) from stored outputs: one command, checked by a test.

    python -m experiments.report                 # rewrite the tables in RESULTS.md and README.md
    python -m experiments.report --check         # exit 1 (and show a diff) if either is stale
    python -m experiments.report --store=mixture_default --from=workdirs/mixture/default \
        --command="python -m experiments.mixture" [--commit=<sha>]
    python -m experiments.report --measure=welfert   # FLOPs + a short timed run (accelerator plan)

Every generated table in RESULTS.md and README.md sits between two markers,

    <!-- report:NAME -->
    ...generated, do not edit...
    <!-- /report -->

and is produced by ``RENDERERS[NAME]`` from the files under ``results/``: a study's
``summary.json`` as the experiment wrote it (only small files are kept) and ``provenance.json``
(the git commit that produced it, the command, the date, the machine). Text outside the markers
is prose and is left alone; a number in it must come from a table.

Comparison tables (LSGAN vs the regular GAN) carry 95 % intervals (Wilson for rates, Student t
for means over seeds), two-sided p-values (Fisher's exact test on the all-modes and collapse
counts, a permutation test on modes covered), the seeds per loss that 80 % power would need at
the observed effect, and a verdict that claims a difference only when p < 0.05
(:mod:`lsgan_jax.stats`). Studies that need an accelerator are listed with their command, run
count, XLA FLOPs and the speed measured here (``results/accelerator/``).

Timing caveat: the stored runs were made on a 2-core machine shared with other jobs; their
steps/s figures are not quiet-machine measurements.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lsgan_jax import stats, studies

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "results"
RESULTS_MD = ROOT / "RESULTS.md"
README_MD = ROOT / "README.md"
#: The files whose marked blocks this command writes.
GENERATED = (RESULTS_MD, README_MD)
MACHINE = "2 CPU cores shared with other jobs (timings are not quiet-machine figures)"

_MARKER = re.compile(
    r"(<!-- report:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /report -->)", re.S
)

#: Losses as the tables print them.
LOSS_LABELS = {
    "lsgan": "LSGAN",
    "nsgan": "NS-GAN",
    "minimax": "saturating GAN",
    "hinge": "hinge",
    "wgan": "WGAN",
}


# ------------------------------------------------------------------------------------------
# Stored studies
# ------------------------------------------------------------------------------------------


def load_study(name: str, results_dir: Path = RESULTS_DIR) -> tuple[dict, dict]:
    """``(summary, provenance)`` of ``results/<name>/``.

    Raises:
        FileNotFoundError: naming the command that stores the study.
    """
    folder = results_dir / name
    if not (folder / "summary.json").exists():
        raise FileNotFoundError(
            f"{folder / 'summary.json'} is missing; run the study and store it with "
            f"`python -m experiments.report --store={name} --from=<workdir> --command=...`."
        )
    summary = json.loads((folder / "summary.json").read_text())
    prov_path = folder / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    return summary, prov


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def store(
    name: str,
    workdir: str,
    command: str,
    *,
    commit: str | None = None,
    note: str = "",
    results_dir: Path = RESULTS_DIR,
) -> Path:
    """Copies a study's small ``summary.json`` into ``results/<name>/`` with its provenance.

    Args:
        name: the study's folder name under ``results/``.
        workdir: the run's workdir (holding ``summary.json``).
        command: the exact command that produced it.
        commit: the git commit of the code that ran (default: HEAD, and ``dirty_at_store``
            records whether tracked files differed from it when storing).
        note: optional remark printed with the provenance (e.g. "resumed from step 5,000").
        results_dir: where the study folders live (``results/``).

    Returns:
        The folder written.
    """
    src = Path(workdir) / "summary.json"
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist: run `{command}` first.")
    if src.stat().st_size > 2_000_000:
        raise ValueError(f"{src} is larger than 2 MB; results/ keeps small summaries only.")
    dest = results_dir / name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest / "summary.json")
    prov = {
        "study": name,
        "command": command,
        "commit": commit or _git("rev-parse", "HEAD"),
        "stored_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": MACHINE,
    }
    if note:
        prov["note"] = note
    if commit is None:  # HEAD stands for the code only if nothing tracked was modified
        prov["dirty_at_store"] = bool(_git("status", "--porcelain", "--untracked-files=no"))
    (dest / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n")
    return dest


# ------------------------------------------------------------------------------------------
# Formatting helpers
# ------------------------------------------------------------------------------------------


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _seeds(n: float) -> str:
    return "∞ (no difference observed)" if math.isinf(n) else f"{int(n)}"


def _ci(lo: float, hi: float, fmt: str = ".2f", scale: float = 1.0) -> str:
    return f"[{format(lo * scale, fmt)}, {format(hi * scale, fmt)}]"


def _mean_ci(
    values: list[float],
    fmt: str = ".2f",
    scale: float = 1.0,
    bounds: tuple[float, float] | None = None,
) -> str:
    """Mean and 95 % t interval, the interval cut to the metric's possible range
    (`lsgan_jax.studies.mean_interval`)."""
    mean, ci = studies.mean_interval(values, bounds)
    if ci is None:
        return format(mean * scale, fmt)
    return f"{format(mean * scale, fmt)} {_ci(*ci, fmt, scale)}"


def _rate(k: int, n: int) -> str:
    lo, hi = stats.wilson_interval(k, n)
    return f"{k}/{n} {_ci(lo, hi)}"


def _provenance_line(prov: dict) -> str:
    if not prov:
        return "_Provenance: not recorded._"
    dirty = " (uncommitted changes present when stored)" if prov.get("dirty_at_store") else ""
    return (
        f"_Command: `{prov['command']}`; code: commit `{prov['commit'][:10]}`{dirty}; "
        f"stored {prov['stored_utc']} UTC; machine: {prov.get('machine', 'not recorded')}"
        + (f"; {prov['note']}" if prov.get("note") else "")
        + "._"
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


# ------------------------------------------------------------------------------------------
# Mixture studies
# ------------------------------------------------------------------------------------------

#: A run "collapses" when it covers at most this many modes (it generates around one mode, the
#: failure the LSGAN paper describes for the regular GAN on the mixture).
COLLAPSE_MAX_MODES = 1


def mixture_groups(summary: dict) -> dict[str, list[dict]]:
    """Per-run rows of a mixture summary grouped by ``group`` (loss + swept values)."""
    groups: dict[str, list[dict]] = {}
    for row in summary["runs"]:
        groups.setdefault(row["group"], []).append(row)
    return groups


def _group_label(group: str, rows: list[dict]) -> str:
    label = LOSS_LABELS.get(rows[0]["loss"], rows[0]["loss"])
    if "coding" in rows[0]:
        c = rows[0]["coding"]
        label += f" ({c['a']:g}, {c['b']:g}, {c['c']:g})"
    extra = group[len(rows[0]["loss"]) :]
    return label + extra


def mixture_comparison(a_rows: list[dict], b_rows: list[dict], num_modes: int) -> dict:
    """The statistics of one LSGAN-vs-GAN comparison (counts, tests, seeds needed)."""
    modes_a = [r["modes_covered"] for r in a_rows]
    modes_b = [r["modes_covered"] for r in b_rows]
    all_a = sum(int(m == num_modes) for m in modes_a)
    all_b = sum(int(m == num_modes) for m in modes_b)
    col_a = sum(int(m <= COLLAPSE_MAX_MODES) for m in modes_a)
    col_b = sum(int(m <= COLLAPSE_MAX_MODES) for m in modes_b)
    na, nb = len(modes_a), len(modes_b)
    out = {
        "all_modes": stats.compare_counts(all_a, na, all_b, nb),
        "collapse": stats.compare_counts(col_a, na, col_b, nb),
    }
    if na >= 2 and nb >= 2:
        out["modes"] = stats.compare_values(modes_a, modes_b)
    return out


def render_mixture(summary: dict, prov: dict) -> str:
    """Per-loss table with intervals, then the LSGAN-vs-GAN tests."""
    proto = summary["protocol"]
    k = int(proto["num_modes"])
    data = proto["data"]
    label = data.get("label") or f"{data['name']} {data.get('kwargs', {})}"
    groups = mixture_groups(summary)
    n_seeds = sorted({len(rows) for rows in groups.values()})
    lines = [
        f"Data: **{label}**. {proto['steps']:,} steps, batch {proto['batch_size']}, "
        f"{proto['update']} updates, {'/'.join(str(n) for n in n_seeds)} seeds per loss; "
        f"metrics on {proto['num_eval_samples']:,} samples of the final generator (high quality "
        f"= within {proto['hq_threshold_std']:g} std of the nearest mode; collapse = at most "
        f"{COLLAPSE_MAX_MODES} mode covered).",
        "",
    ]
    header = [
        "loss",
        "runs",
        f"modes covered (max {k}) [95 % t CI]",
        "high quality % [95 % t CI]",
        "reverse KL (HQ)",
        f"runs with {k}/{k} modes [95 % Wilson]",
        "collapsed runs [95 % Wilson]",
    ]
    rows = []
    for group, g_rows in groups.items():
        modes = [r["modes_covered"] for r in g_rows]
        rows.append(
            [
                _group_label(group, g_rows),
                str(len(g_rows)),
                _mean_ci(modes, bounds=(0.0, float(k))),
                _mean_ci([r["high_quality"] for r in g_rows], ".1f", 100.0, (0.0, 1.0)),
                f"{np.mean([r['reverse_kl'] for r in g_rows]):.3f}",
                _rate(sum(int(m == k) for m in modes), len(modes)),
                _rate(sum(int(m <= COLLAPSE_MAX_MODES) for m in modes), len(modes)),
            ]
        )
    lines += _table(header, rows)
    lines.append("")
    lines.append(
        "Per seed (modes covered): "
        + "; ".join(
            f"{_group_label(g, r)} {', '.join(str(int(x['modes_covered'])) for x in r)}"
            for g, r in groups.items()
        )
        + "."
    )
    comparisons = _lsgan_vs_gan_pairs(groups)
    if comparisons:
        lines += ["", "LSGAN vs the regular GAN (two-sided tests; seeds per loss for 80 % power "
                  "at the observed effect, α = 0.05):", ""]  # fmt: skip
        header = ["comparison", "quantity", "LSGAN", "GAN", "p", "verdict", "seeds needed"]
        rows = []
        for (ga, ra), (gb, rb) in comparisons:
            comp = mixture_comparison(ra, rb, k)
            name = f"{_group_label(ga, ra)} vs {_group_label(gb, rb)}"
            for key, what, test in (
                ("all_modes", f"runs with {k}/{k} modes", "Fisher"),
                ("collapse", "collapsed runs", "Fisher"),
            ):
                c = comp[key]
                rows.append(
                    [
                        name,
                        f"{what} ({test})",
                        f"{c['rate_a']:.2f}",
                        f"{c['rate_b']:.2f}",
                        _p(c["p_fisher"]),
                        stats.verdict(c["p_fisher"]),
                        _seeds(c["seeds_needed"]),
                    ]
                )
            if "modes" in comp:
                c = comp["modes"]
                rows.append(
                    [
                        name,
                        "mean modes covered (permutation)",
                        f"{c['mean_a']:.2f}",
                        f"{c['mean_b']:.2f}",
                        _p(c["p_permutation"]),
                        stats.verdict(c["p_permutation"]),
                        _seeds(c["seeds_needed"]),
                    ]
                )
        lines += _table(header, rows)
    speed = summary.get("run_steps_per_s")
    if speed:
        lines += [
            "",
            f"Speed in this run: {summary['num_runs']} runs vectorized, {speed:,.0f} run-steps/s "
            "(shared machine, not a quiet-machine figure).",
        ]
    lines += ["", _provenance_line(prov)]
    return "\n".join(lines) + "\n"


def _lsgan_vs_gan_pairs(groups: dict[str, list[dict]]):
    """(LSGAN group, GAN group) pairs with the same swept values (suffix after the loss)."""
    pairs = []
    for ga, ra in groups.items():
        if ra[0]["loss"] != "lsgan":
            continue
        suffix = ga[len("lsgan") :]
        for gan in ("nsgan", "minimax"):
            gb = gan + suffix
            if gb in groups:
                pairs.append(((ga, ra), (gb, groups[gb])))
    return pairs


# ------------------------------------------------------------------------------------------
# Gradients and optimal D
# ------------------------------------------------------------------------------------------


def render_gradients(summary: dict, prov: dict) -> str:
    """Part 1 (|dL_G/dx| at logit t per D) and part 2 (G's gradient norm during training)."""
    p1 = summary["part1"]
    tf = p1["t_far"]
    lines = []
    for d_name, title in (("linear", "analytic linear D"), ("mlp", "trained MLP D")):
        if d_name not in p1:
            continue
        lines += [f"Part 1, {title}: \\|∂L_G/∂x\\| at logit t (t > 0: the real side).", ""]
        rows = []
        for loss, v in p1[d_name].items():
            ratio = v.get("ratio_far_real_to_boundary")
            rows.append(
                [
                    loss,
                    f"{v['far_fake']:.3g}",
                    f"{v['boundary']:.3g}",
                    f"{v['far_real']:.3g}",
                    "n/a" if ratio is None else f"{ratio:.3g}",
                ]
            )
        lines += _table(
            ["loss", f"t = {-tf:+g}", "t = 0", f"t = {tf:+g}", "far real / boundary"], rows
        )
        lines.append("")
    p2 = summary.get("part2")
    if p2 and "per_loss" in p2:
        pct = round(100 * p2["last_fraction"])
        lines += [
            f"Part 2: generator gradient norm while training on `{p2['data']}` "
            f"({p2['seeds']} seeds × {p2['steps']:,} steps; mean over seeds and logged steps).",
            "",
        ]
        rows = [
            [
                loss,
                f"{v['g_grad_norm_last']:.4g}",
                f"{v['g_grad_norm_all']:.4g}",
                "n/a" if v.get("modes_covered") is None else f"{v['modes_covered']:.2f}",
            ]
            for loss, v in p2["per_loss"].items()
        ]
        lines += _table(["loss", f"last {pct} % of steps", "all steps", "modes covered"], rows)
        lines.append("")
    lines.append(_provenance_line(prov))
    return "\n".join(lines) + "\n"


def render_optimal_discriminator(summary: dict, prov: dict) -> str:
    """Learned D vs D* per coding, and the χ² identity check."""
    lines = [
        f"D trained alone for {summary['steps']:,} steps (batch {summary['batch_size']:,}); "
        f"compared with D* where p_d + p_g > {summary['support_threshold']:g}·max "
        f"({100 * summary['region_mass_fraction']:.1f} % of the mass).",
        "",
    ]
    rows = []
    for name, r in summary["codings"].items():
        coding = r.get("coding", {})
        abc = f" ({coding['a']:g}, {coding['b']:g}, {coding['c']:g})" if coding else ""
        rows.append(
            [
                f"{name}{abc}",
                f"{r['max_abs_err']:.3g}",
                f"{r['max_abs_err_rel']:.3g}",
                f"{r['mean_abs_err']:.3g}",
                f"{r['criterion_C']:.4g}",
                f"{r['two_C']:.4g}",
                f"{r['pearson_chi2']:.4g}",
                f"{r['chi2_identity_gap']:.2g}",
            ]
        )
    lines += _table(
        [
            "coding",
            "max \\|D − D*\\|",
            "max/(b − a)",
            "mean \\|D − D*\\|",
            "C(G)",
            "2C(G)",
            "χ²(p_d+p_g ‖ 2p_g)",
            "2C(G) − χ²",
        ],
        rows,
    )
    lines += ["", _provenance_line(prov)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# Accelerator plan
# ------------------------------------------------------------------------------------------

#: Studies too large for this machine: how to run them. ``probe`` names the stored short run
#: (results/accelerator/<probe>/) whose speed and XLA FLOPs are reported.
ACCELERATOR_STUDIES: dict[str, dict] = {
    "official_100": {
        "title": "mixture, official protocol, 100 seeds per loss",
        "command": "python -m experiments.mixture --variant=official --config.seeds=100",
        "runs": 200,
        "steps": 35_000,
        "probe": "official",
    },
    "welfert": {
        "title": "mixture, Welfert et al. ring, 200 seeds × 3 losses",
        "command": "python -m experiments.mixture --variant=welfert",
        "runs": 600,
        "steps": 156_400,
        "probe": "welfert",
    },
    "pacgan_ring": {
        "title": "mixture, PacGAN protocol A (ring), 10 trials × 2 losses",
        "command": "python -m experiments.mixture --variant=pacgan_ring",
        "runs": 20,
        "steps": 400_000,
        "probe": "pacgan_ring",
    },
    "pacgan_grid": {
        "title": "mixture, PacGAN protocol A (grid), 10 trials × 2 losses",
        "command": "python -m experiments.mixture --variant=pacgan_grid",
        "runs": 20,
        "steps": 400_000,
        "probe": "pacgan_grid",
    },
    "stability_paper": {
        "title": "stability, ICCV settings on LSUN bedroom 64×64 (needs the dataset)",
        "command": "python -m experiments.stability --variant=paper",
        "runs": 4,
        "steps": 100_000,
        "probe": "stability_paper",
    },
}


def render_accelerator(results_dir: Path = RESULTS_DIR) -> str:
    """Command, runs, FLOPs and the speed measured here, per accelerator study."""
    rows = []
    notes = []
    for s in ACCELERATOR_STUDIES.values():
        probe_dir = results_dir / "accelerator" / s["probe"]
        probe = json.loads((probe_dir / "probe.json").read_text()) if (
            probe_dir / "probe.json"
        ).exists() else None  # fmt: skip
        run_steps = s["runs"] * s["steps"]
        if probe is None:
            flops = speed = hours = "not measured"
        else:
            fl = probe.get("flops_per_run_step")
            flops = "n/a" if fl is None else f"{fl:.3g} / {fl * run_steps:.2g}"
            rs = probe.get("run_steps_per_s")
            speed = "n/a" if not rs else f"{rs:.3g} ({probe['probe_runs']} run(s))"
            hours = "n/a" if not rs else f"{run_steps / rs / 3600:,.0f}"
            notes.append(f"`{s['probe']}`: {probe['how']} (commit `{probe['commit'][:10]}`)")
        rows.append(
            [
                s["title"],
                f"`{s['command']}`",
                f"{s['runs']}",
                f"{s['steps']:,}",
                flops,
                speed,
                hours,
            ]
        )
    lines = _table(
        [
            "study",
            "command",
            "runs",
            "steps per run",
            "FLOPs per run-step / total (XLA)",
            "run-steps/s here",
            "CPU hours here",
        ],
        rows,
    )
    lines += [
        "",
        "FLOPs: XLA's cost analysis of one compiled train step of one run (CPU backend); total = "
        "runs × steps × that. Speed: a short timed run on this shared 2-core machine, with the "
        "number of runs vectorized in parentheses (an accelerator vectorizes all runs); CPU "
        "hours = runs × steps / that rate.",
    ]
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# RESULTS.md
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# Digits (DCGAN on scikit-learn's digits): the default D and the spectrally normalized D
# ------------------------------------------------------------------------------------------


def _stored_variants(variants: dict[str, str], results_dir: Path):
    """(variant, summary, provenance) for each of ``variants`` (variant -> results/ folder)
    stored under results/."""
    for variant, study in variants.items():
        if (results_dir / study / "summary.json").exists():
            yield (variant, *load_study(study, results_dir))


#: Variant -> results/ folder of its stored run.
DIGITS_STUDIES = {"default": "digits_default", "sn": "digits_sn"}


def render_digits(results_dir: Path = RESULTS_DIR) -> str:
    """One row per stored digits run (`--variant=default` / `--variant=sn`): final classifier
    metrics. One seed each: the rows describe two runs and support no claim that one D is better."""
    rows, provs = [], []
    for variant, s, prov in _stored_variants(DIGITS_STUDIES, results_dir):
        f = s["final"]
        dkw = s["config"]["model"]["d_kwargs"]
        norms = [n for n, on in (("BatchNorm", dkw.get("d_batchnorm", True)),
                                 ("spectral norm", dkw.get("spectral_norm", False))) if on]  # fmt: skip
        rows.append([
            f"`{variant}`",
            " + ".join(norms) or "none",
            f"{s['steps']:,}",
            f"{f['digits/fd']:.1f}",
            f"{f['digits/class_coverage']:.2f}",
            f"{f['digits/confidence']:.2f}",
            "yes" if f["digits/collapsed"] else "no",
            f"{s['steps_per_s']:.1f}" if s.get("steps_per_s") else "—",
        ])  # fmt: skip
        provs.append(f"- `{variant}`: " + _provenance_line(prov))
    if not rows:
        return "_No stored digits runs: `python -m experiments.digits --variant=sn`._"
    header = ["variant", "normalization in D", "steps", "digits FD ↓", "class coverage", "confidence",
              "collapsed", "steps/s"]  # fmt: skip
    return "\n".join(
        [*_table(header, rows), "", "One seed per variant: a description of two runs, not a "
         "comparison (no interval or test is possible from one run each).", "", *provs, ""]
    )  # fmt: skip


# ------------------------------------------------------------------------------------------
# Stability on digits (no-BatchNorm G / G+D, the ICCV settings on a CPU budget)
# ------------------------------------------------------------------------------------------

#: Variant -> results/ folder of its stored study.
STABILITY_STUDIES = {"default": "stability_default", "sn": "stability_sn"}


def _stability_pairs(table: list[dict]) -> list[tuple[dict, dict]]:
    """(LSGAN setting, NS-GAN setting) pairs with the same D normalization and optimizer."""
    pairs = []
    for a in table:
        if not a["loss"].startswith("lsgan") or a["gp"]:
            continue
        for b in table:
            same = (b["batchnorm"], b["optimizer"]) == (a["batchnorm"], a["optimizer"])
            if (
                b["loss"] == "nsgan"
                and same
                and a["setting"].split("_")[:2] == b["setting"].split("_")[:2]
            ):
                pairs.append((a, b))
    return pairs


def render_stability(results_dir: Path = RESULTS_DIR) -> str:
    """The stored per-setting table of each stability variant, then LSGAN vs NS-GAN under the
    same normalization and optimizer: Fisher's exact test on the success counts."""
    out = []
    for variant, s, prov in _stored_variants(STABILITY_STUDIES, results_dir):
        n_seeds = max(e["runs"] for e in s["table"])
        out += [f"**`--variant={variant}`** ({n_seeds} seeds per setting). "
                f"Success rule: {s['criterion']}.", "", s["table_markdown"], ""]  # fmt: skip
        rows = []
        for a, b in _stability_pairs(s["table"]):
            if a["successes"] is None or b["successes"] is None:
                continue
            c = stats.compare_counts(a["successes"], a["runs"], b["successes"], b["runs"])
            rows.append([f"{a['setting']} vs {b['setting']}", f"{c['rate_a']:.2f}",
                         f"{c['rate_b']:.2f}", _p(c["p_fisher"]), stats.verdict(c["p_fisher"]),
                         _seeds(c["seeds_needed"])])  # fmt: skip
        if rows:
            out += ["LSGAN vs NS-GAN, success rate (Fisher's exact test, two-sided):", ""]
            out += _table(["comparison", "LSGAN", "NS-GAN", "p", "verdict", "seeds needed"], rows)
            out += [""]
        out += [_provenance_line(prov), ""]
    if not out:
        return "_No stored stability study: `python -m experiments.stability`._"
    return "\n".join(out)


# ------------------------------------------------------------------------------------------
# Install weight (README): fresh venvs measured by `python -m benchmarks.venv_size`
# ------------------------------------------------------------------------------------------


def render_install(results_dir: Path = RESULTS_DIR) -> str:
    """The README's venv sizes: one row per measured install, then the core import check."""
    path = results_dir / "install" / "venv_sizes.json"
    if not path.exists():
        return "_Not measured: `python -m benchmarks.venv_size`._"
    data = json.loads(path.read_text())
    rows = []
    for r in data["rows"]:
        largest = ", ".join(f"{k} {v}" for k, v in list(r["largest_mib"].items())[:4])
        rows.append(
            [f"`{r['command']}`", f"{r['venv_mib']:,} MiB", str(r["distributions"]), largest]
        )
    lines = _table(["install", "venv (`du -sm`)", "distributions", "largest (MiB)"], rows)
    checks = [r["core_check"] for r in data["rows"] if r.get("core_check")]
    if checks:
        what = checks[0].removeprefix("core check ok: ")
        lines += [
            "",
            "The core venv imports `lsgan_jax.losses`, `theory`, `models` and `training` without any "
            f"extra and runs {what} (a fresh process, compilation included).",
        ]
    lines += [
        "",
        f"_Command: `{data['command']}`; Python {data['python']}, {data['platform']}, JAX "
        f"{data['rows'][0]['jax']}; code: commit `{data['commit'][:10]}`; stored "
        f"{data['stored_utc']} UTC._",
    ]
    return "\n".join(lines) + "\n"


def _study(name: str, fn: Callable[[dict, dict], str]) -> Callable[[Path], str]:
    return lambda results_dir: fn(*load_study(name, results_dir))


#: Marker name -> renderer (reads results/ only).
RENDERERS: dict[str, Callable[[Path], str]] = {
    "mixture_default": _study("mixture_default", render_mixture),
    "mixture_official": _study("mixture_official", render_mixture),
    "gradients": _study("gradients", render_gradients),
    "optimal_discriminator": _study("optimal_discriminator", render_optimal_discriminator),
    "accelerator": render_accelerator,
    "digits": render_digits,
    "stability": render_stability,
    "install": render_install,
}


def regenerate(text: str, results_dir: Path = RESULTS_DIR) -> str:
    """Rewrites every ``<!-- report:NAME -->`` block of ``text`` from ``results_dir``.

    Raises:
        ValueError: on an unknown marker name (with the valid names).
    """

    def sub(match: re.Match) -> str:
        name = match.group("name")
        if name not in RENDERERS:
            close = difflib.get_close_matches(name, list(RENDERERS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown report marker {name!r}.{hint} Valid: {sorted(RENDERERS)}.")
        return match.group(1) + RENDERERS[name](results_dir) + match.group(4)

    return _MARKER.sub(sub, text)


def check(path: Path = RESULTS_MD, results_dir: Path = RESULTS_DIR) -> list[str]:
    """Unified diff between ``path`` and its regeneration (empty when up to date)."""
    text = path.read_text()
    new = regenerate(text, results_dir)
    return list(
        difflib.unified_diff(
            text.splitlines(), new.splitlines(), path.name, "regenerated", lineterm=""
        )
    )


# ------------------------------------------------------------------------------------------
# Measuring the accelerator studies here
# ------------------------------------------------------------------------------------------


def _builders():
    """(build_mixture(config), build_image(config)): the trainers' own builders."""
    from lsgan_jax.training import build as b  # noqa: PLC0415

    return b.build_mixture, lambda cfg: b.build_image(cfg, axis_name=None)


def measure(name: str, *, probe_steps: int = 200, probe_seeds: int = 2) -> Path:
    """XLA FLOPs of one train step and a short timed run of an accelerator study's probe."""
    import tempfile  # noqa: PLC0415

    import jax  # noqa: PLC0415

    from lsgan_jax.training import mixture_trainer  # noqa: PLC0415
    from lsgan_jax.training.step import make_train_step  # noqa: PLC0415

    study = next((s for s in ACCELERATOR_STUDIES.values() if s["probe"] == name), None)
    if study is None:
        valid = sorted(s["probe"] for s in ACCELERATOR_STUDIES.values())
        raise ValueError(f"Unknown probe {name!r}; choose one of {valid}.")
    out = RESULTS_DIR / "accelerator" / name
    out.mkdir(parents=True, exist_ok=True)
    if name == "stability_paper":
        probe = _measure_image(probe_steps=min(probe_steps, 5))
    else:
        from experiments import mixture  # noqa: PLC0415

        cfg = mixture.get_config(name)
        cfg.seeds = 1
        _, spec, states, hps, _, _ = _builders()[0](cfg)
        one = jax.tree.map(lambda x: x[0], (states, hps))
        lowered = jax.jit(make_train_step(spec)).lower(one[0], None, one[1])
        flops = lowered.compile().cost_analysis().get("flops")
        cfg = mixture.get_config(name)
        cfg.seeds = probe_seeds
        cfg.num_steps = probe_steps
        cfg.eval_every = probe_steps // 2  # the trainer's speed excludes the first chunk
        cfg.snapshot_steps = (0, probe_steps)
        cfg.checkpoint_every = probe_steps
        cfg.num_eval_samples = min(cfg.num_eval_samples, 2_500)
        with tempfile.TemporaryDirectory() as tmp:
            summary = mixture_trainer.train(cfg, tmp)
        probe = {
            "flops_per_run_step": flops,
            "run_steps_per_s": summary.get("run_steps_per_s"),
            "probe_runs": summary["num_runs"],
            "how": (
                f"`mixture.get_config('{name}')` with seeds={probe_seeds}, "
                f"num_steps={probe_steps}; speed from its summary's run_steps_per_s "
                "(second half of the run, after compilation)"
            ),
        }
    probe["commit"] = _git("rev-parse", "HEAD")
    probe["machine"] = MACHINE
    (out / "probe.json").write_text(json.dumps(probe, indent=2) + "\n")
    return out


def _measure_image(*, probe_steps: int) -> dict:
    """FLOPs and speed of one `stability --variant=paper` run's step on zero images."""
    import time  # noqa: PLC0415

    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from experiments import stability  # noqa: PLC0415
    from lsgan_jax.training.step import make_train_step  # noqa: PLC0415

    config = stability.get_config("paper")
    run = stability.run_config(config, config.settings[0], 0)
    spec, state, hp = _builders()[1](run)
    size, ch = run.data.image_size, run.model.g_kwargs["channels"]
    batch = {"image": jnp.zeros((run.batch_size, size, size, ch), jnp.float32)}
    step = jax.jit(make_train_step(spec))
    compiled = step.lower(state, batch, hp).compile()
    flops = compiled.cost_analysis().get("flops")
    state, m = step(state, batch, hp)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(probe_steps):
        state, m = step(state, batch, hp)
    jax.block_until_ready(m)
    return {
        "flops_per_run_step": flops,
        "run_steps_per_s": probe_steps / (time.perf_counter() - t0),
        "probe_runs": 1,
        "how": (
            f"setting {config.settings[0]} of `stability.get_config('paper')`, "
            f"{probe_steps} steps on zero images after compilation"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if RESULTS.md is stale")
    parser.add_argument("--store", metavar="STUDY", help="copy a run's summary into results/")
    parser.add_argument("--from", dest="workdir", help="workdir of the run to --store")
    parser.add_argument("--command", help="the command that produced the run to --store")
    parser.add_argument("--commit", help="git commit of the code that ran (default HEAD)")
    parser.add_argument("--note", default="", help="remark stored with the provenance")
    parser.add_argument("--measure", metavar="PROBE", help="FLOPs + speed of an accelerator study")
    args = parser.parse_args(argv)
    if args.store:
        if not (args.workdir and args.command):
            parser.error("--store needs --from=<workdir> and --command='<the command>'")
        print(
            f"Stored {store(args.store, args.workdir, args.command, commit=args.commit, note=args.note)}"
        )
        return 0
    if args.measure:
        print(f"Wrote {measure(args.measure) / 'probe.json'}")
        return 0
    if args.check:
        diff = [line for path in GENERATED for line in check(path)]
        if diff:
            print("\n".join(diff))
            print("Stale tables: run `python -m experiments.report`.", file=sys.stderr)
            return 1
        print("RESULTS.md and README.md are up to date.")
        return 0
    for path in GENERATED:
        path.write_text(regenerate(path.read_text()))
        print(f"Rewrote the tables of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
