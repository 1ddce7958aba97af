"""Smoke test of the benchmarks (`python -m benchmarks.run`): tiny sizes, one repeat, no timings.

Checks that two cases run end to end (ours and, when torch is installed, the PyTorch reference),
that every row serializes to one JSON line with the documented keys and positive rates, and that
the table prints. Speed is never asserted here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:  # `benchmarks/` is not an installed package; plain `pytest` needs this
    sys.path.insert(0, ROOT)

from benchmarks import flops  # noqa: E402
from benchmarks import run as bench  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None
REQUIRED = ("name", "unit", "ours_per_s", "reference_per_s", "ratio", "repeats", "config")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    ctx = bench.make_context("tiny", repeats=1, target_s=0.0, verbose=False)
    lines: list[str] = []
    bench.run_cases(
        ctx, ["mixture_official", "dcgan28_digits"], emit=lambda r: lines.append(json.dumps(r))
    )
    return [json.loads(line) for line in lines]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_rows_have_keys_and_positive_rates(rows):
    names = [r["name"] for r in rows]
    assert names == [
        "matmul_peak[float32]",
        "mixture_official[scan]",
        "mixture_official[no_scan]",
        "mixture_official[scan,latent_pool]",
        "dcgan28_digits[subpixel]",
    ]
    for row in rows:
        for key in REQUIRED:
            assert key in row, (row["name"], key)
        assert row["repeats"] == 1 or row["name"].startswith("matmul")
        assert _positive(row["ours_per_s"]), row
        if HAS_TORCH:
            assert _positive(row["reference_per_s"]), row
            assert row["ratio"] == pytest.approx(row["ours_per_s"] / row["reference_per_s"])
    peak = rows[0]
    assert _positive(peak["peak_gflops"]) and "env" in peak
    for row in rows[1:]:
        assert _positive(row["gflop_per_unit"]) and _positive(row["gflops_ours"]), row
        assert row["peak_gflops"] == peak["peak_gflops"]
    scan = rows[1]
    assert scan["target"] == 2.5 and isinstance(scan["target_met"], bool)
    assert _positive(scan["scan_speedup_vs_no_scan"])
    assert "pool" in rows[3]["config"]["latents"]
    assert _positive(rows[4]["images_per_s_ours"])


def test_table_prints_every_row(rows):
    table = bench.format_table(rows)
    for row in rows:
        assert row["name"] in table


def test_model_flops_match_hand_count():
    # Official mixture MLPs at batch 512: G 256->128->128->2, D 2->128->128->1 (2 x MACs).
    g, d, step = flops.gan_step_flops("mixture_mlp_g", {}, "mixture_mlp_d", {}, 512)
    assert g == 2 * 512 * (256 * 128 + 128 * 128 + 128 * 2)
    assert d == 2 * 512 * (2 * 128 + 128 * 128 + 128)
    assert step == 3 * g + 8 * d


def test_unknown_suite_and_case_are_errors():
    with pytest.raises(ValueError, match="suite"):
        bench.make_context("nope", reference=False, verbose=False)
    ctx = bench.make_context("tiny", reference=False, verbose=False)
    with pytest.raises(ValueError, match="case"):
        bench.run_cases(ctx, ["nope"])


def test_cli_runs_as_a_module():
    """`python -m benchmarks.run` keeps working after the split (argument errors exit 2)."""
    import subprocess  # noqa: PLC0415

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "--suite" in out.stdout and "--cases" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--suite", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "nope" in bad.stderr
