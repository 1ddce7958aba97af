"""Optional dependencies: import one, or fail with one line naming the extra that installs it.

The core install (``pip install lsgan-jax``) holds what the losses, theory, models, train step,
runners, trainers and checkpoints need. The rest comes with extras (``setup.cfg``):

* ``[data]`` — image datasets: tensorflow-datasets, array-record, grain, Pillow, scikit-learn;
* ``[viz]`` — figures and the terminal progress bar: matplotlib, Pillow, tqdm;
* ``[all]`` — both (what the experiment modules need).
"""

from __future__ import annotations

import importlib
import types

__all__ = ["MissingExtraError", "require"]

#: pip name of a module whose name differs from it.
_PIP_NAMES = {
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "tensorflow_datasets": "tensorflow-datasets",
    "array_record": "array-record",
}


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str, *, purpose: str = "") -> types.ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtraError` in one line.

    Args:
      module: the module to import (``"matplotlib.pyplot"``).
      extra: the lsgan-jax extra that installs it (``"viz"``).
      purpose: what needs it, for the message (default: the module's top-level name).

    Raises:
      MissingExtraError: ``module`` (or its top-level package) is not installed. An
        ``ImportError`` raised *inside* an installed package propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.split(".")[0]
        if err.name is None or err.name.split(".")[0] != top:
            raise
        pip = _PIP_NAMES.get(top, top)
        what = purpose or top
        raise MissingExtraError(
            f"{what} needs {pip}, which is not installed: pip install 'lsgan-jax[{extra}]' "
            f"(in a clone: pip install -e '.[{extra}]')",
            name=top,
        ) from None
