"""Spectral normalization of a layer's weight (Miyato et al., ICLR 2018), as PyTorch computes it.

A wrapped layer computes with ``W_SN = W / σ(W)`` instead of ``W``, where σ(W) is the largest
singular value of the weight viewed as a matrix, estimated by power iteration (Miyato et al.,
"Spectral Normalization for Generative Adversarial Networks", ICLR 2018, Algorithm 1). This keeps
the Lipschitz constant of a discriminator built from such layers and 1-Lipschitz nonlinearities
at most 1. Kurach et al. ("A Large-Scale Study on Regularization and Normalization in GANs",
ICML 2019) study LSGAN with spectral normalization; TF-GAN, compare_gan, StudioGAN and MMagic
offer it.

What is computed (the arithmetic of ``torch.nn.utils.parametrizations.spectral_norm``, default
``n_power_iterations=1``, ``eps=1e-12``, ``dim=0``):

* The weight matrix ``M`` (``out × rest``): the kernel with its output axis first, as PyTorch's
  ``(out, in, kh, kw)`` weight flattened over everything but ``dim=0``. Flax stores a dense kernel
  as ``(in, out)`` and a conv kernel as HWIO ``(kh, kw, in, out)``; they are transposed to
  ``(out, in)`` and ``(out, in, kh, kw)`` before the flattening, so ``M`` has exactly PyTorch's
  rows and columns (and ``v`` PyTorch's ``(in, kh, kw)`` order).
* State: ``u`` (``out``) and ``v`` (``rest``), unit vectors kept in the module as
  :class:`PowerIterationVector` variables (not ``nnx.Param``, so optimizers ignore them and the
  trainers' ``nnx.split(model, nnx.Param, ...)`` carries them in the non-parameter state that is
  checkpointed with the run).
* Training call (``update=True``): one power iteration,
  ``u ← N(M v)``, ``v ← N(Mᵀ u)`` with ``N(x) = x / max(‖x‖₂, ε)``, stored in the module; then
  ``σ = uᵀ M v``. Evaluation call (``update=False``): ``σ = uᵀ M v`` with the stored vectors,
  nothing written. ``u`` and ``v`` are constants for differentiation (``stop_gradient``), so
  ``∂σ/∂M = u vᵀ`` as in Miyato et al. (their Algorithm 1 is the same iteration with the roles of
  ``u`` and ``v`` named the other way round).
* Construction: ``u``, ``v`` ~ N(0, I) normalized, then 15 power iterations on the initial weight
  (as PyTorch does), so the first σ is already accurate.

"One iteration per training call" is per forward call, as in PyTorch: a discriminator update that
calls D on the real and then on the fake batch advances ``u`` twice. Calls inside a function
that is differentiated with plain ``jax.grad`` (e.g. a gradient penalty on D's input) compute
with a fresh iteration but cannot write the module's state from that inner trace; they leave
``u``, ``v`` as they were (see :meth:`SpectralNorm.__call__`).

Under ``jax.vmap`` over a run axis each run has its own ``u``, ``v`` (they are state leaves
stacked with the rest). Under ``shard_map`` the update is a deterministic function of weights
that every device holds identically, so every device computes the same ``u``, ``v``; the new
vectors are nonetheless typed as device-varying (they are computed from parameters cast to
varying before differentiation), so they are made invariant with ``lax.pmax`` over those axes,
which returns the common value exactly.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "PowerIterationVector",
    "SpectralNorm",
    "call",
    "maybe_spectral_norm",
    "power_iteration",
    "weight_matrix",
]

#: PyTorch's ``spectral_norm`` epsilon.
EPS = 1e-12
#: Power iterations PyTorch's parametrization runs at construction.
INIT_ITERATIONS = 15


class PowerIterationVector(nnx.Variable):
    """A singular-vector estimate of spectral normalization (state, not a trainable parameter)."""


def weight_matrix(kernel: jax.Array) -> jax.Array:
    """A Flax kernel as PyTorch's ``(out, rest)`` weight matrix.

    ``(in, out)`` → ``(out, in)``; HWIO ``(kh, kw, in, out)`` → ``(out, in, kh, kw)`` flattened to
    ``(out, in·kh·kw)`` (PyTorch's ``weight.reshape(weight.shape[0], -1)`` for ``dim=0``).

    Raises:
      ValueError: a kernel with fewer than 2 dimensions.
    """
    if kernel.ndim < 2:
        raise ValueError(f"Spectral norm needs a kernel with >= 2 dims, got shape {kernel.shape}.")
    perm = (kernel.ndim - 1, kernel.ndim - 2, *range(kernel.ndim - 2))
    return jnp.transpose(kernel, perm).reshape(kernel.shape[-1], -1)


def _normalize(x: jax.Array, eps: float) -> jax.Array:
    """``x / max(‖x‖₂, eps)`` (``torch.nn.functional.normalize``)."""
    return x / jnp.maximum(jnp.linalg.norm(x), eps)


def power_iteration(
    matrix: jax.Array, u: jax.Array, v: jax.Array, *, steps: int = 1, eps: float = EPS
) -> tuple[jax.Array, jax.Array]:
    """``steps`` rounds of ``u ← N(M v)``, ``v ← N(Mᵀ u)``; returns ``(u, v)``.

    With ``σ = uᵀ M v`` this converges to the largest singular value of ``M`` (and ``u``, ``v`` to
    its singular vectors) whenever the start ``v`` is not orthogonal to the top right singular
    vector.
    """
    for _ in range(steps):
        u = _normalize(matrix @ v, eps)
        v = _normalize(matrix.T @ u, eps)
    return u, v


def _varying_axes(x: jax.Array) -> tuple[str, ...]:
    """The ``shard_map`` mesh axes along which ``x`` is typed as varying (empty elsewhere)."""
    aval = jax.typeof(x)
    vma = getattr(aval, "vma", None)  # older JAX
    if vma is None:  # JAX 0.10: aval.manual_axis_type.varying
        vma = getattr(getattr(aval, "manual_axis_type", None), "varying", None)
    return tuple(sorted(vma or ()))


def _make_invariant(x: jax.Array) -> jax.Array:
    """Under ``shard_map``: the (identical) per-device value, typed invariant (``lax.pmax``)."""
    axes = _varying_axes(x)
    return jax.lax.pmax(x, axes) if axes else x


def _can_write(variable: nnx.Variable) -> bool:
    """Whether ``variable`` may be written at the current trace level (NNX's own check)."""
    return bool(getattr(variable, "_can_update", True))


@functools.partial(jax.jit, static_argnames=("steps", "eps"))
def _initial_vectors(
    key: jax.Array, kernel: jax.Array, *, steps: int, eps: float
) -> tuple[jax.Array, jax.Array]:
    """``u``, ``v`` ~ N(0, I) normalized, then ``steps`` power iterations (one compiled call)."""
    matrix = weight_matrix(kernel.astype(jnp.float32))
    k_u, k_v = jax.random.split(key)
    u = _normalize(jax.random.normal(k_u, (matrix.shape[0],), jnp.float32), eps)
    v = _normalize(jax.random.normal(k_v, (matrix.shape[1],), jnp.float32), eps)
    return power_iteration(matrix, u, v, steps=steps, eps=eps)


class SpectralNorm(nnx.Module):
    """Wraps a layer that has a ``kernel`` parameter; calls it with ``kernel / σ(kernel)``.

    Works for any layer whose output is computed from a ``kernel`` ``nnx.Param`` of Flax layout
    (``(in, out)`` or ``(kh, kw, in, out)``): ``nnx.Linear``, ``nnx.Conv`` (including the
    custom stride-2 convolution of :func:`lsgan_jax.models.layers.conv2d`, whose
    ``conv_general_dilated`` is kept), or any module with the same attribute. The bias (and any
    other parameter) is used as is. Parameter paths gain one level: ``<name>.layer.kernel``.

    Differences from ``flax.nnx.SpectralNorm``: that one writes the normalized weight into the
    wrapped layer's parameter in place (so the trainers' parameter state would hold ``W/σ``),
    flattens a conv kernel to ``(kh·kw·in, out)`` and starts from an unconverged random ``u``;
    this one never touches the parameter, uses PyTorch's ``(out, in·kh·kw)`` matrix and
    converges ``u``, ``v`` at construction.

    Attributes:
      layer: The wrapped layer.
      u: ``PowerIterationVector`` of shape ``(out,)``.
      v: ``PowerIterationVector`` of shape ``(in·kh·kw,)`` (PyTorch's order).
      eps: Normalization epsilon.
    """

    def __init__(
        self,
        layer: nnx.Module,
        *,
        eps: float = EPS,
        init_iterations: int = INIT_ITERATIONS,
        rngs: nnx.Rngs,
    ) -> None:
        """Builds the wrapper.

        Args:
          layer: A module with a ``kernel`` ``nnx.Param`` (at least 2-D, Flax layout).
          eps: ``ε`` of ``N(x) = x / max(‖x‖, ε)`` (PyTorch's 1e-12).
          init_iterations: Power iterations on the initial kernel (PyTorch: 15).
          rngs: RNG streams; ``u`` and ``v`` are drawn from ``rngs.params()``.

        Raises:
          ValueError: ``layer`` has no 2-D+ ``kernel`` parameter.
        """
        kernel = getattr(layer, "kernel", None)
        if not isinstance(kernel, nnx.Param) or kernel.ndim < 2:
            raise ValueError(
                f"SpectralNorm wraps a layer with a kernel parameter of >= 2 dims; "
                f"{type(layer).__name__} has {kernel!r}."
            )
        self.layer = layer
        self.eps = float(eps)
        u, v = _initial_vectors(rngs.params(), kernel[...], steps=init_iterations, eps=self.eps)
        self.u = PowerIterationVector(u)
        self.v = PowerIterationVector(v)

    def sigma(self, *, update: bool = False) -> jax.Array:
        """σ = uᵀ M v, after one power iteration when ``update`` (written back when possible).

        Differentiable with respect to the kernel (``∂σ/∂M = u vᵀ``); ``u``, ``v`` are constants.
        """
        kernel = self.layer.kernel[...]
        matrix = weight_matrix(kernel.astype(jnp.float32))
        u, v = self.u[...], self.v[...]
        if update:
            u, v = power_iteration(jax.lax.stop_gradient(matrix), u, v, eps=self.eps)
            u, v = _make_invariant(u), _make_invariant(v)
            if _can_write(self.u) and _can_write(self.v):
                self.u[...] = u
                self.v[...] = v
        u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
        return u @ (matrix @ v)

    def __call__(self, x: jax.Array, *args: Any, update: bool = True, **kwargs: Any) -> jax.Array:
        """The wrapped layer's output with its kernel divided by σ.

        Args:
          x: The layer's input.
          *args: Passed to the layer.
          update: True (training): one power iteration, stored in ``u``, ``v`` -- unless the
            call happens inside a transformation whose trace may not write this module's state
            (plain ``jax.grad`` of a function of D's input, as a gradient penalty does); then the
            iterate is used for this call only. False (evaluation): stored ``u``, ``v``.
          **kwargs: Passed to the layer.
        """
        sigma = self.sigma(update=update)
        graphdef, state = nnx.split(self.layer)
        kernel = state["kernel"]
        state["kernel"] = nnx.Param((kernel[...] / sigma.astype(kernel.dtype)).astype(kernel.dtype))
        return nnx.merge(graphdef, state)(x, *args, **kwargs)


def maybe_spectral_norm(layer: nnx.Module, enabled: bool, *, rngs: nnx.Rngs) -> nnx.Module:
    """``SpectralNorm(layer)`` when ``enabled``, else ``layer`` unchanged."""
    if not isinstance(enabled, bool):
        raise ValueError(f"spectral_norm must be True or False, got {enabled!r}.")
    return SpectralNorm(layer, rngs=rngs) if enabled else layer


def call(layer: nnx.Module, x: jax.Array, *, train: bool, **kwargs: Any) -> jax.Array:
    """Calls ``layer(x)``, passing ``update=train`` when it is a :class:`SpectralNorm`."""
    if isinstance(layer, SpectralNorm):
        return layer(x, update=train, **kwargs)
    return layer(x, **kwargs)
