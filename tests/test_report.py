"""experiments.report: RESULTS.md is exactly what the stored summaries generate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from experiments import report


@pytest.mark.parametrize("path", report.GENERATED, ids=lambda p: p.name)
def test_generated_files_equal_their_regeneration_from_stored_outputs(path):
    diff = report.check(path)
    assert not diff, f"{path.name} is stale; run `python -m experiments.report`:\n" + "\n".join(
        diff[:60]
    )


def test_every_marker_has_a_renderer_and_stored_inputs():
    names = [
        m.group("name")
        for path in report.GENERATED
        for m in report._MARKER.finditer(path.read_text())
    ]
    assert names and set(names) <= set(report.RENDERERS)
    assert {"install", "digits", "stability", "mixture_default"} <= set(names)
    for name in names:
        if name in ("accelerator", "digits", "stability", "install"):  # several stored folders
            text = report.RENDERERS[name](report.RESULTS_DIR)
            assert "No stored" not in text and "Not measured" not in text, name
        else:
            summary, prov = report.load_study(name)
            assert prov["commit"] and prov["command"].startswith("python -m experiments.")
            size = (report.RESULTS_DIR / name / "summary.json").stat().st_size
            assert size < 2_000_000


def _mixture_summary(modes_lsgan, modes_gan, k=8):
    runs = []
    for loss, modes in (("lsgan", modes_lsgan), ("nsgan", modes_gan)):
        for seed, m in enumerate(modes):
            row = {"run": f"{loss}/seed{seed}", "group": loss, "loss": loss, "seed": seed,
                   "modes_covered": float(m), "high_quality": 0.01 * (seed + 1),
                   "reverse_kl": 0.1 * seed}  # fmt: skip
            if loss == "lsgan":
                row["coding"] = {"a": 0.0, "b": 1.0, "c": 1.0}
            runs.append(row)
    protocol = {"data": {"name": "ring", "label": "ring: 8 equal-weight modes"},
                "num_modes": k, "num_eval_samples": 2500, "hq_threshold_std": 3.0,
                "steps": 100, "batch_size": 64, "update": "simultaneous"}  # fmt: skip
    return {"runs": runs, "protocol": protocol, "num_runs": len(runs), "run_steps_per_s": 10.0}


def _write_study(root: Path, name: str, summary: dict) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "summary.json").write_text(json.dumps(summary))
    (root / name / "provenance.json").write_text(json.dumps(
        {"command": "python -m experiments.mixture", "commit": "0123456789abcdef",
         "stored_utc": "2026-12-01 12:00", "machine": "test"}))  # fmt: skip


def test_mixture_block_has_intervals_tests_and_seeds_needed(tmp_path):
    lsgan, gan = [8, 8, 7, 8, 8, 6], [1, 8, 0, 1, 8, 1]
    _write_study(tmp_path, "mixture_default", _mixture_summary(lsgan, gan))
    text = "intro\n<!-- report:mixture_default -->\nold table\n<!-- /report -->\nprose 1.23\n"
    out = report.regenerate(text, tmp_path)
    assert out.startswith("intro\n<!-- report:mixture_default -->\n")
    assert out.endswith("<!-- /report -->\nprose 1.23\n") and "old table" not in out
    assert "ring: 8 equal-weight modes" in out and "`0123456789`" in out
    # all-modes 4/6 vs 2/6, collapse 0/6 vs 4/6: Fisher's p from scipy
    p_all = sps.fisher_exact([[4, 2], [2, 4]]).pvalue
    p_col = sps.fisher_exact([[0, 6], [4, 2]]).pvalue
    assert f"| {p_all:.3f} | no detectable difference |" in out
    assert f"| {p_col:.3f} |" in out
    lo, hi = sps.binomtest(4, 6).proportion_ci(method="wilson")
    assert f"4/6 [{lo:.2f}, {hi:.2f}]" in out
    m = np.asarray(lsgan, float)
    t_lo, t_hi = sps.t.interval(0.95, 5, loc=m.mean(), scale=sps.sem(m))
    assert f"{m.mean():.2f} [{t_lo:.2f}, {min(t_hi, 8.0):.2f}]" in out  # clipped to <= 8 modes
    assert t_hi > 8.0
    assert report.regenerate(out, tmp_path) == out  # idempotent


def test_comparison_statistics_match_scipy():
    rows = _mixture_summary([8, 8, 8, 2, 8], [1, 1, 8, 0, 1])["runs"]
    a = [r for r in rows if r["loss"] == "lsgan"]
    b = [r for r in rows if r["loss"] == "nsgan"]
    comp = report.mixture_comparison(a, b, 8)
    assert comp["all_modes"]["p_fisher"] == pytest.approx(sps.fisher_exact([[4, 1], [1, 4]]).pvalue)
    assert comp["collapse"]["rate_b"] == pytest.approx(0.8)  # <= 1 mode: 1, 1, 0, 1
    ref = sps.permutation_test(
        (np.array([8.0, 8, 8, 2, 8]), np.array([1.0, 1, 8, 0, 1])),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        permutation_type="independent", vectorized=True, n_resamples=np.inf,
    ).pvalue  # fmt: skip
    assert comp["modes"]["p_permutation"] == pytest.approx(ref)
    assert comp["modes"]["seeds_needed"] >= 2 and not math.isinf(comp["modes"]["seeds_needed"])


def test_check_detects_a_stale_table_and_unknown_markers(tmp_path, monkeypatch):
    _write_study(tmp_path, "mixture_default", _mixture_summary([8, 7, 8], [8, 1, 0]))
    good = report.regenerate("<!-- report:mixture_default -->\n<!-- /report -->\n", tmp_path)
    md = tmp_path / "RESULTS.md"
    md.write_text(good)
    assert report.check(md, tmp_path) == []
    md.write_text(good.replace("| 3 |", "| 4 |", 1))
    assert any(line.startswith("-") for line in report.check(md, tmp_path))
    with pytest.raises(ValueError, match="Did you mean 'mixture_default'"):
        report.regenerate("<!-- report:mixture_defualt -->\n<!-- /report -->\n", tmp_path)
    with pytest.raises(FileNotFoundError, match="--store=gradients"):
        report.regenerate("<!-- report:gradients -->\n<!-- /report -->\n", tmp_path)


def test_store_copies_the_summary_with_provenance(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "summary.json").write_text(json.dumps(_mixture_summary([8, 8], [1, 8])))
    dest = report.store("mix", str(work), "python -m experiments.mixture --variant=smoke",
                        commit="abc123", results_dir=tmp_path / "results")  # fmt: skip
    summary, prov = report.load_study("mix", tmp_path / "results")
    assert summary == json.loads((work / "summary.json").read_text())
    assert prov["commit"] == "abc123" and prov["command"].endswith("--variant=smoke")
    assert dest == tmp_path / "results" / "mix"
    with pytest.raises(FileNotFoundError, match="run `python -m experiments.x` first"):
        report.store("y", str(tmp_path / "nowhere"), "python -m experiments.x")


def test_accelerator_block_lists_commands_and_missing_measurements(tmp_path):
    out = report.render_accelerator(tmp_path)
    for s in report.ACCELERATOR_STUDIES.values():
        assert f"`{s['command']}`" in out
    assert "not measured" in out
    probe = tmp_path / "accelerator" / "welfert"
    probe.mkdir(parents=True)
    (probe / "probe.json").write_text(json.dumps(
        {"flops_per_run_step": 2.0e6, "run_steps_per_s": 1000.0, "probe_runs": 6,
         "how": "test", "commit": "feedbeef00"}))  # fmt: skip
    out = report.render_accelerator(tmp_path)
    runs_steps = 600 * 156_400
    assert f"{2.0e6:.3g} / {2.0e6 * runs_steps:.2g}" in out
    assert f"| {runs_steps / 1000.0 / 3600:,.0f} |" in out
