"""Spectral normalization: against numpy.linalg.svd, against PyTorch's parametrization, in the
discriminators, and through the trainers' step (vmap, shard_map, resume, gradient penalty)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
from flax import nnx

from lsgan_jax import models
from lsgan_jax.data import mixtures
from lsgan_jax.models import spectral_norm as sn
from lsgan_jax.models.layers import conv2d, count_params
from lsgan_jax.training import runners
from lsgan_jax.training.checkpoint import Checkpointer
from lsgan_jax.training.state import init_state, make_hparams, make_optimizer, stack, unstack
from lsgan_jax.training.step import StepSpec, make_train_step

# Small versions of every image D (fewer distinct shapes: faster to compile on 2 cores).
IMAGE_DS = {
    "dcgan_d": dict(image_size=8, channels=1, base_features=2, num_layers=2),
    "lsun_d": dict(image_size=8, channels=1, base_features=2, num_layers=2),
    "digit_d": dict(image_size=8, features=(2, 3), hidden=4),
    "conditional_d": dict(num_classes=5, image_size=8, base_features=2, label_features=3, hidden=4),
}
IMAGE_SHAPES = {name: (2, 8, 8, 1) for name in IMAGE_DS}


def _np(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _top_singular_value(matrix) -> float:
    return float(np.linalg.svd(_np(matrix), compute_uv=False)[0])


def _sn_layers(module: nnx.Module) -> list[sn.SpectralNorm]:
    return [node for _, node in nnx.iter_graph(module) if isinstance(node, sn.SpectralNorm)]


def _uv(module: nnx.Module) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(module, sn.PowerIterationVector))]


# ---------------------------------------------------------------------------------------------
# σ against the SVD.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_sigma_converges_to_largest_singular_value(kind):
    rngs = nnx.Rngs(0)
    if kind == "dense":
        layer = sn.SpectralNorm(nnx.Linear(12, 7, rngs=rngs), rngs=rngs)
    else:
        layer = sn.SpectralNorm(conv2d(3, 6, kernel_size=3, dtype=None, rngs=rngs), rngs=rngs)
    kernel = np.asarray(layer.layer.kernel[...])
    matrix = sn.weight_matrix(jnp.asarray(kernel))
    # PyTorch's (out, in·kh·kw) matrix: the output axis first, then (in, kh, kw).
    torch_layout = kernel.transpose(3, 2, 0, 1) if kind == "conv" else kernel.T
    np.testing.assert_array_equal(np.asarray(matrix), torch_layout.reshape(kernel.shape[-1], -1))
    want = _top_singular_value(torch_layout.reshape(kernel.shape[-1], -1))
    # Same singular values as Flax's own flattening (kh·kw·in, out): only a transpose/permutation.
    assert want == pytest.approx(_top_singular_value(kernel.reshape(-1, kernel.shape[-1])))
    # A Rayleigh-type quotient of unit vectors never exceeds σ_max.
    assert float(layer.sigma()) <= want * (1 + 1e-6)

    @jax.jit
    def many(u, v):
        return jax.lax.fori_loop(0, 2000, lambda _, uv: sn.power_iteration(matrix, *uv), (u, v))

    u, v = many(layer.u[...], layer.v[...])
    layer.u[...], layer.v[...] = u, v
    assert float(layer.sigma()) == pytest.approx(want, rel=1e-5)
    # The normalized weight has spectral norm 1 (up to the estimate).
    graphdef, state = nnx.split(layer.layer)
    normalized = np.asarray(matrix) / float(layer.sigma())
    assert _top_singular_value(normalized) == pytest.approx(1.0, rel=1e-5)
    del graphdef, state


def test_normalized_dense_layer_matches_numpy():
    rngs = nnx.Rngs(1)
    layer = sn.SpectralNorm(nnx.Linear(5, 3, rngs=rngs), rngs=rngs)
    layer.layer.bias[...] = jnp.arange(3.0)
    x = np.asarray(jax.random.normal(jax.random.key(0), (4, 5)))
    k, b = _np(layer.layer.kernel[...]), _np(layer.layer.bias[...])
    u, v = _np(layer.u[...]), _np(layer.v[...])
    sigma = u @ (k.T @ v)
    np.testing.assert_allclose(layer(x, update=False), x @ (k / sigma) + b, rtol=1e-5, atol=1e-6)
    # The parameter itself is never overwritten by the normalized weight.
    np.testing.assert_array_equal(_np(layer.layer.kernel[...]), k)


def test_bad_inputs():
    with pytest.raises(ValueError, match="kernel"):
        sn.SpectralNorm(nnx.LayerNorm(4, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="spectral_norm"):
        models.create("dcgan_d", rngs=nnx.Rngs(0), spectral_norm="yes", **IMAGE_DS["dcgan_d"])


# ---------------------------------------------------------------------------------------------
# Against torch.nn.utils.parametrizations.spectral_norm on identical weights and u, v.
# ---------------------------------------------------------------------------------------------


def _torch_pair(kind: str):
    """Our SN layer and PyTorch's, with identical weight, bias, u and v."""
    rngs = nnx.Rngs(2)
    if kind == "dense":
        ours = sn.SpectralNorm(nnx.Linear(6, 4, rngs=rngs), rngs=rngs)
        theirs = torch.nn.Linear(6, 4)
        weight = np.asarray(ours.layer.kernel[...]).T
    else:  # SAME 3x3 stride-2 conv through the custom-gradient stride-2 conv of layers.py
        conv = conv2d(2, 5, kernel_size=3, impl="subpixel", dtype=None, rngs=rngs)
        ours = sn.SpectralNorm(conv, rngs=rngs)
        theirs = torch.nn.Conv2d(2, 5, 3, stride=2, padding=0)
        weight = np.asarray(ours.layer.kernel[...]).transpose(3, 2, 0, 1)
    ours.layer.bias[...] = jnp.linspace(-0.5, 0.5, ours.layer.bias.shape[0])
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(weight.copy()))
        theirs.bias.copy_(torch.from_numpy(np.asarray(ours.layer.bias[...]).copy()))
    theirs = torch.nn.utils.parametrizations.spectral_norm(theirs)
    param = theirs.parametrizations.weight[0]
    with torch.no_grad():
        param._u.copy_(torch.from_numpy(np.asarray(ours.u[...]).copy()))
        param._v.copy_(torch.from_numpy(np.asarray(ours.v[...]).copy()))
    return ours, theirs, param


def _torch_forward(kind, theirs, x: np.ndarray) -> torch.Tensor:
    xt = torch.from_numpy(x.copy())
    if kind == "dense":
        return theirs(xt)
    # NHWC -> NCHW; TF SAME for 8 -> 4 with k=3, s=2 pads 0 before and 1 after.
    xt = torch.nn.functional.pad(xt.permute(0, 3, 1, 2), (0, 1, 0, 1))
    return theirs(xt).permute(0, 2, 3, 1)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_matches_torch_parametrization(kind):
    ours, theirs, param = _torch_pair(kind)
    shape = (3, 6) if kind == "dense" else (3, 8, 8, 2)
    x = np.asarray(jax.random.normal(jax.random.key(3), shape), np.float32)

    # Three training calls: outputs, u and v follow PyTorch's step by step.
    theirs.train()
    for _ in range(3):
        want = _torch_forward(kind, theirs, x).detach().numpy()
        got = ours(x, update=True)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.u[...], param._u.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.v[...], param._v.numpy(), rtol=1e-5, atol=1e-6)

    # Gradient with respect to the raw weight (σ's dependence on W included, u, v constant).
    theirs.zero_grad()
    _torch_forward(kind, theirs, x).pow(2).sum().backward()
    want_grad = theirs.parametrizations.weight.original.grad.numpy()
    u_before = np.asarray(ours.u[...])

    def loss(module):
        return jnp.sum(module(x, update=True) ** 2)

    grads = nnx.grad(loss)(ours)
    got_grad = np.asarray(grads["layer"]["kernel"][...])
    got_grad = got_grad.T if kind == "dense" else got_grad.transpose(3, 2, 0, 1)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.u[...], param._u.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours.u[...], u_before)  # the update happened inside nnx.grad too

    # Evaluation: stored u, v, no update, same output as PyTorch in eval mode.
    theirs.eval()
    u_eval = np.asarray(ours.u[...])
    want = _torch_forward(kind, theirs, x).detach().numpy()
    np.testing.assert_allclose(ours(x, update=False), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours.u[...], u_eval)
    np.testing.assert_allclose(param._u.numpy(), u_eval, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# In the discriminators.
# ---------------------------------------------------------------------------------------------


def _call(d, x, name, train):
    if name == "conditional_d":
        return d(x, labels=jnp.array([0, 3]), train=train)
    return d(x, train=train)


@pytest.mark.parametrize("name", sorted(IMAGE_DS) + ["mixture_mlp_d", "pacgan_d", "welfert_d"])
def test_every_discriminator_option_train_vs_eval(name):
    kw = IMAGE_DS.get(name, {})
    shape = IMAGE_SHAPES.get(name, (2, 2))
    plain = models.create(name, rngs=nnx.Rngs(0), **kw)
    d = models.create(name, rngs=nnx.Rngs(0), spectral_norm=True, **kw)
    # Same parameter count (u, v are not parameters); every weight layer is wrapped.
    assert count_params(d) == count_params(plain)
    n_weights = sum(
        1 for path, _ in nnx.to_flat_state(nnx.state(plain, nnx.Param)) if path[-1] == "kernel"
    )
    assert len(_sn_layers(d)) == n_weights
    x = jax.random.uniform(jax.random.key(0), shape, minval=-1.0)
    evaluate = nnx.jit(lambda d, x: _call(d, x, name, train=False))
    train = nnx.jit(lambda d, x: _call(d, x, name, train=True))
    before = _uv(d)
    y_eval = evaluate(d, x)
    chex.assert_shape(y_eval, (shape[0], 1))
    for a, b in zip(before, _uv(d), strict=True):  # eval: nothing written
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(evaluate(d, x), y_eval)
    train(d, x)
    after = _uv(d)
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    for layer in _sn_layers(d):  # the stored vectors stay unit vectors
        np.testing.assert_allclose(np.linalg.norm(layer.u[...]), 1.0, rtol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(layer.v[...]), 1.0, rtol=1e-5)


def test_dcgan_d_sn_same_values_and_grads_with_both_conv_impls():
    """The custom stride-2 conv (sub-pixel input gradient) works on spectrally normalized
    kernels: same values, input gradients and kernel gradients as XLA's conv."""
    kw = dict(IMAGE_DS["dcgan_d"], d_batchnorm=False, spectral_norm=True)
    a = models.create("dcgan_d", rngs=nnx.Rngs(5), deconv_impl="subpixel", **kw)
    b = models.create("dcgan_d", rngs=nnx.Rngs(5), deconv_impl="conv_transpose", **kw)
    x = jax.random.uniform(jax.random.key(1), (3, 8, 8, 1), minval=-1.0)

    def loss(d, x):
        return jnp.sum(d(x, train=True) ** 2)

    grad = nnx.jit(nnx.grad(loss, argnums=(0, 1)))
    (ga, gxa), (gb, gxb) = grad(a, x), grad(b, x)
    np.testing.assert_allclose(gxa, gxb, rtol=1e-4, atol=1e-6)
    for p, q in zip(jax.tree.leaves(ga), jax.tree.leaves(gb), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6)
    for p, q in zip(_uv(a), _uv(b), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


def test_vmap_gives_per_run_vectors():
    """Three Ds (different seeds) stacked on a run axis: jax.vmap of a training call equals
    three separate calls, and each run keeps its own u."""
    ds = [
        models.create("mixture_mlp_d", rngs=nnx.Rngs(s), hidden=8, spectral_norm=True)
        for s in range(3)
    ]
    graphdef, _, _ = nnx.split(ds[0], nnx.Param, ...)
    parts = [nnx.split(d, nnx.Param, ...)[1:] for d in ds]
    params = stack([p for p, _ in parts])
    rest = stack([r for _, r in parts])
    x = jax.random.normal(jax.random.key(0), (5, 2))

    @jax.jit
    @jax.vmap
    def train_call(params, rest):
        d = nnx.merge(graphdef, params, rest, copy=True)
        return d(x, train=True), nnx.state(d, nnx.Not(nnx.Param))

    out, new_rest = train_call(params, rest)
    for r, d in enumerate(ds):
        np.testing.assert_allclose(out[r], d(x, train=True), rtol=1e-5, atol=1e-6)
        for a, b in zip(_uv(d), jax.tree.leaves(unstack(new_rest, r)), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    u_runs = jax.tree.leaves(new_rest)[0]
    assert not np.allclose(u_runs[0], u_runs[1])


# ---------------------------------------------------------------------------------------------
# Through the trainers' step.
# ---------------------------------------------------------------------------------------------

BATCH = 16
MIX = mixtures.ring()


def _build(*, gp=None, seed=0):
    opt = make_optimizer(ml_collections.ConfigDict({"name": "sgd", "lr": 0.05}))
    g = models.create("mixture_mlp_g", rngs=nnx.Rngs(params=seed), latent_dim=4, hidden=8)
    d = models.create(
        "mixture_mlp_d", rngs=nnx.Rngs(params=seed + 100), hidden=8, spectral_norm=True
    )
    spec = StepSpec(
        g_graphdef=nnx.graphdef(g),
        d_graphdef=nnx.graphdef(d),
        g_tx=opt,
        d_tx=opt,
        batch_size=BATCH,
        latent_dim=g.latent_dim,
        latent_dist=g.latent_dist,
        sample_real=lambda k, n: mixtures.sample(MIX, k, n),
        gp=gp,
    )
    return spec, d, init_state(g, d, opt, opt, jax.random.PRNGKey(seed))


def _vectors(rest) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.filter_state(rest, sn.PowerIterationVector))]


def _expected_after_d_update(d: nnx.Module) -> list[np.ndarray]:
    """A D update calls D on the real and on the fake batch: two power iterations on the
    weights before the update (in the leaf order of the split state)."""
    d = nnx.clone(d)
    for layer in _sn_layers(d):
        m = sn.weight_matrix(layer.layer.kernel[...])
        layer.u[...], layer.v[...] = sn.power_iteration(m, layer.u[...], layer.v[...], steps=2)
    return _uv(d)


@pytest.mark.parametrize("gp", [None, "dragan"])
def test_train_step_updates_vectors_once_per_d_call(gp):
    spec, d, state = _build(gp=gp)
    hp = make_hparams(lr_g=0.05, lr_d=0.05, gp_weight=1.0)
    # u, v travel in the non-parameter state; the optimizer never sees them.
    assert _vectors(state.d_rest) and not _vectors(state.d_params)
    n_opt = len(jax.tree.leaves(state.d_opt))
    assert n_opt == len(
        jax.tree.leaves(
            make_optimizer(ml_collections.ConfigDict({"name": "sgd", "lr": 0.05})).init(
                state.d_params
            )
        )
    )
    new, metrics = runners.single(make_train_step(spec), donate=False)(state, None, hp)
    chex.assert_tree_all_finite((new, metrics))
    # u, v and the layout of every other leaf as before
    chex.assert_trees_all_equal_shapes_and_dtypes(new, state)
    want = _expected_after_d_update(d)
    got = _vectors(new.d_rest)
    assert len(got) == len(want)
    # The gradient penalty's calls (inside jax.grad) must not have advanced u, v.
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(
        np.asarray(new.d_params["out"]["layer"]["kernel"][...]),
        np.asarray(state.d_params["out"]["layer"]["kernel"][...]),
    )


def test_train_step_shard_map_and_vmap_agree_with_single():
    spec, _, state = _build()
    hp = make_hparams(lr_g=0.05, lr_d=0.05)
    single = runners.single(make_train_step(spec), scan_steps=2, donate=False)
    s1, _ = single(state, hp)

    mesh = runners.make_mesh(8)
    dp = runners.data_parallel(
        make_train_step(spec), mesh, global_batch=BATCH, scan_steps=2, donate=False
    )
    s8, _ = dp(runners.replicate(state, mesh), hp)
    for a, b in zip(_vectors(s1.d_rest), _vectors(s8.d_rest), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(s1, s8, atol=2e-5, rtol=1e-4)

    _, _, state_b = _build(seed=1)  # same structure: the compiled steps serve it too
    vec = runners.vectorized(make_train_step(spec), scan_steps=2, donate=False)
    sv, _ = vec(stack([state, state_b]), stack([hp, hp]))
    chex.assert_trees_all_close(unstack(sv, 0), s1, atol=1e-5, rtol=1e-5)
    sb, _ = single(state_b, hp)
    chex.assert_trees_all_close(unstack(sv, 1), sb, atol=1e-5, rtol=1e-5)
    assert not np.allclose(_vectors(unstack(sv, 0).d_rest)[0], _vectors(unstack(sv, 1).d_rest)[0])


def test_resume_restores_vectors(tmp_path):
    """Two steps == one step, checkpoint, restore into a fresh state, one more step. u, v are
    saved with the state; restoring without them would change the second step."""
    spec, _, state = _build()
    # Start from unconverged random unit vectors, so one step moves them visibly.
    keys = iter(jax.random.split(jax.random.key(9), 100))
    d_rest = jax.tree.map(
        lambda x: sn._normalize(jax.random.normal(next(keys), x.shape), 1e-12), state.d_rest
    )
    state = state.replace(d_rest=d_rest)
    hp = make_hparams(lr_g=0.05, lr_d=0.05)
    step = runners.single(make_train_step(spec), donate=False)
    s1, _ = step(state, None, hp)
    s2, _ = step(s1, None, hp)
    ckpt = Checkpointer(str(tmp_path / "ckpt"), async_save=False)
    ckpt.save(1, s1, {"step": 1})
    restored, _ = ckpt.restore(1, state)
    ckpt.close()
    for a, b in zip(_vectors(restored.d_rest), _vectors(s1.d_rest), strict=True):
        np.testing.assert_array_equal(a, b)
    resumed, _ = step(restored, None, hp)
    chex.assert_trees_all_close(resumed, s2, atol=0, rtol=0)
    assert not np.allclose(_vectors(s1.d_rest)[0], _vectors(state.d_rest)[0])
