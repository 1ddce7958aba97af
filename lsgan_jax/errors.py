"""Exceptions the library raises for user mistakes and failed runs.

The command line (`lsgan_jax.cli`) prints their message without a traceback. Nothing under
`lsgan_jax/` imports the CLI or the experiments for these types.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot run; the CLI prints its message (no traceback) and exits with 2."""


class NonFiniteError(FloatingPointError):
    """Training produced NaN/Inf; the last good checkpoint is kept."""


__all__ = ["ConfigError", "NonFiniteError"]
