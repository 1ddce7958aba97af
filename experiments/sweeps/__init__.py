"""Sweep files: each defines `get_sweep() -> lsgan_jax.sweep.Sweep`.

Run one with `python -m experiments.sweep NAME`; `python -m experiments.sweep --list` lists them.
"""
