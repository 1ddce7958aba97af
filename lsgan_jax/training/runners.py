"""Runners: the same per-device `train_step` on one device, over a device mesh, or over many runs.

| runner                 | what it maps                        | collectives             |
|------------------------|-------------------------------------|-------------------------|
| `single`               | nothing (`jax.jit`)                 | none                    |
| `data_parallel`        | `jax.jit(jax.shard_map(...))`       | `lax.pmean` over "data" |
| `pmap`                 | `jax.pmap` (for users who ask)      | `lax.pmean` over "data" |
| `vectorized`           | `jax.jit(jax.vmap(...))` over runs  | none (runs independent) |

Every runner can fuse `num_steps` steps into one `lax.scan` (`scan=True`) when the data is sampled
on device (the 2-D studies), so Python dispatch never dominates; it then returns the per-step
metrics stacked on a leading axis. The batch given to a data-parallel runner is the GLOBAL batch;
a batch that does not divide across devices is a `ValueError`, raised before anything is traced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
RUN_AXIS = "runs"


def make_mesh(num_devices: int | None = None, axis_name: str = DATA_AXIS) -> jax.sharding.Mesh:
    """A 1-D mesh over the first `num_devices` devices (all by default), with Auto axis type."""
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if n > len(devices):
        raise ValueError(f"Asked for {n} devices but only {len(devices)} are visible.")
    return jax.make_mesh(
        (n,), (axis_name,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices[:n]
    )


def check_divisible(global_batch: int, num_devices: int) -> None:
    """Raises a clear error when the global batch does not split evenly across devices."""
    if global_batch % num_devices:
        raise ValueError(
            f"The global batch size {global_batch} does not divide across {num_devices} devices. "
            f"Choose a batch size that is a multiple of {num_devices} (e.g. "
            f"{(global_batch // num_devices + 1) * num_devices}), or run on fewer devices."
        )


def _scanned(step: Callable, num_steps: int, axis_name: str | None) -> Callable:
    """`num_steps` steps on device-sampled data in one `lax.scan`."""

    def run(state, hp):
        def body(s, _):
            return step(s, None, hp, axis_name=axis_name)

        return jax.lax.scan(body, state, None, length=num_steps)

    return run


def single(step: Callable, *, scan_steps: int | None = None, donate: bool = True) -> Callable:
    """`jit(step)`: `(state, batch, hp) -> (state, metrics)`; with `scan_steps`, `(state, hp)`."""
    donate_argnums = (0,) if donate else ()
    if scan_steps:
        return jax.jit(_scanned(step, scan_steps, None), donate_argnums=donate_argnums)
    return jax.jit(functools.partial(step, axis_name=None), donate_argnums=donate_argnums)


def data_parallel(
    step: Callable,
    mesh: jax.sharding.Mesh,
    *,
    global_batch: int,
    scan_steps: int | None = None,
    donate: bool = True,
    batch_axis: int = 0,
) -> Callable:
    """`jit(shard_map(step))` over `mesh`: state replicated, batch split on axis `batch_axis`
    (1 for batches stacked per D update, `(n_d, B, ...)`).

    The per-device step must have been built from models whose BatchNorm layers use
    `axis_name=DATA_AXIS`, so statistics are averaged across devices.
    """
    axis = mesh.axis_names[0]
    check_divisible(global_batch, mesh.shape[axis])
    donate_argnums = (0,) if donate else ()
    if scan_steps:
        fn = jax.shard_map(
            _scanned(step, scan_steps, axis),
            mesh=mesh,
            in_specs=(P(), P()),
            out_specs=(P(), P()),
        )
    else:
        fn = jax.shard_map(
            functools.partial(step, axis_name=axis),
            mesh=mesh,
            in_specs=(P(), P(*([None] * batch_axis), axis), P()),
            out_specs=(P(), P()),
        )
    return jax.jit(fn, donate_argnums=donate_argnums)


def pmap(
    step: Callable, *, global_batch: int, num_devices: int | None = None, batch_axis: int = 0
) -> Callable:
    """`jax.pmap` runner: state/hparams broadcast (`in_axes=None`), batch `(devices, B/n, ...)`.

    Returns a function taking the GLOBAL batch, whose axis `batch_axis` (the examples) it splits
    into `(n, B/n)` with the device axis moved to the front.
    """
    n = num_devices or jax.local_device_count()
    check_divisible(global_batch, n)
    mapped = jax.pmap(
        functools.partial(step, axis_name=DATA_AXIS),
        axis_name=DATA_AXIS,
        in_axes=(None, 0, None),
        out_axes=(None, None),
        devices=jax.local_devices()[:n],
    )

    def run(state, batch, hp):
        if batch is not None:
            ax = batch_axis
            batch = jax.tree.map(
                lambda x: np.moveaxis(
                    np.reshape(x, x.shape[:ax] + (n, x.shape[ax] // n) + x.shape[ax + 1 :]), ax, 0
                ),
                batch,
            )
        return mapped(state, batch, hp)

    return run


def vectorized(
    step: Callable,
    *,
    scan_steps: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    donate: bool = True,
) -> Callable:
    """`jit(vmap(step))`: R independent runs stacked on a leading axis of state and hparams.

    With `scan_steps`, the function is `(states, hps) -> (states, metrics)` on device-sampled data;
    otherwise `(states, batch, hps)` with one batch shared by all runs. With `mesh`, the run axis
    is sharded across its devices (runs must divide evenly; see `shard_runs`).
    """
    donate_argnums = (0,) if donate else ()
    if scan_steps:
        fn = jax.vmap(_scanned(step, scan_steps, None))
    else:
        fn = jax.vmap(functools.partial(step, axis_name=None), in_axes=(0, None, 0))
    if mesh is None:
        return jax.jit(fn, donate_argnums=donate_argnums)
    run_sharding = NamedSharding(mesh, P(mesh.axis_names[0]))
    return jax.jit(fn, donate_argnums=donate_argnums, out_shardings=(run_sharding, run_sharding))


def shard_runs(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """Places a run-stacked pytree with its leading axis split across `mesh`."""
    n = mesh.shape[mesh.axis_names[0]]
    leaves = jax.tree.leaves(tree)
    if leaves and leaves[0].shape[0] % n:
        raise ValueError(
            f"{leaves[0].shape[0]} runs do not divide across {n} devices; use a multiple of {n} "
            "runs or fewer devices."
        )
    return jax.device_put(tree, NamedSharding(mesh, P(mesh.axis_names[0])))


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """Places a pytree replicated on every device of `mesh`."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(batch: Any, mesh: jax.sharding.Mesh) -> Any:
    """Places a host batch split on its leading axis across `mesh` (single process)."""
    return jax.device_put(batch, NamedSharding(mesh, P(mesh.axis_names[0])))


def to_host(tree: Any) -> Any:
    """`jax.device_get` to NumPy."""
    return jax.tree.map(np.asarray, jax.device_get(tree))
