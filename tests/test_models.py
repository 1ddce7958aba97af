"""Tests for lsgan_jax.models: registry, mixture MLPs, PacGAN networks, BatchNorm under jit/grad."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from lsgan_jax import models
from lsgan_jax.models import registry

GENERATORS = ("mixture_mlp_g", "pacgan_g")
DISCRIMINATORS = ("mixture_mlp_d", "pacgan_d")


def _np(x) -> np.ndarray:
    return np.asarray(x[...], dtype=np.float64)


def _n_params(module: nnx.Module) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def _abstract(name: str, **kwargs) -> nnx.Module:
    """Builds a model with shapes only (no initialization compute): fast structural checks."""
    return nnx.eval_shape(lambda: models.create(name, rngs=nnx.Rngs(0), **kwargs))


@pytest.fixture(scope="module")
def default_models() -> dict[str, nnx.Module]:
    """One default-config instance per registered name; clone before mutating."""
    return {name: models.create(name, rngs=nnx.Rngs(0)) for name in GENERATORS + DISCRIMINATORS}


# Small PacGAN G shared by the BatchNorm tests (same shapes -> compiled once).
_SMALL_G = dict(hidden=16, depth=2)


# ---------------------------------------------------------------------------------------------
# NumPy oracles.
# ---------------------------------------------------------------------------------------------


def _np_tanh_mlp(module, x: np.ndarray) -> np.ndarray:
    h = np.asarray(x, np.float64)
    for layer in module.layers:
        h = np.tanh(h @ _np(layer.kernel) + _np(layer.bias))
    return h @ _np(module.out.kernel) + _np(module.out.bias)


def _np_maxout(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, units: int, pieces: int):
    y = x @ kernel + bias
    out = np.empty(y.shape[:-1] + (units,))
    for u in range(units):  # unit u owns columns u*pieces ... u*pieces + pieces - 1
        out[..., u] = y[..., u * pieces : (u + 1) * pieces].max(axis=-1)
    return out


def _np_pacgan_d(d, x: np.ndarray) -> np.ndarray:
    h = np.asarray(x, np.float64)
    for layer in d.layers:
        h = _np_maxout(h, _np(layer.linear.kernel), _np(layer.linear.bias), d.units, d.pieces)
    return h @ _np(d.out.kernel) + _np(d.out.bias)


def _np_pacgan_g(g, z: np.ndarray, *, train: bool, eps: float = 1e-4):
    """Returns (output, per-layer batch means, per-layer batch variances)."""
    h = np.asarray(z, np.float64)
    means, variances = [], []
    for layer, norm in zip(g.layers, g.norms, strict=True):
        a = h @ _np(layer.kernel)
        if train:
            mu, var = a.mean(0), a.var(0)
        else:
            mu, var = _np(norm.mean), _np(norm.var)
        means.append(a.mean(0))
        variances.append(a.var(0))
        a = (a - mu) / np.sqrt(var + eps) * _np(norm.scale) + _np(norm.bias)
        h = np.maximum(a, 0.0)
    return h @ _np(g.out.kernel) + _np(g.out.bias), means, variances


# ---------------------------------------------------------------------------------------------
# Shapes, conventions, parameter counts.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_shapes_and_attributes(name, default_models):
    g = nnx.clone(default_models[name])
    assert isinstance(g.latent_dim, int) and g.latent_dist in ("normal", "uniform")
    assert g.latent_dist == "normal"  # both papers' mixture code samples z ~ N(0, I)
    z = jax.random.normal(jax.random.key(1), (5, g.latent_dim))
    for train in (True, False):
        x = g(z, train=train)
        chex.assert_shape(x, (5, 2))
        chex.assert_type(x, jnp.float32)
        chex.assert_tree_all_finite(x)


@pytest.mark.parametrize("name", DISCRIMINATORS)
def test_discriminator_shapes(name, default_models):
    d = default_models[name]
    x = jax.random.normal(jax.random.key(1), (7, 2))
    for train in (True, False):
        logits = d(x, train=train)
        chex.assert_shape(logits, (7, 1))
        chex.assert_type(logits, jnp.float32)


@pytest.mark.parametrize("name", GENERATORS + DISCRIMINATORS)
def test_every_model_accepts_axis_name_and_dtype(name):
    m = _abstract(name, axis_name="data", dtype=jnp.bfloat16)
    for leaf in jax.tree.leaves(nnx.state(m)):
        assert leaf.dtype == jnp.float32  # params and BN stats stay float32
    graphdef, state = nnx.split(m)
    x = jax.ShapeDtypeStruct((4, m.latent_dim if hasattr(m, "latent_dim") else 2), jnp.float32)
    # train=False: no mapped axis needs to be bound when BN uses running averages.
    out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s, copy=True)(x, train=False), state, x)
    assert out.dtype == jnp.bfloat16


@pytest.fixture(scope="module")
def pacgan_d_pack2() -> nnx.Module:
    return models.create("pacgan_d", rngs=nnx.Rngs(0), pack=2)


def test_pacgan_d_packing_shapes(pacgan_d_pack2):
    d = pacgan_d_pack2
    x = jax.random.normal(jax.random.key(1), (6, 2, 2))
    flat = x.reshape(6, 4)  # [x1, x2] concatenated along features
    chex.assert_shape(d(x), (6, 1))
    np.testing.assert_allclose(d(x), d(flat), rtol=1e-6)
    with pytest.raises(ValueError, match="pack=2"):
        d(jnp.ones((6, 2)))


def test_wrong_latent_dim_is_a_clear_error(default_models):
    g = default_models["mixture_mlp_g"]
    with pytest.raises(ValueError, match=r"\(batch, 256\)"):
        g(jnp.ones((4, 2)))


def test_bad_hyperparameter_values():
    with pytest.raises(ValueError, match="latent_dist"):
        models.create("pacgan_g", rngs=nnx.Rngs(0), latent_dist="gauss")
    with pytest.raises(ValueError, match="momentum"):
        models.create("pacgan_g", rngs=nnx.Rngs(0), momentum=1.5)
    with pytest.raises(ValueError, match="hidden"):
        models.create("mixture_mlp_d", rngs=nnx.Rngs(0), hidden=0)


def test_parameter_counts_by_hand():
    # Official LSGAN mixture MLPs (ls.py): 256-128-128-2 and 2-128-128-1, all with biases.
    g = _abstract("mixture_mlp_g")
    assert _n_params(g) == 256 * 128 + 128 + 128 * 128 + 128 + 128 * 2 + 2 == 49_666
    d = _abstract("mixture_mlp_d")
    assert _n_params(d) == 2 * 128 + 128 + 128 * 128 + 128 + 128 * 1 + 1 == 17_025
    # PacGAN G: bias-free hidden Linears, BN scale+shift, output Linear with bias.
    g = _abstract("pacgan_g")
    expected = 2 * 400 + 3 * 400 * 400 + 4 * (400 + 400) + 400 * 2 + 2
    assert _n_params(g) == expected == 484_802
    n_stats = sum(x.size for x in jax.tree.leaves(nnx.state(g, nnx.BatchStat)))
    assert n_stats == 4 * 2 * 400
    # PacGAN D: maxout layers are Linear(in, 200*5) with bias; final Linear(200, 1).
    for pack in (1, 2):
        d = _abstract("pacgan_d", pack=pack)
        expected = (2 * pack * 1000 + 1000) + 2 * (200 * 1000 + 1000) + 200 + 1
        assert _n_params(d) == expected


def test_configurable_widths():
    g = _abstract("mixture_mlp_g", latent_dim=8, hidden=16, depth=3)
    assert _n_params(g) == 8 * 16 + 16 + 2 * (16 * 16 + 16) + 16 * 2 + 2
    d = _abstract("pacgan_d", units=4, pieces=3, depth=1)
    assert _n_params(d) == 2 * 12 + 12 + 4 + 1


# ---------------------------------------------------------------------------------------------
# Initialization and numerics against NumPy.
# ---------------------------------------------------------------------------------------------


def test_mixture_mlp_orthogonal_init_and_zero_bias(default_models):
    gain = 1.4
    g = default_models["mixture_mlp_g"]
    w = _np(g.layers[1].kernel)  # the square 128x128 layer
    np.testing.assert_allclose(w.T @ w, gain**2 * np.eye(128), atol=1e-4)
    w0 = _np(g.layers[0].kernel)  # 256x128: orthonormal columns, scaled
    np.testing.assert_allclose(w0.T @ w0, gain**2 * np.eye(128), atol=1e-4)
    d = models.create("mixture_mlp_d", rngs=nnx.Rngs(1), gain=0.5)
    w = _np(d.layers[1].kernel)
    np.testing.assert_allclose(w.T @ w, 0.25 * np.eye(128), atol=1e-5)
    for m in (g, d):
        for layer in [*m.layers, m.out]:
            assert np.all(_np(layer.bias) == 0.0)


def test_pacgan_init_normal_002_zero_bias(default_models):
    g = default_models["pacgan_g"]
    w = _np(g.layers[1].kernel)
    assert abs(w.std() - 0.02) < 0.02 * 0.02 and abs(w.mean()) < 1e-3
    assert all(layer.bias is None for layer in g.layers)
    assert np.all(_np(g.out.bias) == 0.0)
    for norm in g.norms:
        assert norm.momentum == 0.95
        assert np.all(_np(norm.scale) == 1.0) and np.all(_np(norm.bias) == 0.0)
    d = default_models["pacgan_d"]
    w = _np(d.layers[1].linear.kernel)
    assert abs(w.std() - 0.02) < 0.02 * 0.02
    assert np.all(_np(d.layers[0].linear.bias) == 0.0) and np.all(_np(d.out.bias) == 0.0)


def test_mixture_d_is_raw_linear_output(default_models):
    d = nnx.clone(default_models["mixture_mlp_d"])
    x = np.asarray(jax.random.normal(jax.random.key(2), (32, 2)))
    np.testing.assert_allclose(d(x), _np_tanh_mlp(d, x), rtol=1e-5, atol=1e-5)
    d.out.kernel[...] = d.out.kernel[...] * 100.0  # a sigmoid could never leave (0, 1)
    out = np.asarray(d(x))
    assert out.max() > 1.0 and out.min() < 0.0
    g = default_models["mixture_mlp_g"]
    z = np.asarray(jax.random.normal(jax.random.key(4), (16, 256)))
    np.testing.assert_allclose(g(z), _np_tanh_mlp(g, z), rtol=1e-4, atol=1e-5)


def test_mixture_d_layer_norm_matches_numpy():
    """layer_norm=True: h_k = tanh(γ·(y − mean)/sqrt(var + 1e-5) + β), y = W_k h + b_k."""
    d = models.create("mixture_mlp_d", rngs=nnx.Rngs(3), hidden=16, layer_norm=True)
    plain = models.create("mixture_mlp_d", rngs=nnx.Rngs(3), hidden=16)
    assert _n_params(d) == _n_params(plain) + 2 * 2 * 16  # γ and β per hidden layer
    rng = np.random.default_rng(0)
    for norm in d.norms:  # non-trivial affine parameters, so the oracle checks them too
        norm.scale[...] = rng.normal(1.0, 0.3, 16).astype(np.float32)
        norm.bias[...] = rng.normal(0.0, 0.3, 16).astype(np.float32)
    x = np.asarray(jax.random.normal(jax.random.key(5), (8, 2)))
    h = x.astype(np.float64)
    for layer, norm in zip(d.layers, d.norms, strict=True):
        y = h @ _np(layer.kernel) + _np(layer.bias)
        mu, var = y.mean(-1, keepdims=True), y.var(-1, keepdims=True)
        h = np.tanh(_np(norm.scale) * (y - mu) / np.sqrt(var + 1e-5) + _np(norm.bias))
    want = h @ _np(d.out.kernel) + _np(d.out.bias)
    np.testing.assert_allclose(d(x), want, rtol=1e-5, atol=1e-5)
    # The default network is unchanged (no norms at all).
    assert len(plain.norms) == 0
    np.testing.assert_allclose(plain(x), _np_tanh_mlp(plain, x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="layer_norm"):
        models.create("mixture_mlp_d", rngs=nnx.Rngs(0), layer_norm="yes")


def test_linear_maxout_matches_numpy():
    layer = models.LinearMaxout(3, 4, 5, rngs=nnx.Rngs(0))
    layer.linear.bias[...] = jax.random.normal(jax.random.key(9), (20,))
    x = np.asarray(jax.random.normal(jax.random.key(1), (10, 3)))
    expected = _np_maxout(x, _np(layer.linear.kernel), _np(layer.linear.bias), 4, 5)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_pacgan_d_matches_numpy_maxout_network(pacgan_d_pack2):
    d = nnx.clone(pacgan_d_pack2)
    x = np.asarray(jax.random.normal(jax.random.key(1), (16, 4)))
    np.testing.assert_allclose(d(x), _np_pacgan_d(d, x), rtol=1e-4, atol=1e-6)
    d.out.kernel[...] = d.out.kernel[...] * 1e4
    assert np.asarray(d(x)).max() > 1.0  # raw logits, no sigmoid
    d.out.bias[...] = jnp.full((1,), -1e3)
    assert np.asarray(d(x)).min() < 0.0


# ---------------------------------------------------------------------------------------------
# BatchNorm: train/eval semantics, functional pattern under jit + grad, sync BN under shard_map.
# ---------------------------------------------------------------------------------------------


def test_pacgan_g_batchnorm_train_and_eval():
    g = models.create("pacgan_g", rngs=nnx.Rngs(0), **_SMALL_G)
    z = np.asarray(jax.random.normal(jax.random.key(1), (32, 2)) * 2.0 + 1.0)
    expected, means, variances = _np_pacgan_g(g, z, train=True)
    out = g(z, train=True)  # stateful call: batch stats, running averages updated in place
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    for norm, mu, var in zip(g.norms, means, variances, strict=True):
        # Flax: ra = momentum * ra + (1 - momentum) * batch; init mean 0, var 1.
        np.testing.assert_allclose(_np(norm.mean), 0.05 * mu, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(_np(norm.var), 0.95 + 0.05 * var, rtol=1e-4, atol=1e-6)
    before = jax.tree.map(np.asarray, nnx.state(g, nnx.BatchStat))
    out_eval = g(z, train=False)
    expected_eval, _, _ = _np_pacgan_g(g, z, train=False)
    np.testing.assert_allclose(out_eval, expected_eval, rtol=1e-4, atol=1e-5)
    after = jax.tree.map(np.asarray, nnx.state(g, nnx.BatchStat))
    chex.assert_trees_all_equal(before, after)  # eval leaves running stats alone
    assert not np.allclose(out_eval, out, atol=1e-3)  # eval really differs from train


def test_functional_split_merge_under_jit_and_grad():
    """The trainer's pattern: split once, merge(copy=True) inside the differentiated function."""
    g = models.create("pacgan_g", rngs=nnx.Rngs(0), **_SMALL_G)
    graphdef, params, rest = nnx.split(g, nnx.Param, ...)
    z = jax.random.normal(jax.random.key(1), (32, 2)) + 1.0

    def loss_fn(params, rest, z):
        m = nnx.merge(graphdef, params, rest, copy=True)
        out = m(z, train=True)
        new_rest = nnx.state(m, nnx.Not(nnx.Param))
        return jnp.mean((out - 1.0) ** 2), new_rest

    step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    (loss, new_rest), grads = step(params, rest, z)
    # Running mean moved; the caller's `rest` did not.
    mean0 = rest["norms"][0]["mean"][...]
    new_mean0 = new_rest["norms"][0]["mean"][...]
    assert np.all(np.asarray(mean0) == 0.0)
    assert np.abs(np.asarray(new_mean0)).max() > 1e-4
    _, means, _ = _np_pacgan_g(g, np.asarray(z), train=True)
    np.testing.assert_allclose(new_mean0, 0.05 * means[0], rtol=1e-4, atol=1e-6)
    # Gradients are a Param-state pytree, finite, nonzero, and match a finite difference.
    chex.assert_trees_all_equal_structs(grads, params)
    chex.assert_tree_all_finite(grads)
    g_out = grads["out"]["bias"][...]
    eps = 1e-3
    bumped = jax.tree.map(lambda x: x, params)
    bumped["out"]["bias"][...] = params["out"]["bias"][...] + jnp.array([eps, 0.0])
    (loss_b, _), _ = step(bumped, rest, z)
    np.testing.assert_allclose((loss_b - loss) / eps, g_out[0], rtol=2e-2, atol=1e-4)
    # Eval mode through the same pattern uses the new running stats and changes nothing.
    m = nnx.merge(graphdef, params, new_rest, copy=True)
    expected_eval, _, _ = _np_pacgan_g(m, np.asarray(z), train=False)
    np.testing.assert_allclose(m(z, train=False), expected_eval, rtol=1e-4, atol=1e-5)


def test_sync_batchnorm_under_shard_map_matches_single_device():
    n_dev = jax.device_count()
    assert n_dev == 8, "conftest.py should provide 8 fake CPU devices"
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    kw = _SMALL_G
    g_sync = models.create("pacgan_g", rngs=nnx.Rngs(0), axis_name="data", **kw)
    g_ref = models.create("pacgan_g", rngs=nnx.Rngs(0), **kw)
    z = jax.random.normal(jax.random.key(1), (64, 2)) * 1.5 + 0.5

    def forward(graphdef, state, z):
        m = nnx.merge(graphdef, state, copy=True)
        out = m(z, train=True)
        return out, nnx.state(m, nnx.BatchStat)

    gd_sync, st_sync = nnx.split(g_sync)
    gd_ref, st_ref = nnx.split(g_ref)
    sharded = jax.jit(
        jax.shard_map(
            lambda state, z: forward(gd_sync, state, z),
            mesh=mesh,
            in_specs=(P(), P("data")),
            out_specs=(P("data"), P()),
        )
    )
    out_sharded, stats_sharded = sharded(st_sync, z)
    out_ref, stats_ref = jax.jit(lambda state, z: forward(gd_ref, state, z))(st_ref, z)
    np.testing.assert_allclose(out_sharded, out_ref, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(stats_sharded, stats_ref, rtol=1e-4, atol=1e-6)
    # Without sync, per-device statistics would differ from the global ones.
    unsynced = jax.jit(
        jax.shard_map(
            lambda state, z: forward(gd_ref, state, z)[0],
            mesh=mesh,
            in_specs=(P(), P("data")),
            out_specs=P("data"),
        )
    )(st_ref, z)
    assert not np.allclose(unsynced, out_ref, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Registry.
# ---------------------------------------------------------------------------------------------


def test_registry_create_by_name(default_models):
    names = models.available()
    assert set(GENERATORS + DISCRIMINATORS) <= set(names)
    assert list(names) == sorted(names)
    assert isinstance(default_models["mixture_mlp_g"], models.MixtureMLPGenerator)
    assert isinstance(default_models["mixture_mlp_d"], models.MixtureMLPDiscriminator)
    assert isinstance(default_models["pacgan_g"], models.PacGANGenerator)
    assert isinstance(default_models["pacgan_d"], models.PacGANDiscriminator)
    assert models.get("pacgan_d") is models.PacGANDiscriminator
    assert models.accepted_kwargs("pacgan_d")["units"] == 200
    assert models.accepted_kwargs("mixture_mlp_g")["latent_dim"] == 256


def test_registry_unknown_name_suggests():
    with pytest.raises(ValueError, match="Did you mean 'pacgan_g'") as err:
        models.create("pacgan_gen", rngs=nnx.Rngs(0))
    assert "mixture_mlp_d" in str(err.value)  # lists the valid names


def test_registry_bad_kwarg_names_model():
    with pytest.raises(TypeError, match="pacgan_g") as err:
        models.create("pacgan_g", rngs=nnx.Rngs(0), hiden=64)
    msg = str(err.value)
    assert "'hiden'" in msg and "did you mean 'hidden'" in msg and "latent_dim" in msg


@pytest.mark.parametrize(
    "name, base, changed",
    [
        ("digit_g", "dcgan_g", {"image_size": 28, "channels": 1}),
        ("lsun_d", "dcgan_d", {"image_size": 112}),
    ],
)
def test_registry_partials_only_change_defaults(name, base, changed):
    """Default-only variants are functools.partials: same parameters, their own defaults, the
    same network as the base model built with those values."""
    import functools  # noqa: PLC0415

    assert isinstance(models.get(name), functools.partial)
    variant, parent = models.accepted_kwargs(name), models.accepted_kwargs(base)
    assert list(variant) == list(parent)
    assert {k: v for k, v in variant.items() if parent[k] != v} == changed
    a = _abstract(name)
    b = _abstract(base, **changed)
    assert type(a) is type(b)
    chex.assert_trees_all_equal_shapes(nnx.state(a), nnx.state(b))
    with pytest.raises(TypeError, match=f"{name}.*did you mean 'image_size'"):
        models.create(name, rngs=nnx.Rngs(0), imagesize=32)


def test_registry_register_function_builder_and_duplicates():
    name = "_test_tiny_d"

    def build(*, width: int, rngs: nnx.Rngs) -> nnx.Module:
        return nnx.Linear(2, width, rngs=rngs)

    try:
        assert models.register(name)(build) is build
        assert name in models.available()
        assert models.create(name, rngs=nnx.Rngs(0), width=3).out_features == 3
        with pytest.raises(TypeError, match="missing required keyword.*'width'"):
            models.create(name, rngs=nnx.Rngs(0))
        with pytest.raises(ValueError, match="already registered"):
            models.register(name)(lambda *, rngs: None)
        models.register(name)(build)  # re-registering the same object is a no-op
    finally:
        registry._REGISTRY.pop(name, None)
    assert name not in models.available()


def test_grad_pattern_under_shard_map_matches_single_device():
    """Sync-BN gradients: shard_map(check_vma=False) + pmean equals the global-batch gradient."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    z = jax.random.normal(jax.random.key(3), (64, 2)) + 0.5

    def make_step(axis_name):
        g = models.create("pacgan_g", rngs=nnx.Rngs(0), axis_name=axis_name, **_SMALL_G)
        graphdef, params, rest = nnx.split(g, nnx.Param, ...)

        def loss_fn(params, rest, z):
            m = nnx.merge(graphdef, params, rest, copy=True)
            out = m(z, train=True)
            return jnp.mean((out - 1.0) ** 2), nnx.state(m, nnx.Not(nnx.Param))

        def step(params, rest, z):
            (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, z)
            if axis_name is not None:
                loss, grads = jax.lax.pmean((loss, grads), axis_name)
            return loss, new_rest, grads

        return step, params, rest

    step, params, rest = make_step(None)
    ref = jax.jit(step)(params, rest, z)
    step, params, rest = make_step("data")
    sharded = jax.jit(
        jax.shard_map(
            step,
            mesh=mesh,
            in_specs=(P(), P(), P("data")),
            out_specs=P(),
            check_vma=False,  # with check_vma=True grads w.r.t. P() inputs come back psum'd
        )
    )(params, rest, z)
    chex.assert_trees_all_close(sharded, ref, rtol=1e-4, atol=1e-6)
