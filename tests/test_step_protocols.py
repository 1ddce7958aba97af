"""Protocol switches of the train step: fresh real data per D update, and LSGAN-GP as the
official TPAMI code (fixed perturbation, λ on the ½·Σ scale, fresh z for G's update)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from lsgan_jax.training.state import init_state, make_hparams, make_optimizer
from lsgan_jax.training.step import StepSpec, dragan_penalty, make_train_step

D_IN = 3


class _LinearD(nnx.Module):
    def __init__(self, *, rngs):
        self.dense = nnx.Linear(D_IN, 1, rngs=rngs)

    def __call__(self, x, *, train=True):
        return self.dense(x)[:, 0]


class _QuadD(nnx.Module):
    """D(x) = ½·c·‖x‖² + w·x: its input gradient c·x + w depends on where x̂ lies."""

    def __init__(self, *, rngs):
        self.c = nnx.Param(jnp.asarray(0.05))
        self.w = nnx.Param(jax.random.normal(rngs.params(), (D_IN,)) * 0.1)

    def __call__(self, x, *, train=True):
        return 0.5 * self.c[...] * jnp.sum(x**2, axis=-1) + x @ self.w[...]


class _TinyG(nnx.Module):
    latent_dim, latent_dist = 2, "normal"

    def __init__(self, *, rngs):
        self.dense = nnx.Linear(2, D_IN, rngs=rngs)

    def __call__(self, z, *, train=True):
        return jnp.tanh(self.dense(z))


def _setup(*, d_cls=_LinearD, batch_size=4, n_d=1, **spec_kwargs):
    g, d = _TinyG(rngs=nnx.Rngs(0)), d_cls(rngs=nnx.Rngs(1))
    sgd = make_optimizer(ml_collections.ConfigDict({"name": "sgd", "lr": 0.1}))
    spec = StepSpec(
        g_graphdef=nnx.graphdef(g), d_graphdef=nnx.graphdef(d), g_tx=sgd, d_tx=sgd,
        batch_size=batch_size, latent_dim=2, n_d=n_d, **spec_kwargs,
    )  # fmt: skip
    state = init_state(g, d, sgd, sgd, jax.random.PRNGKey(5))
    return spec, state, d


def _real(key, n):
    return jax.random.normal(key, (n, D_IN))


# ---------------------------------------------------------------- fresh real data per D update


def test_n_d_2_on_device_draws_two_different_real_batches():
    # lr_d = 0 keeps D fixed, so the last D update's mean D(real) identifies its real batch.
    hp = make_hparams(lr_g=0.0, lr_d=0.0)
    out = {}
    for n_d in (1, 2):
        spec, state, _ = _setup(n_d=n_d, sample_real=_real)
        _, m = jax.jit(make_train_step(spec))(state, None, hp)
        out[n_d] = float(m["d_real"])
    assert out[1] != pytest.approx(out[2], abs=1e-6)


def test_n_d_2_takes_a_stacked_batch_one_slice_per_d_update():
    hp = make_hparams(lr_g=0.0, lr_d=0.0)
    b1, b2 = _real(jax.random.PRNGKey(1), 4), _real(jax.random.PRNGKey(2), 4)
    spec, state, d = _setup(n_d=2)
    step = jax.jit(make_train_step(spec))
    _, m = step(state, {"image": jnp.stack([b1, b2])}, hp)
    np.testing.assert_allclose(float(m["d_real"]), float(d(b2).mean()), rtol=1e-6)
    with pytest.raises(ValueError, match=r"stacked as \(n_d, B_local"):
        step(state, {"image": b1}, hp)
    spec_reuse, _, _ = _setup(n_d=2, reuse_real_batch=True)
    _, m = jax.jit(make_train_step(spec_reuse))(state, {"image": b1}, hp)
    np.testing.assert_allclose(float(m["d_real"]), float(d(b1).mean()), rtol=1e-6)


def test_n_d_2_stacked_updates_equal_two_sequential_sgd_steps():
    # LS loss (0-1-1), linear D, SGD: each D update uses its own slice; the second D update
    # sees the first update's parameters.
    lr = 0.1
    hp = make_hparams(lr_g=0.0, lr_d=lr)
    b1, b2 = _real(jax.random.PRNGKey(1), 4), _real(jax.random.PRNGKey(2), 4)
    spec, state, _ = _setup(n_d=2)
    new, _ = jax.jit(make_train_step(spec))(state, {"image": jnp.stack([b1, b2])}, hp)
    w = np.asarray(state.d_params["dense"]["kernel"][...], np.float64)[:, 0]
    bias = float(state.d_params["dense"]["bias"][...][0])
    gen = nnx.merge(spec.g_graphdef, state.g_params, state.g_rest)
    key = jax.random.fold_in(state.rng, state.step)
    k_z = jax.random.split(key, 4)[1]
    for i, real in enumerate((b1, b2)):
        z = jax.random.normal(jax.random.fold_in(k_z, i), (4, 2))
        fake = np.asarray(gen(z), np.float64)
        x = np.asarray(real, np.float64)
        r, f = x @ w + bias - 1.0, fake @ w + bias  # residuals of ½mean(D(x)−1)² + ½mean(D(G(z)))²
        gw = (x * r[:, None]).mean(0) + (fake * f[:, None]).mean(0)
        gb = r.mean() + f.mean()
        w, bias = w - lr * gw, bias - lr * gb
    np.testing.assert_allclose(new.d_params["dense"]["kernel"][...][:, 0], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(new.d_params["dense"]["bias"][...][0]), bias, rtol=1e-5)


# ---------------------------------------------------------------- LSGAN-GP switches


def _gp_metrics(step_index, **spec_kwargs):
    spec, state, _ = _setup(d_cls=_QuadD, gp="dragan", **spec_kwargs)
    state = state.replace(step=jnp.asarray(step_index, state.step.dtype))
    x = _real(jax.random.PRNGKey(9), 4)
    _, m = jax.jit(make_train_step(spec))(state, {"image": x}, make_hparams(lr_g=0.0, lr_d=0.0))
    return spec, state, x, float(m["gp"])


@pytest.mark.parametrize("perturbation", ["fixed", "per_step"])
def test_gp_perturbation_fixed_per_run_or_redrawn_per_step(perturbation):
    for step_index in (0, 7):
        spec, state, x, gp = _gp_metrics(step_index, gp_perturbation=perturbation)
        disc = nnx.merge(spec.d_graphdef, state.d_params, state.d_rest)
        key = jax.random.fold_in(state.rng, state.step)
        k_gp = jax.random.fold_in(jax.random.split(key, 4)[2], 0)
        u_fixed = jax.random.uniform(jax.random.split(state.rng)[1], (4, D_IN))
        fixed = float(dragan_penalty(disc, x, k_gp, u=u_fixed))
        redrawn = float(dragan_penalty(disc, x, k_gp))
        assert fixed != pytest.approx(redrawn, rel=1e-3)
        assert gp == pytest.approx(fixed if perturbation == "fixed" else redrawn, rel=1e-5)


def test_dragan_penalty_with_given_u_matches_numpy():
    c, w = 0.3, np.array([0.2, -0.1, 0.4])
    x = np.random.default_rng(0).normal(size=(5, D_IN))
    u = np.random.default_rng(1).random((5, D_IN))
    key = jax.random.PRNGKey(3)
    alpha = np.asarray(jax.random.uniform(jax.random.split(key)[1], (5, 1)), np.float64)
    x_hat = x + alpha * 30.0 * u
    norms = np.sqrt((((c * x_hat + w) ** 2).sum(1)) + 1e-12)
    expected = np.mean((norms - 1.0) ** 2)

    def d_fn(xh):
        return 0.5 * c * jnp.sum(xh**2, -1) + xh @ jnp.asarray(w, jnp.float32)

    got = dragan_penalty(d_fn, jnp.asarray(x, jnp.float32), key, u=jnp.asarray(u, jnp.float32))
    assert float(got) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="global batch"):
        dragan_penalty(d_fn, jnp.asarray(x, jnp.float32), key, u=jnp.zeros((4, D_IN)))


def _d_after_one_gp_step(batch_size, gp_weight, scale):
    spec, state, _ = _setup(batch_size=batch_size, gp="dragan", gp_weight_scale=scale)
    x = _real(jax.random.PRNGKey(6), batch_size)
    hp = make_hparams(lr_g=0.1, lr_d=0.1, gp_weight=gp_weight)
    new, m = jax.jit(make_train_step(spec))(state, {"image": x}, hp)
    return state, new, m


@pytest.mark.parametrize("batch_size", [4, 8])
def test_gp_weight_on_the_official_half_sum_scale(batch_size):
    # Linear D: ∇_x̂ D = w, so the penalty (‖w‖ − 1)² and its gradient are known in closed form.
    lam, lr = 150.0, 0.1
    old, with_sum, m = _d_after_one_gp_step(batch_size, lam, "sum")
    _, with_mean, _ = _d_after_one_gp_step(batch_size, lam / batch_size, "mean")
    _, without, _ = _d_after_one_gp_step(batch_size, 0.0, "sum")
    kernel = lambda s: np.asarray(s.d_params["dense"]["kernel"][...], np.float64)[:, 0]  # noqa: E731
    w = kernel(old)
    norm = np.linalg.norm(w)
    assert float(m["gp"]) == pytest.approx((norm - 1.0) ** 2, rel=1e-5)
    # official: ½Σ LS + λ·GP = B·(½mean LS + (λ/B)·GP): the penalty enters as λ/B
    expected = -lr * (lam / batch_size) * 2 * (norm - 1) * w / norm
    np.testing.assert_allclose(kernel(with_sum) - kernel(without), expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(kernel(with_sum), kernel(with_mean), rtol=1e-6, atol=1e-8)


def _g_and_d_loss(g_latents, gp):
    spec, state, _ = _setup(gp="dragan" if gp else None, g_latents=g_latents, update="alternating")
    x = _real(jax.random.PRNGKey(4), 4)
    hp = make_hparams(lr_g=0.1, lr_d=0.0, gp_weight=1.0 if gp else 0.0)
    _, m = jax.jit(make_train_step(spec))(state, {"image": x}, hp)
    return float(m["g_loss"]), float(m["d_loss"])


@pytest.mark.parametrize("gp", [False, True])
def test_g_latents_fresh_or_shared_and_auto_follows_the_official_code(gp):
    shared, fresh, auto = (_g_and_d_loss(k, gp) for k in ("shared", "fresh", "auto"))
    assert shared[0] != pytest.approx(fresh[0], rel=1e-4)  # G's loss at another z
    assert shared[1] == pytest.approx(fresh[1], rel=1e-6)  # D's update is unchanged
    assert auto == (fresh if gp else shared)


def test_bad_switch_values_are_clear_errors():
    for field in ("gp_perturbation", "gp_weight_scale", "g_latents"):
        with pytest.raises(ValueError, match=field):
            _setup(**{field: "nope"})


def test_lsgan_gp_official_defaults_are_device_count_invariant():
    """Fixed u, λ/B and fresh z are global draws sliced per device: 4 devices == 1 device."""
    from lsgan_jax.training import runners

    batch = {"image": _real(jax.random.PRNGKey(8), 8)}
    hp = make_hparams(lr_g=0.1, lr_d=0.1, gp_weight=150.0)
    spec1, state, _ = _setup(d_cls=_QuadD, batch_size=8, gp="dragan")
    s1, m1 = jax.jit(make_train_step(spec1))(state, batch, hp)
    mesh = runners.make_mesh(4)
    sharded = runners.data_parallel(make_train_step(spec1), mesh, global_batch=8, donate=False)
    s4, m4 = sharded(runners.replicate(state, mesh), runners.shard_batch(batch, mesh), hp)
    for a, b in zip(
        jax.tree.leaves((s1.d_params, s1.g_params)),
        jax.tree.leaves((s4.d_params, s4.g_params)),
        strict=True,
    ):  # noqa: E501
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(float(m1["gp"]), float(m4["gp"]), rtol=2e-5)
