"""The LSGAN-GP penalty against NumPy/finite differences, the stability settings, and the
`experiments.stability` smoke run end to end."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from lsgan_jax.training.state import init_state, make_hparams, make_optimizer
from lsgan_jax.training.step import StepSpec, dragan_penalty, make_train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (2, 3, 1)  # tiny "images"
D_IN = int(np.prod(SHAPE))


def _draws(key, x, scale):
    """The penalty's perturbation, drawn exactly as `dragan_penalty` documents it."""
    k_u, k_alpha = jax.random.split(key)
    u = np.asarray(jax.random.uniform(k_u, x.shape), np.float64)
    alpha = np.asarray(jax.random.uniform(k_alpha, (x.shape[0],) + (1,) * (x.ndim - 1)))
    return np.asarray(x, np.float64) + alpha * scale * u


def test_dragan_penalty_linear_d_closed_form():
    # D(x) = <w, x> + b: the gradient is w everywhere, so the penalty is (||w|| - 1)^2.
    w = jax.random.normal(jax.random.PRNGKey(1), (D_IN,))
    x = jax.random.uniform(jax.random.PRNGKey(2), (5, *SHAPE), minval=-1, maxval=1)

    def penalty(w):
        d_fn = lambda xh: xh.reshape(xh.shape[0], -1) @ w + 0.3
        return dragan_penalty(d_fn, x, jax.random.PRNGKey(3), scale=30.0)

    w64 = np.asarray(w, np.float64)
    norm = np.linalg.norm(w64)
    np.testing.assert_allclose(float(penalty(w)), (norm - 1.0) ** 2, rtol=1e-5)
    # Its gradient with respect to D's parameters (double backprop): 2 (||w|| - 1) w / ||w||.
    np.testing.assert_allclose(
        np.asarray(jax.grad(penalty)(w)), 2 * (norm - 1) * w64 / norm, rtol=1e-4, atol=1e-6
    )


def test_dragan_penalty_matches_finite_differences():
    # A nonlinear D, so the penalty depends on where x_hat lands: compare with central
    # differences of a NumPy float64 copy of D at the same perturbed points.
    key = jax.random.PRNGKey(0)
    w1 = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (D_IN, 4)), np.float64) / 10
    w2 = np.asarray(jax.random.normal(jax.random.fold_in(key, 2), (4,)), np.float64)
    x = np.asarray(jax.random.uniform(jax.random.fold_in(key, 3), (4, *SHAPE), minval=-1), float)
    scale, gp_key = 0.7, jax.random.fold_in(key, 4)

    def d_np(v):  # one flattened sample
        return np.tanh(v @ w1) @ w2

    d_jax = lambda xh: (
        jnp.tanh(xh.reshape(xh.shape[0], -1) @ w1.astype(np.float32)) @ w2.astype(np.float32)
    )
    got = float(dragan_penalty(d_jax, jnp.asarray(x, jnp.float32), gp_key, scale=scale))

    x_hat = _draws(gp_key, x, scale).reshape(len(x), -1)
    eps, norms = 1e-6, []
    for v in x_hat:
        g = [(d_np(v + eps * e) - d_np(v - eps * e)) / (2 * eps) for e in np.eye(D_IN)]
        norms.append(np.linalg.norm(g))
    want = np.mean((np.asarray(norms) - 1.0) ** 2)
    np.testing.assert_allclose(got, want, rtol=1e-4)


class _LinearD(nnx.Module):
    def __init__(self, *, rngs):
        self.dense = nnx.Linear(D_IN, 1, rngs=rngs)

    def __call__(self, x, *, train=True):
        return self.dense(x.reshape(x.shape[0], -1))


class _BatchNormD(_LinearD):
    def __init__(self, *, rngs):
        super().__init__(rngs=rngs)
        self.norm = nnx.BatchNorm(D_IN, rngs=rngs)

    def __call__(self, x, *, train=True):
        return self.dense(self.norm(x.reshape(x.shape[0], -1), use_running_average=not train))


class _TinyG(nnx.Module):
    latent_dim, latent_dist = 3, "normal"

    def __init__(self, *, rngs):
        self.dense = nnx.Linear(3, D_IN, rngs=rngs)

    def __call__(self, z, *, train=True):
        return jnp.tanh(self.dense(z)).reshape(z.shape[0], *SHAPE)


def _one_step(gp_weight, d_cls=_LinearD, lr=0.1):
    g, d = _TinyG(rngs=nnx.Rngs(0)), d_cls(rngs=nnx.Rngs(1))
    sgd = make_optimizer(ml_collections.ConfigDict({"name": "sgd", "lr": lr}))
    spec = StepSpec(
        g_graphdef=nnx.graphdef(g), d_graphdef=nnx.graphdef(d), g_tx=sgd, d_tx=sgd,
        batch_size=4, latent_dim=3, gp="dragan", gp_scale=30.0, gp_weight_scale="mean",
    )  # fmt: skip
    state = init_state(g, d, sgd, sgd, jax.random.PRNGKey(5))
    hp = make_hparams(lr_g=lr, lr_d=lr, gp_weight=gp_weight)
    x = jax.random.uniform(jax.random.PRNGKey(6), (4, *SHAPE), minval=-1, maxval=1)
    new, metrics = jax.jit(make_train_step(spec))(state, {"image": x}, hp)
    return state, new, metrics


def test_train_step_adds_weighted_penalty_gradient():
    lam, lr = 150.0 / 64.0, 0.1
    old, with_gp, m = _one_step(lam, lr=lr)
    _, without, _ = _one_step(0.0, lr=lr)
    val = lambda state, name: np.asarray(state.d_params["dense"][name][...], np.float64)
    w = val(old, "kernel")[:, 0]
    norm = np.linalg.norm(w)
    assert float(m["gp"]) == pytest.approx((norm - 1.0) ** 2, rel=1e-5)
    # SGD: the two updates differ by exactly -lr * lambda * grad_w (||w|| - 1)^2.
    diff = (val(with_gp, "kernel") - val(without, "kernel"))[:, 0]
    np.testing.assert_allclose(diff, -lr * lam * 2 * (norm - 1) * w / norm, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(val(with_gp, "bias") - val(without, "bias"), 0.0, atol=1e-7)


def test_penalty_with_batchnorm_discriminator_is_a_clear_error():
    with pytest.raises(ValueError, match="without BatchNorm"):
        _one_step(1.0, d_cls=_BatchNormD)


def test_settings_map_to_the_official_runs():
    from experiments import stability

    config = stability.get_config()
    assert config.settings == (*stability.OFFICIAL, "BN_GD_lsgp_adam")
    c = stability.run_config(config, "BN_GD_ls_rms", 1)
    assert (c.coding.a, c.coding.b, c.coding.c) == (-1.0, 1.0, 0.0) and c.loss == "lsgan"
    assert c.optim_d.name == c.optim_g.name == "rmsprop" and c.optim_d.eps == 1e-10
    assert not c.model.g_kwargs["g_batchnorm"] and not c.model.d_kwargs["d_batchnorm"]
    assert c.seed == config.seed + 1 and c.gp == ""
    c = stability.run_config(config, "BN_G_sigmoid_adam", 0)
    assert c.loss == "nsgan" and c.model.d_kwargs["d_batchnorm"] and c.optim_g.name == "adam"
    c = stability.run_config(config, "BN_GD_lsgp_adam", 0)
    # official LAMBDA = 150 on the ½·Σ loss scale (StepSpec.gp_weight_scale="sum" divides by B)
    assert c.gp == "dragan" and c.gp_weight == pytest.approx(150.0) and c.gp_scale == 30.0
    assert (c.optim_d.lr, c.optim_d.b2) == (1e-4, 0.9)
    assert not c.model.d_kwargs["d_batchnorm"] and c.model.d_kwargs["d_layernorm"]  # official D
    config.lsgp.layer_norm = False  # the switch: D without normalization
    assert not stability.run_config(config, "BN_GD_lsgp_adam", 0).model.d_kwargs["d_layernorm"]
    assert "d_layernorm" not in stability.run_config(config, "BN_GD_ls_rms", 0).model.d_kwargs
    paper = stability.get_config("paper")
    assert paper.data.name == "lsun/bedroom" and paper.data.image_size == 64
    assert paper.model.g_kwargs["latent_dim"] == 1024 and paper.batch_size == 64
    assert paper.settings == stability.OFFICIAL and paper.adam.lr == paper.rmsprop.lr == 2e-4


def test_stability_smoke_end_to_end(tmp_path):
    env = dict(os.environ)
    env["XLA_FLAGS"] = os.environ.get("LSGAN_JAX_TEST_XLA_FLAGS", "")  # one CPU device
    env.update(
        JAX_PLATFORMS="cpu",
        TFDS_DATA_DIR=str(tmp_path / "tfds"),
        LSGAN_JAX_CACHE_DIR=str(tmp_path / "cache"),
    )
    wd = tmp_path / "stab"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.stability", "--variant=smoke", f"--workdir={wd}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.load(open(wd / "summary.json"))
    assert [e["setting"] for e in summary["table"]] == ["BN_G_ls_adam", "BN_GD_lsgp_adam"]
    for e in summary["table"]:
        assert e["runs"] == 1 and e["successes"] in (0, 1)
        assert (wd / "grids" / f"{e['setting']}.png").stat().st_size > 0
    for run in summary["runs"]:
        assert {"fd", "class_coverage", "collapsed", "diversity"} <= set(run["final"])
    assert summary["protocol"]["split"] == "train" and summary["protocol"]["n_real"] == 1797
    assert "success = final class_coverage" in summary["criterion"]
    assert (wd / "table.md").read_text().startswith("| setting |")
    assert "| BN_GD_lsgp_adam |" in proc.stdout


@pytest.mark.parametrize("module", ["digits", "stability"])
def test_spectral_norm_variants_train_an_sn_discriminator(module):
    """`--variant=sn` puts spectral norm on D; one train step moves its power-iteration state
    (kept with the BatchNorm statistics in `d_rest`, not among the trained parameters)."""
    import importlib

    from lsgan_jax.models.spectral_norm import PowerIterationVector
    from lsgan_jax.training import build, runners

    exp = importlib.import_module(f"experiments.{module}")
    config = exp.get_config("sn")
    if module == "stability":
        assert {"SN_D_ls_adam", "SN_D_sigmoid_adam"} <= set(config.settings)
        config = exp.run_config(config, "SN_D_ls_adam", 0)
        assert not config.model.d_kwargs["d_batchnorm"]
    assert config.model.d_kwargs["spectral_norm"] is True
    config.unlock()
    config.batch_size = 8
    gan = build.build_image(config, axis_name=None)

    def u_values(tree):  # the power-iteration vectors only (not BatchNorm statistics)
        leaves = jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, nnx.Variable))
        return [np.asarray(v[...]) for v in leaves if isinstance(v, PowerIterationVector)]

    assert u_values(gan.state.d_rest), "no power-iteration state in D"
    assert not u_values(gan.state.d_params)
    step = runners.single(make_train_step(gan.spec))
    size, ch = config.data.image_size, config.model.g_kwargs["channels"]
    real = jax.random.uniform(jax.random.PRNGKey(0), (8, size, size, ch), minval=-1, maxval=1)
    before = u_values(gan.state.d_rest)
    state, metrics = step(gan.state, {"image": real}, gan.hparams)
    assert np.isfinite(float(metrics["d_loss"]))
    after = u_values(state.d_rest)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
