"""Model FLOPs of a GAN step, counted from jaxprs (see :mod:`benchmarks.run` for the convention)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lsgan_jax import models as models_lib

# ---------------------------------------------------------------------------------------------
# Model FLOPs from jaxprs.
# ---------------------------------------------------------------------------------------------


def _subjaxprs(params: dict[str, Any]):
    for value in params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(v, "eqns"):
                yield v
            elif hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):
                yield v.jaxpr


def jaxpr_flops(jaxpr: Any) -> float:
    """2 × multiply-adds of every `dot_general` and `conv_general_dilated` in a jaxpr."""
    total = 0.0
    for eqn in jaxpr.eqns:
        prim = eqn.primitive.name
        if prim == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval
            k = math.prod(lhs.shape[i] for i in lhs_contract)
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * k
        elif prim == "conv_general_dilated":
            rhs = eqn.invars[1].aval
            rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial)
            k = rhs.shape[rhs_spec[1]] * math.prod(rhs.shape[d] for d in rhs_spec[2:])
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * k
        mult = eqn.params.get("length", 1) if prim == "scan" else 1
        for sub in _subjaxprs(eqn.params):
            total += mult * jaxpr_flops(sub)
    return total


def forward_flops(model: nnx.Module, x: jax.Array) -> float:
    """Model FLOPs of `model(x, train=True)` (abstract trace; nothing runs)."""
    graphdef, st = nnx.split(model)

    def fwd(st, x):
        return nnx.merge(graphdef, st)(x, train=True)

    return jaxpr_flops(jax.make_jaxpr(fwd)(st, x).jaxpr)


def gan_step_flops(
    g_name: str, g_kwargs: dict, d_name: str, d_kwargs: dict, batch: int
) -> tuple[float, float, float]:
    """(G forward, D forward, step = 3·G + 8·D) model FLOPs at `batch` (sub-pixel deconvs)."""
    if "deconv_impl" in models_lib.accepted_kwargs(g_name):
        g_kwargs = {**g_kwargs, "deconv_impl": "subpixel"}
    g = nnx.eval_shape(lambda: models_lib.create(g_name, rngs=nnx.Rngs(0), **g_kwargs))
    d = nnx.eval_shape(lambda: models_lib.create(d_name, rngs=nnx.Rngs(0), **d_kwargs))
    g_fwd = forward_flops(g, jax.ShapeDtypeStruct((batch, g.latent_dim), jnp.float32))
    sample_shape = getattr(g, "image_shape", None) or (g.data_dim,)
    d_fwd = forward_flops(d, jax.ShapeDtypeStruct((batch, *sample_shape), jnp.float32))
    return g_fwd, d_fwd, 3 * g_fwd + 8 * d_fwd
