"""Two processes on localhost (`jax.distributed`, 4 fake CPU devices each) train exactly what one
process with 8 devices trains: the same global batch, the same parameters."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np

from lsgan_jax.training import runners
from lsgan_jax.training.step import make_train_step

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from multihost_common import GLOBAL_BATCH, build, global_batches  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process_with_eight_devices(tmp_path):
    port = _free_port()
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4 " + os.environ.get(
        "LSGAN_JAX_TEST_XLA_FLAGS", ""
    )
    env["JAX_PLATFORMS"] = "cpu"
    out = tmp_path / "multi.npz"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.join(HERE, "multihost_worker.py"),
                str(i),
                "2",
                str(port),
                str(out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(HERE),
        )
        for i in range(2)
    ]
    logs = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        logs.append(o + e)
        assert p.returncode == 0, "\n".join(x[-3000:] for x in logs)
    assert all("8 devices done" in log for log in logs)

    # The same training in this process: one controller, 8 devices.
    assert jax.device_count() == 8
    spec, state, hp = build(runners.DATA_AXIS)
    mesh = runners.make_mesh()
    run = runners.data_parallel(
        make_train_step(spec), mesh, global_batch=GLOBAL_BATCH, donate=False
    )
    state = runners.replicate(state, mesh)
    for batch in global_batches():
        state, metrics = run(state, runners.shard_batch(batch, mesh), hp)
    with np.load(out) as multi:
        leaves = jax.tree.leaves(state)
        assert len(leaves) == len(multi.files) - 1
        for i, leaf in enumerate(leaves):
            np.testing.assert_allclose(multi[f"arr_{i}"], np.asarray(leaf), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(multi["d_loss"], np.asarray(metrics["d_loss"]), rtol=1e-5)
