"""Where lsgan_jax keeps what it computes once: Inception weights, FID reference statistics,
trained digits classifiers, the XLA compilation cache."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """The base cache directory.

    Returns:
        ``$LSGAN_JAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/lsgan_jax``, else ``~/.cache/lsgan_jax``.
    """
    env = os.environ.get("LSGAN_JAX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lsgan_jax"
