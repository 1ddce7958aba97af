"""Tests for the image GANs: lsun_*, dcgan_*, digit_*, conditional_* and the TF-exact deconv."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from lsgan_jax import models
from lsgan_jax.models import layers
from lsgan_jax.models.layers import count_batchnorms, count_params


@pytest.fixture(autouse=True, scope="module")
def _fast_compiles():
    """XLA -O0 for this module: these tests check numbers, and compiling dominates their time on
    2 CPU cores (about 40 % less). Restored afterwards; jit caches are keyed on the setting."""
    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


def _abstract(name: str, **kwargs) -> nnx.Module:
    """Shapes only (no initialization compute): fast counts for the full-size models."""
    return nnx.eval_shape(lambda: models.create(name, rngs=nnx.Rngs(0), **kwargs))


def _fill(path, leaf, rng: np.random.Generator):
    kind = path[-2].key if len(path) >= 2 else None
    shape, dtype = leaf.shape, leaf.dtype
    if kind == "kernel":  # ~ unit-variance activations
        fan_in = int(np.prod(shape[:-1]))
        value = rng.normal(size=shape) / np.sqrt(fan_in)
    elif kind == "scale":
        value = 1.0 + 0.1 * rng.normal(size=shape)
    elif kind == "var":
        value = np.ones(shape)
    elif kind == "mean":
        value = np.zeros(shape)
    else:  # biases
        value = 0.1 * rng.normal(size=shape)
    return jnp.asarray(value, dtype)


def _create(name: str, seed: int = 0, **kwargs) -> nnx.Module:
    """Builds ``name`` abstractly and fills its variables from NumPy (no per-shape RNG compiles).

    The real initializers are exercised in ``test_init_matches_official_ops`` and, abstractly, by
    every ``nnx.eval_shape`` construction.
    """
    graphdef, state = nnx.split(_abstract(name, **kwargs))
    rng = np.random.default_rng(seed)
    state = jax.tree_util.tree_map_with_path(lambda p, x: _fill(p, x, rng), state)
    return nnx.merge(graphdef, state)


_JITTED: dict = {}


def _apply(module: nnx.Module, x: jax.Array, labels=None, *, train: bool = True) -> jax.Array:
    """``module(x, labels=labels, train=train)`` jitted (one compile per model and shapes, cached).

    Functional: running statistics of ``module`` are not updated.
    """
    graphdef, state = nnx.split(module)
    key = (graphdef, train)
    if key not in _JITTED:

        def fn(state, x, labels):
            return nnx.merge(graphdef, state, copy=True)(x, labels=labels, train=train)

        _JITTED[key] = jax.jit(fn)
    return _JITTED[key](state, x, labels)


def _latents(g, batch: int = 4, seed: int = 0) -> jax.Array:
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(-1.0, 1.0, (batch, g.latent_dim)), jnp.float32)


def _normal(shape, seed: int) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


# ---------------------------------------------------------------------------------------------
# NumPy oracle for TF ``conv2d_transpose`` (SAME): the adjoint of the SAME ``conv2d``.
# ---------------------------------------------------------------------------------------------


def _np_tf_conv2d_transpose(x, w_flax, stride, out_hw):
    """TF: ``y[i s + t - p_b] += x[i] w_tf[t]``, ``w_tf = w_flax[::-1, ::-1]`` (in/out swapped)."""
    x = np.asarray(x, np.float64)
    w_tf = np.asarray(w_flax, np.float64)[::-1, ::-1]
    b, h, w, _ = x.shape
    k = w_tf.shape[0]
    oh, ow = out_hw
    pb_h = max((h - 1) * stride + k - oh, 0) // 2
    pb_w = max((w - 1) * stride + k - ow, 0) // 2
    y = np.zeros((b, oh, ow, w_tf.shape[-1]))
    for i in range(h):
        for j in range(w):
            for a in range(k):
                for c in range(k):
                    o1, o2 = i * stride + a - pb_h, j * stride + c - pb_w
                    if 0 <= o1 < oh and 0 <= o2 < ow:
                        y[:, o1, o2] += x[:, i, j] @ w_tf[a, c]
    return y


# (in_h, in_w, out_h, out_w): even doubling, the digits' 4 -> 7, non-square, odd/even mixes.
_DECONV_SIZES = [(4, 4, 8, 8), (4, 4, 7, 7), (3, 5, 5, 10), (5, 4, 10, 7)]


@pytest.mark.parametrize("sizes", _DECONV_SIZES, ids=lambda s: "{}x{}->{}x{}".format(*s))
def test_conv_transpose_impls_match_tf_oracle_values_and_grads(sizes):
    """Both impls == TF oracle; subpixel grads wrt x, kernel == conv_transpose grads (k=3,4,5)."""
    h, w, oh, ow = sizes
    seed = h * 100 + w * 10 + ow
    x = _normal((2, h, w, 3), seed)
    kernels = {k: _normal((k, k, 3, 5), seed + k) for k in (3, 4, 5)}
    cot = _normal((2, oh, ow, 5), seed + 1)

    @jax.jit
    def run(x, kernels):  # every k and both impls in one compile: outputs, grads wrt (x, w)
        out = {}
        for k, kernel in kernels.items():
            for name, fn in (
                ("ct", lambda x, w: layers.conv_transpose(x, w, stride=2, output_size=(oh, ow))),
                ("sp", lambda x, w: layers.subpixel_conv_transpose(x, w, output_size=(oh, ow))),
            ):
                y, vjp = jax.vjp(fn, x, kernel)
                out[k, name] = (y, *vjp(cot))
        return out

    res = run(x, kernels)
    for k, kernel in kernels.items():
        y_ct, gx_ct, gw_ct = res[k, "ct"]
        y_sp, gx_sp, gw_sp = res[k, "sp"]
        expected = _np_tf_conv2d_transpose(x, kernel, 2, (oh, ow))
        chex.assert_shape([y_ct, y_sp], (2, oh, ow, 5))
        np.testing.assert_allclose(y_ct, expected, rtol=1e-4, atol=1e-4, err_msg=f"k={k}")
        np.testing.assert_allclose(y_sp, expected, rtol=1e-4, atol=1e-4, err_msg=f"k={k}")
        np.testing.assert_allclose(gx_sp, gx_ct, rtol=1e-4, atol=1e-4, err_msg=f"k={k}")
        np.testing.assert_allclose(gw_sp, gw_ct, rtol=1e-4, atol=1e-4, err_msg=f"k={k}")
        # Independent check of the kernel gradient at tap (0, 0): d/dw[0,0,i,o] of sum(y * cot).
        gw_np = np.zeros((3, 5))
        for i in range(3):
            for o in range(5):
                e = np.zeros(kernel.shape)
                e[0, 0, i, o] = 1.0
                gw_np[i, o] = np.sum(_np_tf_conv2d_transpose(x, e, 2, (oh, ow)) * np.asarray(cot))
        np.testing.assert_allclose(gw_sp[0, 0], gw_np, rtol=1e-4, atol=1e-4, err_msg=f"k={k}")


def test_stride1_conv_transpose_matches_tf_oracle():
    x = _normal((2, 5, 6, 3), 0)
    for k in (3, 4, 5):
        kernel = _normal((k, k, 3, 4), k)
        y = jax.jit(lambda x, w: layers.conv_transpose(x, w, stride=1))(x, kernel)
        expected = _np_tf_conv2d_transpose(x, kernel, 1, (5, 6))
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_auto_impl_picks_subpixel_on_cpu_only(monkeypatch):
    assert layers.resolve_deconv_impl("auto") == "subpixel"  # tests run on CPU
    monkeypatch.setattr(layers.jax, "default_backend", lambda: "gpu")
    assert layers.resolve_deconv_impl("auto") == "conv_transpose"
    assert layers.resolve_deconv_impl("subpixel") == "subpixel"


def test_conv_transpose2x_module_impls_share_parameters():
    x = _normal((2, 4, 4, 6), 0)
    a = layers.ConvTranspose2x(6, 3, kernel_size=5, impl="conv_transpose", rngs=nnx.Rngs(0))
    b = layers.ConvTranspose2x(6, 3, kernel_size=5, impl="subpixel", rngs=nnx.Rngs(0))
    chex.assert_trees_all_equal(nnx.state(a, nnx.Param), nnx.state(b, nnx.Param))
    y_a, y_b, y_7 = jax.jit(lambda x: (a(x), b(x), b(x, output_size=(7, 7))))(x)
    np.testing.assert_allclose(y_a, y_b, rtol=1e-5, atol=1e-5)
    chex.assert_shape(y_7, (2, 7, 7, 3))
    expected = _np_tf_conv2d_transpose(x, a.kernel[...], 2, (8, 8)) + np.asarray(a.bias[...])
    np.testing.assert_allclose(y_b, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="only to sizes 7..8"):
        a(x, output_size=(6, 6))
    with pytest.raises(ValueError, match="deconv impl"):
        layers.ConvTranspose2x(6, 3, impl="fft", rngs=nnx.Rngs(0))
    assert a.kernel.shape == (5, 5, 6, 3)


# Input sizes of SAME stride-2 convs: even, odd (the digits' 7 -> 4), non-square, 1 -> 1.
_CONV_SIZES = [(8, 8), (7, 7), (5, 6), (1, 1)]


@pytest.mark.parametrize("hw", _CONV_SIZES, ids=lambda s: "{}x{}".format(*s))
def test_stride2_conv_subpixel_input_gradient_matches_xla(hw):
    """`stride2_conv` == XLA's SAME stride-2 conv: values, grads wrt (x, w), and the second-order
    gradient a gradient penalty needs (d/dw of ||dD/dx||^2), for k = 3, 4, 5."""
    x = _normal((2, *hw, 3), hw[0] * 10 + hw[1])
    kernels = {k: _normal((k, k, 3, 4), k) for k in (3, 4, 5)}
    out_hw = (-(-hw[0] // 2), -(-hw[1] // 2))
    cot = _normal((2, *out_hw, 4), 7)

    def xla(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    @jax.jit
    def run(x, kernels):
        out = {}
        for k, kernel in kernels.items():
            for name, fn in (("xla", xla), ("sp", layers.stride2_conv)):
                y, vjp = jax.vjp(fn, x, kernel)

                def penalty(w, fn=fn):  # ||d<conv(x, w)^2, cot>/dx||^2: reverse over reverse
                    gx = jax.grad(lambda x: jnp.sum(fn(x, w) ** 2 * cot))(x)
                    return jnp.sum(gx**2)

                out[k, name] = (y, *vjp(cot), jax.grad(penalty)(kernel))
        return out

    res = run(x, kernels)
    for k in kernels:
        for a, b, what in zip(res[k, "sp"], res[k, "xla"], ("y", "dx", "dw", "d2w"), strict=True):
            scale = float(np.abs(b).max())
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale, err_msg=f"{what} k={k}")


def test_conv2d_impl_switch_and_fallbacks():
    """`conv2d(impl=...)` keeps parameters and values; non-SAME/strided cases fall back to XLA."""
    x = _normal((2, 9, 9, 3), 1)
    a = layers.conv2d(3, 4, kernel_size=5, impl="conv_transpose", dtype=None, rngs=nnx.Rngs(0))
    b = layers.conv2d(3, 4, kernel_size=5, impl="subpixel", dtype=None, rngs=nnx.Rngs(0))
    assert b.conv_general_dilated is layers.conv_general_dilated_subpixel_grad
    assert a.conv_general_dilated is jax.lax.conv_general_dilated
    chex.assert_trees_all_equal(nnx.state(a, nnx.Param), nnx.state(b, nnx.Param))
    np.testing.assert_allclose(b(x), a(x), rtol=1e-5, atol=1e-6)
    s1 = layers.conv2d(3, 4, strides=1, impl="subpixel", dtype=None, rngs=nnx.Rngs(0))
    assert s1.conv_general_dilated is jax.lax.conv_general_dilated  # stride 1: nothing to fix
    w = _normal((3, 3, 3, 4), 2)
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    valid = layers.conv_general_dilated_subpixel_grad(x, w, (2, 2), "VALID", dimension_numbers=dn)
    ref = jax.lax.conv_general_dilated(x, w, (2, 2), "VALID", dimension_numbers=dn)
    np.testing.assert_allclose(valid, ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Parameter counts (official architectures; abstract construction, no compute).
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("lsun_g", {}, 15_591_427),
        ("lsun_d", {}, 4_333_441),
        ("conditional_g", {"num_classes": 3740}, 9_417_857),
        ("conditional_d", {"num_classes": 3740}, 21_392_155),
    ],
)
def test_official_parameter_counts(name, kwargs, expected):
    """paper.md section 2: the counts include BN gamma/beta (TF trainable variables), not stats."""
    m = _abstract(name, **kwargs)
    assert count_params(m) == expected
    n_stats = sum(int(x.size) for x in jax.tree.leaves(nnx.state(m, nnx.BatchStat)))
    n_gamma_beta = sum(
        int(x.size)
        for _, bn in nnx.iter_graph(m)
        if isinstance(bn, nnx.BatchNorm)
        for x in (bn.scale, bn.bias)
    )
    assert n_stats == n_gamma_beta  # mean + var per feature, excluded from the count


def test_lsun_architecture_matches_vgg_py():
    g = _abstract("lsun_g")
    strides = [d.stride for d in g.deconvs]
    widths = [d.out_features for d in g.deconvs]
    assert strides == [2, 1, 2, 1, 2, 2, 1]
    assert widths == [256, 256, 256, 256, 128, 64, 3]
    assert all(d.kernel.shape[:2] == (3, 3) for d in g.deconvs)
    assert g.project.kernel.shape == (1024, 7 * 7 * 256)
    assert g.latent_dim == 1024 and g.latent_dist == "uniform" and g.image_shape == (112, 112, 3)
    assert count_batchnorms(g) == 7
    d = _abstract("lsun_d")
    assert [c.kernel.shape for c in d.convs] == [
        (5, 5, 3, 64),
        (5, 5, 64, 128),
        (5, 5, 128, 256),
        (5, 5, 256, 512),
    ]
    assert d.out.kernel.shape == (7 * 7 * 512, 1)
    assert count_batchnorms(d) == 3


# ---------------------------------------------------------------------------------------------
# Forward shapes, ranges, raw logits.
# ---------------------------------------------------------------------------------------------

_SMALL = {
    "dcgan28": ("dcgan_g", "dcgan_d", dict(image_size=28, channels=1), {}),
    "dcgan32": ("dcgan_g", "dcgan_d", dict(image_size=32, channels=3), {}),
    "dcgan128": ("dcgan_g", "dcgan_d", dict(image_size=128, channels=3), {}),
    "dcgan64_k4": ("dcgan_g", "dcgan_d", dict(image_size=64, kernel_size=4), {}),
    "lsun112": ("lsun_g", "lsun_d", dict(image_size=112), {}),
    "digit28": ("digit_g", "digit_d", {}, {}),
    "conditional28": ("conditional_g", "conditional_d", dict(num_classes=10), {}),
}


def _small_pair(key: str, **extra):
    g_name, d_name, shared, _ = _SMALL[key]
    g_kw, d_kw = dict(shared), dict(shared)
    if g_name == "digit_g":
        g_kw.update(base_features=2, latent_dim=8)
        d_kw.update(features=(3, 4), hidden=6)
    elif g_name == "conditional_g":
        g_kw.update(base_features=4, label_features=5, latent_dim=8)
        d_kw.update(base_features=3, label_features=5, hidden=6)
    else:
        g_kw.update(base_features=2, latent_dim=8)
        d_kw.update(base_features=2)
    g_kw.update(extra.get("g", {}))
    d_kw.update(extra.get("d", {}))
    return _create(g_name, **g_kw), _create(d_name, **d_kw)


@pytest.mark.parametrize("key", list(_SMALL))
def test_forward_shapes_ranges_and_raw_logits(key):
    g, d = _small_pair(key)
    labels = jnp.arange(4) % g.num_classes if g.num_classes else None
    z = _latents(g)
    (g_def, g_state), (d_def, d_state) = nnx.split(g), nnx.split(d)
    # Raw logits: with the final linear layer set to (0, -3) the output is exactly -3 (no sigmoid).
    d.out.kernel[...] = jnp.zeros_like(d.out.kernel[...])
    d.out.bias[...] = jnp.full_like(d.out.bias[...], -3.0)
    d_state_const = nnx.state(d)

    @jax.jit  # one compile for all calls
    def run(g_state, d_state, d_state_const, z, labels):
        x = nnx.merge(g_def, g_state, copy=True)(z, labels=labels, train=True)
        x_eval = nnx.merge(g_def, g_state, copy=True)(z, labels=labels, train=False)
        logits = nnx.merge(d_def, d_state, copy=True)(x, labels=labels, train=True)
        const = nnx.merge(d_def, d_state_const, copy=True)(x, labels=labels, train=False)
        return x, x_eval, logits, const

    x, x_eval, logits, const = run(g_state, d_state, d_state_const, z, labels)
    h, w, c = g.image_shape
    chex.assert_shape([x, x_eval], (4, h, w, c))
    chex.assert_type([x, x_eval, logits], jnp.float32)
    assert np.all(np.abs(np.asarray(x)) <= 1.0) and np.std(np.asarray(x)) > 1e-3
    assert g.image_shape == d.image_shape and g.num_classes == d.num_classes
    chex.assert_shape([logits, const], (4, 1))
    np.testing.assert_array_equal(const, -3.0)


def test_expected_intermediate_sizes():
    assert _abstract("dcgan_g", image_size=28).sizes == (4, 7, 14, 28)
    assert _abstract("digit_g").sizes == (4, 7, 14, 28)
    assert _abstract("dcgan_g", image_size=64).sizes == (4, 8, 16, 32, 64)
    assert _abstract("dcgan_g", image_size=128).sizes == (8, 16, 32, 64, 128)
    assert _abstract("dcgan_g", image_size=32).sizes == (2, 4, 8, 16, 32)
    assert _abstract("dcgan_g", image_size=32, num_upsamples=3).sizes == (4, 8, 16, 32)
    g = _abstract("dcgan_g")
    assert g.widths == (512, 256, 128, 64)
    assert g.project_norm.scale.shape == (4 * 4 * 512,)  # improved_LSGAN: BN per linear feature
    g = _abstract("dcgan_g", project_bn="channels")
    assert g.project_norm.scale.shape == (512,)


def test_conditional_generator_output_switch_and_labels():
    g, d = _small_pair("conditional28")
    small = dict(num_classes=10, base_features=4, label_features=5, latent_dim=8)
    g_sig = _create("conditional_g", output="sigmoid", **small)
    z = _latents(g)
    labels = jnp.array([0, 3, 9, 3])
    x_sig, x_tanh = _apply(g_sig, z, labels), _apply(g, z, labels)
    assert np.all((np.asarray(x_sig) >= 0) & (np.asarray(x_sig) <= 1))
    assert np.any(np.asarray(x_tanh) < 0)
    # Same parameters (same seed): sigmoid(a) = (tanh(a / 2) + 1) / 2 and tanh(a) are monotone
    # in the same pre-activation a, so tanh(a) = tanh(2 artanh(2 sigmoid(a) - 1)).
    x_from_sig = np.tanh(2.0 * np.arctanh(np.clip(2.0 * np.asarray(x_sig, np.float64) - 1, -1, 1)))
    np.testing.assert_allclose(x_from_sig, x_tanh, atol=2e-3)
    # Int ids == one-hot rows; other labels change the output.
    onehot = jax.nn.one_hot(labels, 10)
    np.testing.assert_allclose(_apply(g, z, onehot), x_tanh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_apply(d, x_tanh, onehot), _apply(d, x_tanh, labels), rtol=1e-5)
    assert not np.allclose(_apply(g, z, (labels + 1) % 10), x_tanh)
    with pytest.raises(ValueError, match="class-conditional"):
        g(z)
    with pytest.raises(ValueError, match="labels"):
        d(x_tanh, labels=jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="batch size"):
        d(x_tanh, labels=labels[:2])
    assert g.num_classes == 10 and g.latent_dist == "uniform" and g.image_shape == (28, 28, 1)


def test_unconditional_models_ignore_labels_and_validate_inputs():
    g, d = _small_pair("dcgan32")
    z = _latents(g)
    g_def, g_state = nnx.split(g)

    @jax.jit
    def both(state, z, labels):
        m = nnx.merge(g_def, state, copy=True)
        return m(z, train=False), m(z, labels=labels, train=False)

    without, with_labels = both(g_state, z, jnp.arange(4))
    np.testing.assert_array_equal(without, with_labels)
    assert g.num_classes == 0 and d.num_classes == 0 and g.latent_dist == "uniform"
    with pytest.raises(ValueError, match="z of shape"):
        g(jnp.zeros((4, g.latent_dim + 1)))
    with pytest.raises(ValueError, match="images of shape"):
        d(jnp.zeros((4, 16, 16, 3)))
    with pytest.raises(ValueError, match="multiple of 16"):
        _abstract("lsun_g", image_size=100)
    with pytest.raises(ValueError, match="deconv impl"):
        _abstract("dcgan_g", deconv_impl="fast")


# ---------------------------------------------------------------------------------------------
# BatchNorm switches, init, train/eval.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs, n_with",
    [
        ("dcgan_g", {"g_batchnorm": False}, 4),
        ("dcgan_d", {"d_batchnorm": False}, 3),
        ("digit_g", {"g_batchnorm": False}, 3),
        ("digit_d", {"d_batchnorm": False}, 2),
    ],
)
def test_batchnorm_switch_removes_every_batchnorm(name, kwargs, n_with):
    assert count_batchnorms(_abstract(name)) == n_with
    m = _abstract(name, **kwargs)
    assert count_batchnorms(m) == 0
    assert jax.tree.leaves(nnx.state(m, nnx.BatchStat)) == []


def test_init_matches_official_ops():
    """The layer factories every image model is built from initialize as xudonmao ``ops.py``."""
    rngs = nnx.Rngs(0)
    deconv = layers.ConvTranspose2x(64, 32, kernel_size=5, rngs=rngs)
    conv = layers.conv2d(64, 32, kernel_size=5, dtype=None, rngs=rngs)
    dense = layers.linear(256, 128, dtype=None, rngs=rngs)
    w = np.asarray(deconv.kernel[...])
    assert abs(w.std() - 0.02) < 0.001 and np.abs(w).max() > 0.06  # N(0, 0.02), not truncated
    w = np.asarray(conv.kernel[...])  # truncated at 2 sigma: std 0.02 * 0.8796
    assert abs(w.std() - 0.02 * 0.8796) < 0.001 and np.abs(w).max() <= 0.04
    assert abs(np.asarray(dense.kernel[...]).std() - 0.02) < 0.001
    for b in (deconv.bias, conv.bias, dense.bias):
        np.testing.assert_array_equal(b[...], 0.0)
    bn = layers.batch_norm(512, axis_name=None, dtype=None, rngs=rngs)
    np.testing.assert_array_equal(bn.scale[...], 1.0)
    np.testing.assert_array_equal(bn.bias[...], 0.0)
    assert bn.momentum == 0.9 and bn.epsilon == 1e-5  # TF decay 0.9, eps 1e-5
    bn = layers.batch_norm(512, axis_name=None, dtype=None, rngs=rngs, scale_std=0.02)
    gamma = np.asarray(bn.scale[...])  # stability_comparison/*/ops.py: gamma ~ N(1, 0.02)
    assert abs(gamma.mean() - 1.0) < 0.005 and 0.015 < gamma.std() < 0.025
    # The models wire bn_scale_std through to every BatchNorm.
    d = _abstract("dcgan_d", bn_scale_std=0.02)
    assert count_batchnorms(d) == 3


def test_train_updates_running_stats_eval_does_not():
    g, _ = _small_pair("dcgan32")
    graphdef, state = nnx.split(g)
    z = _latents(g)

    @jax.jit
    def stats_after(state, z):
        out = {}
        for train in (False, True):
            m = nnx.merge(graphdef, state, copy=True)
            m(z, train=train)
            out[train] = jax.tree.leaves(nnx.state(m, nnx.BatchStat))
        return out

    res = stats_after(state, z)
    before = jax.tree.leaves(nnx.state(g, nnx.BatchStat))
    chex.assert_trees_all_equal(res[False], before)
    assert not any(np.allclose(a, b) for a, b in zip(res[True], before, strict=True))


# ---------------------------------------------------------------------------------------------
# deconv_impl at the model level: identical outputs and parameter gradients.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["digit28"])  # includes the odd 4 -> 7 deconv
def test_model_deconv_impls_agree(key):
    g_ct, _ = _small_pair(key, g={"deconv_impl": "conv_transpose"})
    g_sp, _ = _small_pair(key, g={"deconv_impl": "subpixel"})
    gd_ct, params, rest = nnx.split(g_ct, nnx.Param, ...)
    gd_sp, params_sp, _ = nnx.split(g_sp, nnx.Param, ...)
    chex.assert_trees_all_equal(params, params_sp)  # same parameters: checkpoints interchange
    z = _latents(g_ct)
    cot = _normal((4, *g_ct.image_shape), 5)

    def loss(graphdef, params, rest, z):
        m = nnx.merge(graphdef, params, rest, copy=True)
        return jnp.sum(m(z, train=True) * cot)

    @jax.jit
    def both(params, rest, z):
        grad = jax.value_and_grad(loss, argnums=1)
        return grad(gd_ct, params, rest, z), grad(gd_sp, params, rest, z)

    (val_ct, grad_ct), (val_sp, grad_sp) = both(params, rest, z)
    np.testing.assert_allclose(val_sp, val_ct, rtol=1e-4)
    # Float tolerance relative to the gradient scale (biases before a train-mode BN have an exact
    # zero gradient, computed as rounding noise by both impls).
    scale = max(float(np.abs(x).max()) for x in jax.tree.leaves(grad_ct))
    chex.assert_trees_all_close(grad_sp, grad_ct, rtol=1e-3, atol=1e-5 * scale)


@pytest.mark.parametrize("key", ["digit28", "dcgan32", "conditional28"])
def test_discriminator_deconv_impls_agree(key):
    """D's input gradients through the sub-pixel transposed conv == XLA's, params and input."""
    _, d_ct = _small_pair(key, d={"deconv_impl": "conv_transpose"})
    _, d_sp = _small_pair(key, d={"deconv_impl": "subpixel"})
    gd_ct, params, rest = nnx.split(d_ct, nnx.Param, ...)
    gd_sp, params_sp, _ = nnx.split(d_sp, nnx.Param, ...)
    chex.assert_trees_all_equal(params, params_sp)
    x = _normal((4, *d_ct.image_shape), 3)
    labels = jnp.arange(4) % d_ct.num_classes if d_ct.num_classes else None

    def loss(graphdef, params, x):
        m = nnx.merge(graphdef, params, rest, copy=True)
        return jnp.sum(m(x, labels=labels, train=True) ** 2)

    @jax.jit
    def both(params, x):
        grad = jax.value_and_grad(loss, argnums=(1, 2))
        return grad(gd_ct, params, x), grad(gd_sp, params, x)

    (val_ct, grad_ct), (val_sp, grad_sp) = both(params, x)
    np.testing.assert_allclose(val_sp, val_ct, rtol=1e-5)
    scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(grad_ct))
    chex.assert_trees_all_close(grad_sp, grad_ct, rtol=1e-3, atol=1e-5 * scale)


# ---------------------------------------------------------------------------------------------
# Sync BatchNorm under shard_map, registry, bf16.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["dcgan32", "conditional28"])
def test_sync_batchnorm_under_shard_map_matches_single_device(key):
    assert jax.device_count() == 8, "conftest.py should provide 8 fake CPU devices"
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    g_ref, d_ref = _small_pair(key)
    g_sync, d_sync = _small_pair(key, g={"axis_name": "data"}, d={"axis_name": "data"})
    batch = 16
    z = _latents(g_ref, batch)
    labels = jnp.arange(batch) % g_ref.num_classes if g_ref.num_classes else jnp.zeros(batch, int)

    def forward(graphdef, state, z, labels):
        gd_g, gd_d = graphdef
        g = nnx.merge(gd_g, state[0], copy=True)
        d = nnx.merge(gd_d, state[1], copy=True)
        x = g(z, labels=labels, train=True)
        logits = d(x, labels=labels, train=True)
        stats = (nnx.state(g, nnx.BatchStat), nnx.state(d, nnx.BatchStat))
        return logits, stats

    def split(g, d):
        (gg, sg), (gdd, sd) = nnx.split(g), nnx.split(d)
        return (gg, gdd), (sg, sd)

    gdef_sync, st_sync = split(g_sync, d_sync)
    gdef_ref, st_ref = split(g_ref, d_ref)
    sharded = jax.jit(
        jax.shard_map(
            lambda st, z, y: forward(gdef_sync, st, z, y),
            mesh=mesh,
            in_specs=(P(), P("data"), P("data")),
            out_specs=(P("data"), P()),
        )
    )
    out_sh, stats_sh = sharded(st_sync, z, labels)
    out_ref, stats_ref = jax.jit(lambda st, z, y: forward(gdef_ref, st, z, y))(st_ref, z, labels)
    np.testing.assert_allclose(out_sh, out_ref, rtol=1e-3, atol=1e-4)
    chex.assert_trees_all_close(stats_sh, stats_ref, rtol=1e-3, atol=1e-5)


def test_registry_creates_every_image_model_by_name():
    names = (
        "lsun_g",
        "lsun_d",
        "dcgan_g",
        "dcgan_d",
        "digit_g",
        "digit_d",
        "conditional_g",
        "conditional_d",
    )
    assert set(names) <= set(models.available())
    for name in names:
        m = _abstract(name)
        assert isinstance(m, nnx.Module)
        if name.endswith("_g"):
            assert m.latent_dist == "uniform" and len(m.image_shape) == 3
            assert "deconv_impl" in models.accepted_kwargs(name)
    assert models.accepted_kwargs("dcgan_g")["g_batchnorm"] is True
    assert models.accepted_kwargs("dcgan_d")["d_batchnorm"] is True
    with pytest.raises(TypeError, match="did you mean 'g_batchnorm'"):
        models.create("dcgan_g", rngs=nnx.Rngs(0), g_batchnrm=False)
    with pytest.raises(ValueError, match="Did you mean"):
        models.create("dcgan_gg", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("key", ["dcgan32", "conditional28"])
def test_bfloat16_compute_with_float32_params(key):
    g, d = _small_pair(key, g={"dtype": jnp.bfloat16}, d={"dtype": jnp.bfloat16})
    for m in (g, d):
        assert {x.dtype for x in jax.tree.leaves(nnx.state(m, nnx.Param))} == {jnp.dtype("float32")}
    labels = jnp.arange(4) % g.num_classes if g.num_classes else None
    x = _apply(g, _latents(g), labels)
    chex.assert_type(x, jnp.bfloat16)
    logits = _apply(d, x, labels)
    chex.assert_type(logits, jnp.bfloat16)
    chex.assert_shape(logits, (4, 1))
    chex.assert_tree_all_finite(logits)
    assert {x.dtype for x in jax.tree.leaves(nnx.state(d, nnx.BatchStat))} == {jnp.dtype("float32")}


def _official_layernorm(h, gamma, beta, eps=1e-5):
    """improved_wgan_training ``Layernorm(norm_axes=[1, 2, 3])`` in NumPy (NHWC here)."""
    axes = tuple(range(1, h.ndim))
    mean = h.mean(axis=axes, keepdims=True)
    var = ((h - mean) ** 2).mean(axis=axes, keepdims=True)
    return (h - mean) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("shape", [(3, 4, 4, 8), (3, 16)])
def test_layer_norm_matches_the_official_layernorm(shape):
    rng = np.random.default_rng(0)
    h = rng.normal(2.0, 3.0, size=shape).astype(np.float32)
    ln = layers.layer_norm(shape[-1], ndim=len(shape), dtype=None, rngs=nnx.Rngs(0))
    gamma = rng.normal(1.0, 0.1, size=shape[-1]).astype(np.float32)
    beta = rng.normal(0.0, 0.1, size=shape[-1]).astype(np.float32)
    ln.scale[...], ln.bias[...] = jnp.asarray(gamma), jnp.asarray(beta)
    np.testing.assert_allclose(ln(jnp.asarray(h)), _official_layernorm(h, gamma, beta),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("name", ["dcgan_d", "digit_d"])
def test_layernorm_discriminator_is_per_sample(name):
    """LN in D (the LSGAN-GP D): no BatchNorm, one LN per former BN, and each sample's logit
    depends on that sample only (what the per-sample gradient penalty needs)."""
    kw = {"dcgan_d": dict(image_size=16, channels=1, base_features=8, num_layers=2),
          "digit_d": dict(image_size=16, features=(4, 8), hidden=16)}[name]  # fmt: skip
    d = models.create(name, rngs=nnx.Rngs(0), d_batchnorm=False, d_layernorm=True, **kw)
    assert count_batchnorms(d) == 0 and jax.tree.leaves(nnx.state(d, nnx.BatchStat)) == []
    lns = [m for _, m in nnx.iter_graph(d) if isinstance(m, nnx.LayerNorm)]
    assert len(lns) == count_batchnorms(models.create(name, rngs=nnx.Rngs(0), **kw))
    x = jax.random.uniform(jax.random.key(1), (4, 16, 16, 1), minval=-1, maxval=1)
    full = d(x, train=True)
    np.testing.assert_allclose(d(x[:1], train=True), full[:1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d(x, train=False), full, rtol=1e-6)
    with pytest.raises(ValueError, match="d_batchnorm=False"):
        models.create(name, rngs=nnx.Rngs(0), d_layernorm=True, **kw)
