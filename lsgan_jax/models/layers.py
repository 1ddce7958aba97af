"""Shared layers for the image GANs: TF-exact transposed convolution, BatchNorm, initializers.

The official LSGAN code (xudonmao/LSGAN ``ops.py``; xudonmao/improved_LSGAN ``*/ops.py``) is
TensorFlow 1 (carpedm20/DCGAN-tensorflow style). This module reproduces its building blocks:

* ``deconv2d`` = ``tf.nn.conv2d_transpose(x, w, output_shape, strides)`` with the default
  ``padding='SAME'`` -> :class:`ConvTranspose` / :class:`ConvTranspose2x` (and the functional
  :func:`conv_transpose`), with an explicit output size exactly as TF (``4 -> 7`` in the digits
  generator).
* ``conv2d`` = ``tf.nn.conv2d(..., padding='SAME')`` -> ``nnx.Conv(padding="SAME")`` (XLA's SAME
  padding is TF's: ``total = max((out - 1) * s + k - in, 0)``, ``low = total // 2``).
* ``linear``, ``lrelu`` (``max(x, 0.2 x)``), ``batch_norm`` (``tf.contrib.layers.batch_norm``,
  decay 0.9, eps 1e-5, gamma and beta) -> :func:`batch_norm`.
* Initialization: N(0, 0.02) for linear and deconv kernels (``random_normal_initializer``),
  truncated N(0, 0.02) for conv kernels (``truncated_normal_initializer``: cut at 2 sigma, no
  variance correction -- same as ``jax.nn.initializers.truncated_normal``), zero biases.

Transposed convolution: two exact implementations
-------------------------------------------------
With stride ``s``, input length ``n``, output length ``N`` and kernel ``k``, TF's SAME
``conv2d_transpose`` is the adjoint of the SAME ``conv2d`` that maps length ``N`` to ``n``
(``n = ceil(N / s)``). That convolution pads ``P = max((n - 1) s + k - N, 0)``, ``p_b = P // 2``
before. The kernel here is stored in Flax layout ``(kh, kw, in, out)`` and applied *without*
spatial flip (as ``nnx.ConvTranspose(transpose_kernel=False)``), so per axis

    y[o] = sum_{i, t : s i = o + t - p_l} x[i] w[t],   p_l = k - 1 - p_b,      (1)

which is TF's result for ``w_tf[t] = w[k - 1 - t]`` with in/out channels swapped. A TF checkpoint
converts as ``w = w_tf[::-1, ::-1].transpose(0, 1, 3, 2)``.

``impl="conv_transpose"`` evaluates (1) as ``lax.conv_transpose`` (a convolution over the
input dilated by ``s``, padding ``(p_l, p_h)``). XLA:CPU computes the *kernel* gradient of that
op on a slow path (measurements in ``benchmarks/RESULTS.md``).

``impl="subpixel"`` (stride 2 only) is the exact sub-pixel (phase) decomposition of (1). Writing
``o = 2m + r`` (output phase ``r`` in {0, 1}) and ``i = m + u``, (1) becomes a stride-1
correlation per phase,

    y[2m + r] = sum_u x[m + u] W_r[u],   W_r[u] = w[2u + p_l - r]  (0 if out of [0, k)),   (2)

so phase ``r`` uses only the taps ``w[t_0::2]`` with the parity of ``p_l - r``. In 2-D the four
phases ``(r, s)`` are four ordinary stride-1 convolutions of ``x`` with the static strided slices
``w[t_r::2, t_s::2]`` of the SAME kernel parameter (no new parameters, no multiplies on
structural zeros), interleaved by a reshape (depth-to-space) and cropped to the requested size.
Checkpoints are therefore interchangeable, and the outputs and the gradients with respect to
``x`` and ``w`` agree to float rounding (tested for k = 3, 4, 5 and odd and even sizes in
``tests/test_image_models.py``). On CPU it is much faster than ``lax.conv_transpose``, forward
and backward (``benchmarks/RESULTS.md``).

``impl="auto"`` (default) chooses ``"subpixel"`` when ``jax.default_backend() == "cpu"`` and
``"conv_transpose"`` otherwise (GPU/TPU compute the strided transpose well).

The same transposed convolution appears in every discriminator: the **input gradient** of a SAME
stride-2 ``conv2d`` is the SAME stride-2 ``conv2d_transpose`` of the output cotangent with the
same filter. XLA:CPU computes it on a slow path when the conv's output is small, so
``conv2d(impl="subpixel")`` (the CPU default) uses :func:`stride2_conv`, a ``custom_vjp`` whose
input gradient is :func:`subpixel_conv_transpose` (per-layer timings in
``benchmarks/RESULTS.md``). Values, first and second derivatives are the same as XLA's to float
rounding (tested), also for spectrally normalized kernels (``tests/test_spectral_norm.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn.dtypes import promote_dtype

__all__ = [
    "CONV_INIT",
    "DECONV_IMPLS",
    "DECONV_INIT",
    "DENSE_INIT",
    "ZEROS_INIT",
    "ConvTranspose",
    "ConvTranspose2x",
    "batch_norm",
    "check_images",
    "check_int",
    "check_latent",
    "conv2d",
    "conv_general_dilated_subpixel_grad",
    "conv_transpose",
    "count_batchnorms",
    "count_params",
    "layer_norm",
    "linear",
    "lrelu",
    "resolve_deconv_impl",
    "stride2_conv",
    "subpixel_conv_transpose",
    "tf_transpose_padding",
]

Dtype = Any

#: ``tf.random_normal_initializer(stddev=0.02)`` (official ``linear`` and ``deconv2d``).
DENSE_INIT = nnx.initializers.normal(stddev=0.02)
DECONV_INIT = nnx.initializers.normal(stddev=0.02)
#: ``tf.truncated_normal_initializer(stddev=0.02)`` (official ``conv2d``): cut at 2 std.
CONV_INIT = nnx.initializers.truncated_normal(stddev=0.02)
ZEROS_INIT = nnx.initializers.zeros_init()

DECONV_IMPLS = ("auto", "conv_transpose", "subpixel")

_DN = ("NHWC", "HWIO", "NHWC")


# --------------------------------------------------------------------------------------------
# Small helpers.
# --------------------------------------------------------------------------------------------


def lrelu(x: jax.Array, leak: float = 0.2) -> jax.Array:
    """Official ``lrelu``: ``max(x, leak * x)`` (leak 0.2)."""
    return jnp.maximum(x, leak * x)


def linear(
    in_features: int,
    out_features: int,
    *,
    dtype: Dtype | None,
    param_dtype: Dtype = jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.Linear:
    """Official ``linear``: dense layer, kernel N(0, 0.02^2), zero bias."""
    return nnx.Linear(
        in_features,
        out_features,
        kernel_init=DENSE_INIT,
        bias_init=ZEROS_INIT,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


def conv2d(
    in_features: int,
    out_features: int,
    *,
    kernel_size: int = 5,
    strides: int = 2,
    impl: str = "auto",
    dtype: Dtype | None,
    param_dtype: Dtype = jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """Official ``conv2d``: SAME conv, kernel truncated N(0, 0.02^2), zero bias.

    ``impl`` (see :func:`resolve_deconv_impl`) picks how the **input gradient** of a stride-2
    conv -- a stride-2 transposed conv -- is computed: ``"subpixel"`` routes it through
    :func:`subpixel_conv_transpose` (:func:`stride2_conv`), ``"conv_transpose"`` leaves it to
    XLA. Parameters and forward values are the same either way.
    """
    use_subpixel = strides == 2 and resolve_deconv_impl(impl) == "subpixel"
    return nnx.Conv(
        in_features,
        out_features,
        kernel_size=(kernel_size, kernel_size),
        strides=(strides, strides),
        padding="SAME",
        kernel_init=CONV_INIT,
        bias_init=ZEROS_INIT,
        dtype=dtype,
        param_dtype=param_dtype,
        conv_general_dilated=conv_general_dilated_subpixel_grad
        if use_subpixel
        else jax.lax.conv_general_dilated,
        rngs=rngs,
    )


def batch_norm(
    num_features: int,
    *,
    axis_name: str | None,
    dtype: Dtype | None,
    param_dtype: Dtype = jnp.float32,
    rngs: nnx.Rngs,
    scale_std: float = 0.0,
) -> nnx.BatchNorm:
    """Official ``batch_norm``: ``tf.contrib.layers.batch_norm(decay=0.9, epsilon=1e-5)``.

    Learned gamma (``scale=True``) and beta, both counted as parameters. Flax ``momentum=0.9`` is
    TF's ``decay=0.9`` (``ra = 0.9 ra + 0.1 batch``), ``epsilon=1e-5``. Normalizes over all
    axes but the last (the channels of an NHWC map, or the features of a ``(B, F)`` matrix, as
    TF does for 2-D inputs). The variance is two-pass, as ``tf.nn.moments``.

    Args:
      num_features: Size of the last axis.
      axis_name: Mapped axis for synchronized batch statistics (``shard_map``/``pmap``), or None.
      dtype: Computation dtype.
      param_dtype: Dtype of gamma, beta and the running statistics (float32).
      rngs: Initialization RNG streams.
      scale_std: 0 -> gamma initialized to 1 (contrib default). > 0 -> gamma ~ N(1, scale_std^2),
        the custom BN of xudonmao/LSGAN ``stability_comparison/*/ops.py`` (``scale_std=0.02``).
    """
    if scale_std < 0:
        raise ValueError(f"scale_std must be >= 0, got {scale_std!r}.")
    if scale_std > 0:
        normal = nnx.initializers.normal(stddev=scale_std)

        def scale_init(key, shape, dtype=jnp.float32):
            return 1.0 + normal(key, shape, dtype)
    else:
        scale_init = nnx.initializers.ones_init()
    return nnx.BatchNorm(
        num_features,
        momentum=0.9,
        epsilon=1e-5,
        use_fast_variance=False,
        axis_name=axis_name,
        scale_init=scale_init,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


def layer_norm(
    num_features: int,
    *,
    ndim: int = 4,
    dtype: Dtype | None,
    param_dtype: Dtype = jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.LayerNorm:
    """Layer normalization of a D's feature map, as the LSGAN-GP code does it.

    ``y = (h - mean(h)) / sqrt(var(h) + 1e-5) * gamma + beta`` with the mean and the
    (two-pass) variance over every axis but the batch, i.e. over (H, W, C) of an NHWC map or
    over the features of a ``(B, F)`` matrix, and a learned ``gamma`` (ones) and ``beta``
    (zeros) per channel (last axis). This is ``lib.ops.layernorm.Layernorm(norm_axes=[1, 2, 3])``
    on NCHW maps in igul222/improved_wgan_training, which xudonmao/improved_LSGAN
    ``difficult_architectures/*/gan_64x64.py`` uses in D for its ``lsgan-gp`` and ``wgan-gp``
    modes in place of BatchNorm (a per-sample normalization keeps the per-sample gradient
    penalty meaningful). It has no running statistics, so ``train`` does not change it.

    Args:
      num_features: Size of the last (channel) axis.
      ndim: Rank of the input: 4 for NHWC maps, 2 for ``(B, F)`` matrices.
      dtype: Computation dtype.
      param_dtype: Dtype of gamma and beta (float32).
      rngs: Initialization RNG streams.
    """
    return nnx.LayerNorm(
        num_features,
        epsilon=1e-5,
        reduction_axes=tuple(range(1 - ndim, 0)),
        feature_axes=-1,
        use_fast_variance=False,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Returns ``value`` if it is an int >= ``minimum`` (not a bool), else raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def check_images(x: jax.Array, shape: tuple[int, int, int], *, owner: str) -> None:
    """Raises ValueError unless ``x`` is ``(B, *shape)``."""
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{owner} expects images of shape (batch, {shape[0]}, {shape[1]}, {shape[2]}) "
            f"(NHWC), got {tuple(x.shape)}."
        )


def check_latent(z: jax.Array, latent_dim: int, *, owner: str) -> None:
    """Raises ValueError unless ``z`` is ``(B, latent_dim)``."""
    if z.ndim != 2 or z.shape[-1] != latent_dim:
        raise ValueError(f"{owner} expects z of shape (batch, {latent_dim}), got {tuple(z.shape)}.")


def count_params(module: nnx.Module) -> int:
    """Number of trainable scalars (``nnx.Param``: kernels, biases, BN gamma/beta).

    BatchNorm running statistics (``nnx.BatchStat``) and spectral-norm vectors are not counted;
    this is TF's ``tf.trainable_variables()`` count, the one ``docs/models.md`` quotes for the
    official models. Works on ``nnx.eval_shape`` (abstract) modules.
    """
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def count_batchnorms(module: nnx.Module) -> int:
    """Number of ``nnx.BatchNorm`` submodules of ``module``."""
    return sum(isinstance(node, nnx.BatchNorm) for _, node in nnx.iter_graph(module))


def resolve_deconv_impl(impl: str) -> str:
    """Maps ``"auto"`` to ``"subpixel"`` on CPU and ``"conv_transpose"`` elsewhere."""
    if impl not in DECONV_IMPLS:
        raise ValueError(f"deconv impl must be one of {DECONV_IMPLS}, got {impl!r}.")
    if impl == "auto":
        return "subpixel" if jax.default_backend() == "cpu" else "conv_transpose"
    return impl


# --------------------------------------------------------------------------------------------
# Transposed convolution with TF SAME semantics.
# --------------------------------------------------------------------------------------------


def tf_transpose_padding(
    in_size: int, out_size: int, kernel_size: int, stride: int
) -> tuple[int, int]:
    """Padding ``(p_l, p_h)`` of the dilated input that reproduces TF ``conv2d_transpose`` (SAME).

    For a kernel in Flax layout applied without flip, see equation (1) in the module docstring:
    ``P = max((in - 1) s + k - out, 0)``, ``p_l = k - 1 - P // 2`` and ``p_h`` such that the
    output has ``out`` elements: ``p_h = out + k - 2 - (in - 1) s - p_l``.

    Raises:
      ValueError: ``ceil(out / stride) != in`` (TF raises for such an output shape as well).
    """
    if -(-out_size // stride) != in_size:
        raise ValueError(
            f"A SAME transposed conv with stride {stride} maps size {in_size} only to sizes "
            f"{stride * in_size - stride + 1}..{stride * in_size}, got output size {out_size}."
        )
    total = max((in_size - 1) * stride + kernel_size - out_size, 0)
    pad_lo = kernel_size - 1 - total // 2
    pad_hi = out_size + kernel_size - 2 - (in_size - 1) * stride - pad_lo
    return pad_lo, pad_hi


def _output_size(x: jax.Array, stride: int, output_size: Sequence[int] | None) -> tuple[int, int]:
    if x.ndim != 4:
        raise ValueError(f"Expected an NHWC batch (4-D), got shape {tuple(x.shape)}.")
    if output_size is None:
        return x.shape[1] * stride, x.shape[2] * stride
    out = tuple(int(s) for s in output_size)
    if len(out) != 2:
        raise ValueError(f"output_size must be (height, width), got {output_size!r}.")
    return out


def conv_transpose(
    x: jax.Array,
    kernel: jax.Array,
    *,
    stride: int = 2,
    output_size: Sequence[int] | None = None,
) -> jax.Array:
    """TF ``conv2d_transpose`` (SAME) via ``lax.conv_transpose``; equation (1) of the module doc.

    Args:
      x: ``(B, H, W, C_in)``.
      kernel: ``(k, k, C_in, C_out)``, Flax layout, applied without flip.
      stride: Spatial stride.
      output_size: ``(H_out, W_out)`` with ``ceil(H_out / stride) == H``; default ``stride * H``.

    Returns:
      ``(B, H_out, W_out, C_out)``.
    """
    oh, ow = _output_size(x, stride, output_size)
    kh, kw = kernel.shape[:2]
    pads = (
        tf_transpose_padding(x.shape[1], oh, kh, stride),
        tf_transpose_padding(x.shape[2], ow, kw, stride),
    )
    if stride == 1:  # No dilation: an ordinary convolution (fast everywhere).
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=_DN)
    return jax.lax.conv_transpose(x, kernel, (stride, stride), pads, dimension_numbers=_DN)


def _subpixel_axis(
    in_size: int, out_size: int, k: int
) -> list[tuple[slice, tuple[int, int]] | None]:
    """Per-axis plan for equation (2), one entry per output phase ``r`` in {0, 1}.

    Phase ``r`` uses the taps ``t = 2u + p_l - r`` in ``[0, k)`` -- the strided slice
    ``w[t_0::2]`` -- at input offsets ``u``. Returns ``(slice, (pad_lo, pad_hi))`` per phase (the
    input padding, negative = crop, that makes a VALID stride-1 correlation produce
    ``ceil(out / 2)`` positions), or None for a phase without taps (``k = 1``).
    """
    p_l, _ = tf_transpose_padding(in_size, out_size, k, 2)
    m = -(-out_size // 2)
    plan = []
    for r in (0, 1):
        taps = [t for t in range(k) if (t - p_l + r) % 2 == 0]
        if not taps:
            plan.append(None)
            continue
        u0 = (taps[0] - p_l + r) // 2
        width = len(taps)
        pad_lo = -u0
        plan.append((slice(taps[0], taps[-1] + 1, 2), (pad_lo, m + width - 1 - in_size - pad_lo)))
    return plan


def subpixel_conv_transpose(
    x: jax.Array, kernel: jax.Array, *, output_size: Sequence[int] | None = None
) -> jax.Array:
    """Stride-2 TF ``conv2d_transpose`` (SAME) as 4 stride-1 convs + depth-to-space (exact).

    Same arguments and result as ``conv_transpose(x, kernel, stride=2, output_size=...)``;
    equation (2) of the module docstring. The 4 phase kernels are static strided slices of
    ``kernel``, so no parameter is added and no multiply is wasted on structural zeros.
    """
    oh, ow = _output_size(x, 2, output_size)
    kh, kw, _, cout = kernel.shape
    plan_h = _subpixel_axis(x.shape[1], oh, kh)
    plan_w = _subpixel_axis(x.shape[2], ow, kw)
    b, mh, mw = x.shape[0], -(-oh // 2), -(-ow // 2)
    rows = []
    for ph in plan_h:
        row = []
        for pw in plan_w:
            if ph is None or pw is None:
                row.append(jnp.zeros((b, mh, mw, cout), jnp.result_type(x, kernel)))
                continue
            (sh, pad_h), (sw, pad_w) = ph, pw
            row.append(
                jax.lax.conv_general_dilated(
                    x, kernel[sh, sw], (1, 1), (pad_h, pad_w), dimension_numbers=_DN
                )
            )
        rows.append(jnp.stack(row, axis=3))  # (B, mh, mw, 2 [w phase], C)
    y = jnp.stack(rows, axis=2)  # (B, mh, 2 [h phase], mw, 2, C): depth-to-space by reshape
    y = y.reshape(b, 2 * mh, 2 * mw, cout)
    return y[:, :oh, :ow, :]


def _stride2_conv_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (2, 2), "SAME", dimension_numbers=_DN)


@jax.custom_vjp
def stride2_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """SAME stride-2 convolution (NHWC, HWIO) whose input gradient uses the sub-pixel form.

    The forward value is ``lax.conv_general_dilated(x, kernel, (2, 2), "SAME")``. Its input
    gradient is, by definition, the adjoint of that map: TF's SAME ``conv2d_transpose`` of the
    output cotangent with the same filter, i.e. :func:`subpixel_conv_transpose` with the kernel
    in this module's convention, ``kernel[::-1, ::-1].transpose(0, 1, 3, 2)`` (equation (1) of
    the module docstring), at the input's spatial size. The kernel gradient is XLA's.

    Why: XLA:CPU computes the input gradient of a strided conv with a small output on a slow
    path (timings of the DCGAN-64 and LSUN-112 discriminator layers in
    ``benchmarks/RESULTS.md``). Gradients agree with XLA's to float rounding
    (``tests/test_image_models.py``); reverse-over-reverse (the LSGAN-GP penalty) works because
    the backward rule is made of ordinary differentiable ops.
    """
    return _stride2_conv_xla(x, kernel)


def _stride2_conv_fwd(x, kernel):
    return _stride2_conv_xla(x, kernel), (x, kernel)


def _stride2_conv_bwd(res, dy):
    x, kernel = res
    adjoint = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
    dx = subpixel_conv_transpose(dy, adjoint, output_size=x.shape[1:3])
    _, pull_kernel = jax.vjp(lambda k: _stride2_conv_xla(x, k), kernel)
    return dx.astype(x.dtype), pull_kernel(dy)[0]


stride2_conv.defvjp(_stride2_conv_fwd, _stride2_conv_bwd)


def conv_general_dilated_subpixel_grad(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: Any,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    precision: Any = None,
    **kwargs: Any,
) -> jax.Array:
    """Drop-in ``lax.conv_general_dilated`` (for ``nnx.Conv(conv_general_dilated=...)``) that
    sends plain SAME stride-2 2-D NHWC convs to :func:`stride2_conv`; anything else to XLA."""
    plain = (
        lhs.ndim == 4
        and tuple(window_strides) == (2, 2)
        and isinstance(padding, str)
        and padding.upper() == "SAME"
        and all(d == 1 for d in (lhs_dilation or (1, 1)))
        and all(d == 1 for d in (rhs_dilation or (1, 1)))
        and feature_group_count == 1
        and precision is None
        and not any(v is not None for v in kwargs.values())
        and dimension_numbers == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DN)
    )
    if plain:
        return stride2_conv(lhs, rhs)
    return jax.lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        precision=precision,
        **kwargs,
    )


class ConvTranspose(nnx.Module):
    """TF ``deconv2d`` (``tf.nn.conv2d_transpose``, SAME) with stride 1 or 2 and a bias.

    ``y = conv2d_transpose(x, kernel) + bias``, output size ``stride * (H, W)`` unless
    ``output_size`` is given at call time (TF's explicit ``output_shape``; e.g. ``4 -> 7`` with
    stride 2). Kernel ``(k, k, in, out)`` ~ N(0, 0.02^2) (official ``deconv2d``), zero bias.

    Stride 1 is an ordinary SAME-like convolution (padding ``(p_l, p_h)`` of equation (1)); for
    stride 2, ``impl`` picks ``lax.conv_transpose`` or the exact sub-pixel form (module
    docstring); both use the same parameters.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        kernel_size: int = 5,
        stride: int = 2,
        impl: str = "auto",
        use_bias: bool = True,
        kernel_init: nnx.Initializer = DECONV_INIT,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the layer.

        Args:
          in_features: Input channels.
          out_features: Output channels.
          kernel_size: Square kernel size ``k`` (the official models use 5 and 3).
          stride: 1 or 2.
          impl: ``"auto"``, ``"conv_transpose"`` or ``"subpixel"`` (stride 2 only matters).
          use_bias: Add a bias (official: yes, zero-initialized).
          kernel_init: Kernel initializer (default N(0, 0.02^2)).
          dtype: Computation dtype; parameters are ``param_dtype``.
          param_dtype: Parameter dtype (float32).
          rngs: Initialization RNG streams.
        """
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}.")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive int, got {kernel_size!r}.")
        resolve_deconv_impl(impl)  # validate early
        self.in_features = in_features
        self.out_features = out_features
        self.kernel_size = kernel_size
        self.stride = stride
        self.impl = impl
        self.dtype = dtype
        key = rngs.params()
        self.kernel = nnx.Param(
            kernel_init(key, (kernel_size, kernel_size, in_features, out_features), param_dtype)
        )
        self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype)) if use_bias else None

    def __call__(self, x: jax.Array, *, output_size: Sequence[int] | None = None) -> jax.Array:
        """Maps ``(B, H, W, in)`` to ``(B, H_out, W_out, out)``.

        Args:
          x: Input batch, NHWC.
          output_size: TF's explicit output ``(H_out, W_out)``; default ``stride * (H, W)``.
        """
        if x.ndim != 4 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects (B, H, W, {self.in_features}), got "
                f"{tuple(x.shape)}."
            )
        kernel = self.kernel[...]
        bias = None if self.bias is None else self.bias[...]
        x, kernel, bias = promote_dtype((x, kernel, bias), dtype=self.dtype)
        if self.stride == 2 and resolve_deconv_impl(self.impl) == "subpixel":
            y = subpixel_conv_transpose(x, kernel, output_size=output_size)
        else:
            y = conv_transpose(x, kernel, stride=self.stride, output_size=output_size)
        if bias is not None:
            y = y + bias
        return y


class ConvTranspose2x(ConvTranspose):
    """Stride-2 :class:`ConvTranspose`: doubles H and W (TF SAME), or maps to ``output_size``.

    ``impl="auto"`` uses the exact sub-pixel form on CPU and ``lax.conv_transpose`` elsewhere.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        kernel_size: int = 5,
        impl: str = "auto",
        use_bias: bool = True,
        kernel_init: nnx.Initializer = DECONV_INIT,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the layer; arguments as :class:`ConvTranspose` with ``stride=2``."""
        super().__init__(
            in_features,
            out_features,
            kernel_size=kernel_size,
            stride=2,
            impl=impl,
            use_bias=use_bias,
            kernel_init=kernel_init,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
