"""lsgan_jax: Least Squares GANs (Mao et al., ICCV 2017; TPAMI 2019) in JAX and Flax NNX.

    import lsgan_jax as lj
    lj.losses.lsgan_discriminator_loss(real_logits, fake_logits, a=0.0, b=1.0)

    from lsgan_jax import losses, theory      # pure, jitted losses and closed forms
    from lsgan_jax import models, training    # NNX models by name; step, runners, trainers

The subpackages load on first attribute access (PEP 562 module ``__getattr__``), so
``import lsgan_jax`` imports no JAX and ``import lsgan_jax.losses`` costs only what the losses
need. The image datasets (``lsgan_jax.data.images`` and friends) need the ``[data]`` extra,
``viz`` the ``[viz]`` extra; a missing one is an ImportError naming it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Subpackages and modules reachable as attributes (``lsgan_jax.losses`` …), loaded lazily.
_SUBMODULES = (
    "data",
    "errors",
    "evaluators",
    "losses",
    "metrics",
    "models",
    "studies",
    "sweep",
    "theory",
    "training",
    "viz",
)

__all__ = ["__version__", *_SUBMODULES]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from lsgan_jax import (  # noqa: F401
        data,
        errors,
        evaluators,
        losses,
        metrics,
        models,
        studies,
        sweep,
        theory,
        training,
        viz,
    )


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module  # later accesses skip __getattr__
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
