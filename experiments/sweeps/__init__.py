"""Sweep files: each defines `get_sweep() -> lsgan_jax.sweep.Sweep` (run with `python -m lsgan_jax.sweep NAME`)."""
