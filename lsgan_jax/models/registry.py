"""Find generators and discriminators by name (big_vision-style registry).

A model file registers a *builder* -- any callable ``(*, rngs: nnx.Rngs, **kwargs) -> nnx.Module``,
usually the ``nnx.Module`` class itself, or a ``functools.partial`` of one for a variant that only
changes defaults (``digit_g``, ``lsun_d``) -- under a unique name. Generators and discriminators are
registered under separate names (``mixture_mlp_g`` / ``mixture_mlp_d``, ``pacgan_g`` /
``pacgan_d``, ...). A config then says ``config.model.g_name = "pacgan_g"`` and the trainer calls::

    from lsgan_jax import models
    gen = models.create(config.model.g_name, rngs=nnx.Rngs(0), **config.model.g_kwargs)

Adding a model: write ``lsgan_jax/models/<family>.py``, decorate each builder with
``@register("<family>_g")`` / ``@register("<family>_d")``, and add ``from lsgan_jax.models import
<family>`` to ``lsgan_jax/models/__init__.py`` so registration happens on ``import
lsgan_jax.models``.

Errors are for people, not for JAX: an unknown name raises ``ValueError`` listing the valid names
with a did-you-mean suggestion, and a keyword the builder does not accept (a misspelled config
field) raises ``TypeError`` naming the model, the bad keyword, a suggestion and every accepted
keyword -- before any layer is built.

Module conventions the trainer relies on (every registered model keeps them):

* Generators: ``__call__(z, *, train=True) -> x`` and attributes ``latent_dim: int`` and
  ``latent_dist: str`` in ``{"normal", "uniform"}`` (uniform means U[-1, 1]). The trainer samples
  ``z`` itself.
* Discriminators: ``__call__(x, *, train=True)`` returns RAW logits of shape ``(B, 1)``; never a
  sigmoid.
* Every constructor accepts ``axis_name: str | None = None`` and ``dtype=None`` (models without
  BatchNorm ignore ``axis_name``), so the trainer can pass both to any model.
* BatchNorm gets ``use_running_average=not train`` at call time (no ``model.train()/eval()``
  switching), and the constructor's ``axis_name`` is passed to every BatchNorm, so batch statistics
  are averaged over devices under ``shard_map``/``pmap`` (synchronized BN).
* Parameters are float32; ``dtype`` (e.g. ``jnp.bfloat16``) is the computation dtype only.

Functional use under ``jax.grad`` (checked in ``tests/test_models.py``; flax 0.12.8, jax 0.10.2).
Split once, then merge *with* ``copy=True`` inside the differentiated function::

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(params, rest, z):
        m = nnx.merge(graphdef, params, rest, copy=True)  # copy=True is required with BatchNorm
        out = m(z, train=True)                            # BN updates its running stats in m
        new_rest = nnx.state(m, nnx.Not(nnx.Param))       # read them back out as a pytree
        return jnp.mean(out**2), new_rest

    (loss, new_rest), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params, rest, z)

Without ``copy=True``, ``nnx.merge`` reuses the ``BatchStat`` Variable objects that were created
outside the ``jax.grad`` trace (by the caller, or by ``jax.jit`` when it unflattens its arguments),
and BatchNorm's in-place update raises ``flax.errors.TraceContextError: Cannot mutate BatchStat
from a different trace level``. ``copy=True`` builds fresh Variables at the current trace level, so
the update is legal; the caller's ``rest`` is left untouched and ``new_rest`` carries the updated
running statistics. The same function works unchanged inside ``jax.jit(jax.shard_map(...))`` and
``jax.pmap`` with ``axis_name`` set on the model (BatchNorm then pmeans its batch statistics).

Data-parallel gradients: under ``jax.shard_map`` (default ``check_vma=True``) the gradient with
respect to a replicated (``P()``) input comes back already summed over devices. The train step
therefore casts the parameters to device-varying (``lax.pcast(..., to="varying")``) before
differentiating and then averages with ``lax.pmean`` -- the same arithmetic as ``jax.pmap``
(``lsgan_jax/training/step.py``, ``_varying``). Model state that a training call writes from
those parameters (spectral-norm vectors) is made invariant again inside the model
(:mod:`lsgan_jax.models.spectral_norm`).
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from flax import nnx

__all__ = ["accepted_kwargs", "available", "create", "get", "register"]

Builder = Callable[..., nnx.Module]
B = TypeVar("B", bound=Builder)

_REGISTRY: dict[str, Builder] = {}


def register(name: str, *, override: bool = False) -> Callable[[B], B]:
    """Decorator that registers a model builder under ``name``.

    Args:
      name: Unique model name, e.g. ``"pacgan_g"``. Use a ``_g`` / ``_d`` suffix for generators
        and discriminators.
      override: Replace an existing registration instead of raising.

    Returns:
      A decorator that records the builder and returns it unchanged.

    Raises:
      ValueError: ``name`` is empty or already registered (and ``override`` is False).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Model name must be a non-empty string, got {name!r}.")

    def decorator(builder: B) -> B:
        if not callable(builder):
            raise TypeError(f"register({name!r}) needs a callable builder, got {builder!r}.")
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not builder and not override:
            raise ValueError(
                f"Model name {name!r} is already registered to {_describe(existing)}; "
                "pick another name or pass override=True."
            )
        _REGISTRY[name] = builder
        return builder

    return decorator


def available() -> tuple[str, ...]:
    """Returns the sorted names of all registered models."""
    return tuple(sorted(_REGISTRY))


def get(name: str) -> Builder:
    """Returns the builder registered under ``name``.

    Raises:
      ValueError: ``name`` is not registered; the message lists valid names and suggests the
        closest ones.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        pass
    names = available()
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown model name {name!r}.{hint} Registered models: {', '.join(names) or '(none)'}. "
        "(New model files must be imported in lsgan_jax/models/__init__.py to register.)"
    )


def create(name: str, *, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
    """Builds the model registered under ``name``.

    Args:
      name: A name from :func:`available`.
      rngs: Parameter-initialization RNG streams, forwarded to the builder.
      **kwargs: Hyperparameters of the builder (keyword-only), e.g. ``hidden=400``.

    Returns:
      The constructed ``nnx.Module``.

    Raises:
      ValueError: Unknown ``name``.
      TypeError: A keyword the builder does not accept, or a required keyword is missing. The
        message names the model and lists the accepted keywords.
    """
    builder = get(name)
    _check_kwargs(name, builder, kwargs)
    return builder(rngs=rngs, **kwargs)


def accepted_kwargs(name: str) -> dict[str, Any]:
    """Returns ``{keyword: default}`` for the hyperparameters of model ``name`` (no ``rngs``).

    Keywords without a default map to ``inspect.Parameter.empty``. Useful for printing a model's
    configuration surface.
    """
    params = _builder_params(get(name))
    if params is None:
        return {}
    return {p.name: p.default for p in params if p.name != "rngs"}


def _describe(builder: Builder) -> str:
    if isinstance(builder, functools.partial):
        args = ", ".join(f"{k}={v!r}" for k, v in builder.keywords.items())
        return f"functools.partial({_describe(builder.func)}, {args})"
    module = getattr(builder, "__module__", "?")
    qualname = getattr(builder, "__qualname__", repr(builder))
    return f"{module}.{qualname}"


def _builder_params(builder: Builder) -> list[inspect.Parameter] | None:
    """The builder's parameters, or None when it takes ``**kwargs`` (nothing to check).

    A ``functools.partial`` of a builder (a model that only changes defaults, e.g. ``digit_g`` =
    ``dcgan_g`` at 28 px) has the builder's keyword parameters with the partial's keywords as
    their defaults.
    """
    if isinstance(builder, functools.partial):
        if builder.args:
            raise TypeError(f"Registered partials must bind keywords only, got {builder!r}.")
        params = _builder_params(builder.func)
        if params is None:
            return None
        return [
            p.replace(default=builder.keywords[p.name]) if p.name in builder.keywords else p
            for p in params
        ]
    # For a class, inspect.signature(cls) may report the metaclass's (*args, **kwargs) (nnx.Module
    # has a custom metaclass), so read __init__ directly and drop ``self``.
    if inspect.isclass(builder):
        params = list(inspect.signature(builder.__init__).parameters.values())[1:]
    else:
        params = list(inspect.signature(builder).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return params


def _check_kwargs(name: str, builder: Builder, kwargs: dict[str, Any]) -> None:
    params = _builder_params(builder)
    if params is None:
        return
    keyword_ok = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    accepted = [p.name for p in params if p.kind in keyword_ok and p.name != "rngs"]
    accepted_msg = ", ".join(accepted) or "(none)"
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        parts = []
        for k in unknown:
            close = difflib.get_close_matches(k, accepted, n=1, cutoff=0.6)
            parts.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise TypeError(
            f"Model {name!r} ({_describe(builder)}) got unexpected keyword argument(s) "
            f"{', '.join(parts)}. Accepted keyword arguments: {accepted_msg}."
        )
    missing = [
        p.name
        for p in params
        if p.kind in keyword_ok
        and p.name != "rngs"
        and p.default is inspect.Parameter.empty
        and p.name not in kwargs
    ]
    if missing:
        raise TypeError(
            f"Model {name!r} ({_describe(builder)}) is missing required keyword argument(s) "
            f"{', '.join(map(repr, missing))}. Accepted keyword arguments: {accepted_msg}."
        )
