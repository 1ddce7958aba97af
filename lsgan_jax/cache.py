"""Where lsgan_jax keeps what it computes once: Inception weights, FID reference statistics,
trained digits classifiers, the XLA compilation cache."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir", "enable_compilation_cache"]


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


def enable_compilation_cache(setting: str) -> None:
    """Turns on JAX's persistent compilation cache, so runs with one program compile once.

    Args:
      setting: ``""`` leaves it off; ``"auto"`` uses ``<default_cache_dir()>/xla``; anything else
        is the cache directory.
    """
    if not setting:
        return
    import jax  # noqa: PLC0415

    if setting == "auto":
        setting = os.fspath(default_cache_dir() / "xla")
    jax.config.update("jax_compilation_cache_dir", setting)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
