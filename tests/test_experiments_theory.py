"""End to end: `python -m experiments.gradients` and `python -m experiments.optimal_discriminator`
on their smoke variants, bad overrides, and the pure helpers of both modules against closed forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import gradients, optimal_discriminator
from lsgan_jax import losses, theory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOSS_NAMES = ("saturating", "non_saturating", "ls_zero_one", "ls_pearson")


def _env():
    env = dict(os.environ)
    env["XLA_FLAGS"] = os.environ.get("LSGAN_JAX_TEST_XLA_FLAGS", "")  # one CPU device
    env["JAX_PLATFORMS"] = "cpu"
    env["MPLBACKEND"] = "Agg"
    return env


def _run(module, *args, check=True, timeout=300):
    proc = subprocess.run(
        [sys.executable, "-m", f"experiments.{module}", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


# ------------------------------------------------------------------------------------------
# experiments.gradients
# ------------------------------------------------------------------------------------------


def test_gradients_smoke_end_to_end(tmp_path):
    proc = _run("gradients", "--variant=smoke", f"--workdir={tmp_path}")
    assert "Part 1" in proc.stdout and "Part 2" in proc.stdout
    for name in ("summary.json", "gradients_fixed_d.png", "gradients_training.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "summary.json").read_text())
    p1 = summary["part1"]
    assert p1["t_far"] == 4.0
    for d in ("linear", "mlp"):
        for loss in LOSS_NAMES:
            assert set(p1[d][loss]) >= {
                "far_fake",
                "boundary",
                "far_real",
                "ratio_far_real_to_boundary",
                "ratio_far_fake_to_boundary",
            }
        g = p1[d]
        # The LSGAN paper's argument: on the real side, far from the boundary, the
        # non-saturating loss has almost no gradient and the least-squares loss a large one.
        assert g["non_saturating"]["far_real"] < 1e-2 * g["ls_zero_one"]["far_real"]
        assert g["non_saturating"]["ratio_far_real_to_boundary"] < 0.05
        # The saturating loss vanishes on the other side: fakes confidently rejected.
        assert g["saturating"]["far_fake"] < 1e-2 * g["ls_zero_one"]["far_fake"]
        assert g["saturating"]["ratio_far_fake_to_boundary"] < 0.05
        # LS (c=1) grows with the distance from its target on both sides.
        assert g["ls_zero_one"]["far_real"] > g["ls_zero_one"]["boundary"]
        assert g["ls_zero_one"]["far_fake"] > g["ls_zero_one"]["boundary"]
    # On the linear D (|w| = 1) the gradients are the closed forms exactly.
    lin = p1["linear"]
    np.testing.assert_allclose(lin["ls_zero_one"]["far_real"], 3.0, rtol=1e-4)
    np.testing.assert_allclose(lin["ls_zero_one"]["boundary"], 1.0, rtol=1e-4)
    np.testing.assert_allclose(lin["non_saturating"]["far_real"], 1 / (1 + np.exp(4)), rtol=1e-3)
    assert lin["ls_pearson"]["ratio_far_real_to_boundary"] is None  # c = 0 is the boundary
    p2 = summary["part2"]
    assert set(p2["per_loss"]) == {"lsgan", "nsgan"}
    for v in p2["per_loss"].values():
        assert np.isfinite(v["g_grad_norm_last"]) and v["g_grad_norm_last"] > 0
    assert os.path.exists(tmp_path / "training" / "metrics.jsonl")


def test_gradients_bad_override_is_a_clear_error(tmp_path):
    proc = _run(
        "gradients",
        "--variant=smoke",
        f"--workdir={tmp_path}",
        "--config.part1.t_maxx=3",
        check=False,
    )
    assert proc.returncode != 0
    assert "unknown config field" in proc.stderr
    assert "Did you mean 'part1.t_max'" in proc.stderr
    assert not (tmp_path / "summary.json").exists()


def test_logit_gradients_match_closed_forms():
    f = np.linspace(-20.0, 20.0, 401)
    got = gradients.logit_gradients(jnp.asarray(f, jnp.float32))
    want = gradients.closed_form_logit_gradients(f)
    assert set(got) == set(want) == set(LOSS_NAMES)
    for name in LOSS_NAMES:
        np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=1e-5, atol=1e-6)
    # The exact behaviours the experiment is about.
    np.testing.assert_allclose(want["saturating"], 1 / (1 + np.exp(-f)), rtol=1e-7)
    np.testing.assert_allclose(want["non_saturating"], 1 / (1 + np.exp(f)), rtol=1e-7)
    np.testing.assert_allclose(want["ls_zero_one"], np.abs(f - 1.0))
    np.testing.assert_allclose(want["ls_pearson"], np.abs(f))


def test_input_gradients_chain_rule():
    # Linear D with |w| = 2: |dL/dx| = 2 |dL/df|.
    w = jnp.asarray([1.2, -1.6])
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 2)) * 3.0
    f, grads = gradients.input_gradients(lambda v: v @ w, x)
    want = gradients.closed_form_logit_gradients(np.asarray(f))
    for name in LOSS_NAMES:
        np.testing.assert_allclose(np.asarray(grads[name]), 2.0 * want[name], rtol=1e-4, atol=1e-6)

    # Nonlinear D: |dL/dx| = |dL/df| · |∇D(x)| per sample (samples do not interact).
    def disc(v):
        return 3.0 * jnp.tanh(v[:, 0] - 0.5 * v[:, 1]) + v[:, 1] ** 2

    f, grads = gradients.input_gradients(disc, x)
    d_grad = np.linalg.norm(np.asarray(jax.grad(lambda v: disc(v).sum())(x)), axis=-1)
    want = gradients.closed_form_logit_gradients(np.asarray(f))
    for name in LOSS_NAMES:
        np.testing.assert_allclose(
            np.asarray(grads[name]), want[name] * d_grad, rtol=1e-4, atol=1e-5
        )


def test_place_on_logit_grid_and_summaries():
    t_grid = np.linspace(-3.0, 5.0, 41)

    def disc(x):
        return 2.0 * x[:, 0] + 0.5

    x = gradients.place_on_logit_grid(disc, np.array([-1.0, 0.3]), np.array([1.0, 0.3]), t_grid)
    np.testing.assert_allclose(np.asarray(disc(jnp.asarray(x))), t_grid, atol=1e-3)
    np.testing.assert_allclose(x[:, 1], 0.3, atol=1e-6)  # on the line

    with pytest.raises(ValueError, match="does not cover"):
        gradients.place_on_logit_grid(
            lambda v: jnp.tanh(v[:, 0]), np.array([-1.0, 0.0]), np.array([1.0, 0.0]), t_grid
        )
    with pytest.raises(ValueError, match="not monotone"):
        gradients.place_on_logit_grid(
            lambda v: 4.0 * v[:, 0] + 3.0 * jnp.sin(8.0 * v[:, 0]),
            np.array([-1.0, 0.0]),
            np.array([1.0, 0.0]),
            t_grid,
        )

    t = np.linspace(-6.0, 8.0, 281)
    s = gradients.summarize_curves(t, gradients.closed_form_logit_gradients(t), 4.0)
    np.testing.assert_allclose(s["ls_zero_one"]["far_real"], 3.0, rtol=1e-9)
    np.testing.assert_allclose(s["ls_zero_one"]["ratio_far_fake_to_boundary"], 5.0, rtol=1e-9)
    np.testing.assert_allclose(s["saturating"]["boundary"], 0.5, rtol=1e-9)
    assert s["ls_pearson"]["ratio_far_real_to_boundary"] is None
    with pytest.raises(ValueError, match="outside the sampled range"):
        gradients.values_at(t, t, 9.0)


def test_gradients_configs():
    for variant in gradients.VARIANTS:
        c = gradients.get_config(variant)
        assert c.part2.mixture.num_steps % c.part2.mixture.eval_every == 0
        assert c.part2.mixture.checkpoint_every % c.part2.mixture.eval_every == 0
    with pytest.raises(ValueError, match="Unknown variant"):
        gradients.get_config("nope")


# ------------------------------------------------------------------------------------------
# experiments.optimal_discriminator
# ------------------------------------------------------------------------------------------

# Measured on the smoke variant (seeds 0-3): max |D - D*|/(b - a) <= 0.09, mean |D - D*| <= 0.03.
SMOKE_MAX_REL_ERR = 0.2
SMOKE_MEAN_ERR = 0.06


def _closed_form_oracle(config, summary) -> dict:
    """C(G) = ½∫(p_d + p_g)(D* − c)² dx and χ²(p_d + p_g ‖ 2p_g) = ∫(p_g − p_d)²/(p_d + p_g) dx,
    from scipy's normal density on the summary's grid (no code of the experiment involved)."""
    from scipy import stats  # noqa: PLC0415

    g = summary["grid"]
    x = np.linspace(g["lo"], g["hi"], g["num"])
    dx = x[1] - x[0]

    def pdf(cfg):
        w = np.asarray(cfg.weights, np.float64) / np.sum(cfg.weights)
        return sum(
            wk * stats.norm.pdf(x, m, s) for wk, m, s in zip(w, cfg.means, cfg.stds, strict=True)
        )

    pd, pg = pdf(config.p_data), pdf(config.p_g)
    out = {}
    for name in config.codings:
        a, b, c = optimal_discriminator.CODINGS[name]
        d_star = (b * pd + a * pg) / (pd + pg)
        out[name] = {
            "C": 0.5 * np.sum((pd + pg) * (d_star - c) ** 2) * dx,
            "chi2": np.sum((pg - pd) ** 2 / (pd + pg)) * dx,
        }
    return out


def test_optimal_discriminator_smoke_end_to_end(tmp_path):
    proc = _run("optimal_discriminator", "--variant=smoke", f"--workdir={tmp_path}")
    assert "pearson_chi2" in proc.stdout
    assert (tmp_path / "optimal_discriminator.png").stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["support_threshold"] == 0.05
    assert 0.9 < summary["region_mass_fraction"] <= 1.0
    res = summary["codings"]
    assert set(res) == {"zero_one", "pearson_chi2"}
    oracle = _closed_form_oracle(optimal_discriminator.get_config("smoke"), summary)
    for name, r in res.items():
        assert r["max_abs_err_rel"] < SMOKE_MAX_REL_ERR, (name, r)
        assert r["mean_abs_err"] < SMOKE_MEAN_ERR, (name, r)
        assert 0.0 <= r["d_objective_excess"] < 1e-2, (name, r)
        # C(G) and the chi2 recomputed from the config with scipy's normal density (oracle).
        np.testing.assert_allclose(r["criterion_C"], oracle[name]["C"], rtol=1e-6)
        np.testing.assert_allclose(r["pearson_chi2"], oracle[name]["chi2"], rtol=1e-6)
        # The trained D gives nearly the generator objective of D*.
        np.testing.assert_allclose(r["criterion_at_trained_d"], r["criterion_C"], rtol=0.1)
    # The paper's identity 2C(G) = chi2_Pearson(pd + pg || 2 pg) for b - c = 1, b - a = 2 only.
    pc, zo = res["pearson_chi2"], res["zero_one"]
    assert pc["pearson_condition"] and not zo["pearson_condition"]
    assert pc["chi2_identity_gap"] < 1e-4 * pc["pearson_chi2"]
    assert zo["chi2_identity_gap"] > 1e-2 * zo["pearson_chi2"]
    # Independent of the coding: 2C differs from chi2 by the coding-dependent terms only.
    assert abs(pc["criterion_C"] - zo["criterion_C"]) > 1e-3


def test_optimal_discriminator_bad_override_is_a_clear_error(tmp_path):
    proc = _run(
        "optimal_discriminator", f"--workdir={tmp_path}", "--config.not_a_field=1", check=False
    )
    assert proc.returncode != 0
    assert "unknown config field 'not_a_field'" in proc.stderr


def test_compare_is_exact_at_the_optimum():
    x = np.linspace(-6.0, 6.0, 601)
    pd = optimal_discriminator.mixture_pdf(x, (-2.0, 2.0), (0.6, 0.6), (0.5, 0.5))
    pg = optimal_discriminator.mixture_pdf(x, (0.5,), (1.6,), (1.0,))
    dx = x[1] - x[0]
    np.testing.assert_allclose([pd.sum() * dx, pg.sum() * dx], 1.0, atol=1e-3)  # tails cut
    for name, coding in optimal_discriminator.CODINGS.items():
        d_star = np.asarray(theory.optimal_discriminator(pd, pg, a=coding.a, b=coding.b))
        r = optimal_discriminator.compare(x, pd, pg, d_star, coding, threshold=0.05)
        assert r["max_abs_err"] < 1e-6 and r["mean_abs_err"] < 1e-6, name
        assert abs(r["d_objective_excess"]) < 1e-6, name
        np.testing.assert_allclose(r["criterion_at_trained_d"], r["criterion_C"], rtol=1e-5)
        # Any other D has a larger objective (D* is the pointwise minimizer).
        worse = optimal_discriminator.compare(x, pd, pg, d_star + 0.1, coding, threshold=0.05)
        assert worse["d_objective_excess"] > 0.0
        np.testing.assert_allclose(worse["max_abs_err"], 0.1, rtol=1e-5)
    pc = optimal_discriminator.compare(x, pd, pg, pd * 0, losses.PEARSON_CHI2, threshold=0.05)
    np.testing.assert_allclose(pc["two_C"], pc["pearson_chi2"], rtol=1e-5)


def test_mixture_sampler_moments():
    sample = optimal_discriminator.mixture_sampler((-2.0, 2.0), (0.5, 0.5), (0.25, 0.75))
    x = np.asarray(jax.jit(sample, static_argnums=1)(jax.random.PRNGKey(0), 40_000))
    assert x.shape == (40_000, 1)
    np.testing.assert_allclose(x.mean(), 0.25 * -2.0 + 0.75 * 2.0, atol=0.03)
    np.testing.assert_allclose((x > 0).mean(), 0.75, atol=0.01)


def test_optimal_discriminator_config_errors():
    with pytest.raises(ValueError, match="Unknown variant"):
        optimal_discriminator.get_config("nope")
    c = optimal_discriminator.get_config("smoke")
    c.p_g.stds = (1.0, 2.0)
    with pytest.raises(ValueError, match="same length"):
        optimal_discriminator._mixture_params(c.p_g, "p_g")
