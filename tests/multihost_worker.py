"""One process of the two-process `jax.distributed` test (run by tests/test_multihost.py).

Usage: python tests/multihost_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz
Each process has 4 fake CPU devices (XLA_FLAGS set by the parent); together they form one
8-device mesh. Every process feeds only its own half of the global batch.
"""

import os
import sys

import jax
import numpy as np

pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from multihost_common import GLOBAL_BATCH, STEPS, build, global_batches  # noqa: E402

from lsgan_jax.training import runners  # noqa: E402
from lsgan_jax.training.step import make_train_step  # noqa: E402

assert jax.process_count() == nproc and jax.device_count() == 4 * nproc, jax.devices()
spec, state, hp = build(runners.DATA_AXIS)
mesh = runners.make_mesh()
run = runners.data_parallel(make_train_step(spec), mesh, global_batch=GLOBAL_BATCH, donate=False)
state = jax.device_put(state, NamedSharding(mesh, P()))
per = GLOBAL_BATCH // nproc
for batch in global_batches():
    local = {"image": batch["image"][pid * per : (pid + 1) * per]}
    sharded = {
        k: jax.make_array_from_process_local_data(NamedSharding(mesh, P(runners.DATA_AXIS)), v)
        for k, v in local.items()
    }
    state, metrics = run(state, sharded, hp)
leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(state)]
if pid == 0:
    np.savez(out, *leaves, d_loss=np.asarray(metrics["d_loss"].addressable_data(0)))
print(f"process {pid}: {STEPS} steps on {jax.device_count()} devices done", flush=True)
