"""Tests for lsgan_jax.training.checkpoint with real orbax checkpoints on disk.

Every recovery test breaks the newest step in a way seen in practice (a truncated array file, one
flipped byte inside an array file, a deleted metadata file), then checks that `restore_latest`
falls back to the previous step with a warning, keeps the broken step under
`checkpoints_unusable/`, and that the next save at the broken step succeeds.
"""

from __future__ import annotations

import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import struct

from lsgan_jax.errors import ConfigError, NonFiniteError
from lsgan_jax.training.checkpoint import Checkpointer, CheckpointError


@struct.dataclass
class _State:
    step: jax.Array
    params: dict


def _state(step: int, *, n: int = 4096, runs: int | None = None) -> _State:
    """Random (incompressible) float32 parameters, so array files hold the raw bytes."""
    rng = np.random.default_rng(step)
    lead = () if runs is None else (runs,)
    return _State(
        step=jnp.asarray(step, jnp.int32),
        params={
            "w": jnp.asarray(rng.standard_normal((*lead, n)), jnp.float32),
            "b": jnp.asarray(rng.standard_normal((*lead, 3)), jnp.float32),
        },
    )


def _equal(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def _saved(tmp_path, steps=(1, 2), **kw) -> Checkpointer:
    ck = Checkpointer(str(tmp_path / "checkpoints"), **kw)
    for s in steps:
        ck.save(s, _state(s), {"step": s})
    ck.wait()
    return ck


def _largest_data_file(step_dir: str) -> str:
    """The biggest file under the step's `state/` item: the OCDBT data file with the arrays."""
    files = [
        os.path.join(root, f)
        for root, _, names in os.walk(os.path.join(step_dir, "state"))
        for f in names
        if os.sep + "d" + os.sep in os.path.join(root, f) + os.sep
    ]
    assert files, f"no OCDBT data files under {step_dir}"
    return max(files, key=os.path.getsize)


def _truncate(step_dir: str) -> None:
    path = _largest_data_file(step_dir)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _flip_byte(step_dir: str) -> None:
    path = _largest_data_file(step_dir)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0x01]))


def _delete_array_metadata(step_dir: str) -> None:
    os.remove(os.path.join(step_dir, "state", "_METADATA"))


def _delete_manifest(step_dir: str) -> None:
    os.remove(os.path.join(step_dir, "state", "manifest.ocdbt"))


def test_save_restore_round_trip_records_checksums(tmp_path):
    ck = _saved(tmp_path)
    assert ck.all_steps() == [1, 2]
    assert os.path.isdir(os.path.join(ck.directory, "2", "checksums"))
    state, meta, step = ck.restore_latest(_state(0))
    assert step == 2 and meta == {"step": 2}
    assert _equal(state, _state(2))
    ck.close()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_max_to_keep_below_one_is_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match="keep_checkpoints"):
        Checkpointer(str(tmp_path / "checkpoints"), max_to_keep=bad)
    assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.parametrize(
    "corrupt, reason",
    [
        (_truncate, "unreadable"),
        (_flip_byte, "checksum"),
        (_delete_array_metadata, "unreadable"),
        (_delete_manifest, "unreadable"),
    ],
)
def test_unusable_latest_step_is_moved_aside_and_saved_again(tmp_path, caplog, corrupt, reason):
    ck = _saved(tmp_path)
    ck.close()
    corrupt(os.path.join(str(tmp_path / "checkpoints"), "2"))

    ck = Checkpointer(str(tmp_path / "checkpoints"))
    with caplog.at_level(logging.WARNING, logger="lsgan_jax.training.checkpoint"):
        state, meta, step = ck.restore_latest(_state(0))
    assert step == 1 and meta == {"step": 1}
    assert _equal(state, _state(1))
    assert any("step 2" in r.getMessage() and "unusable" in r.getMessage() for r in caplog.records)
    # Kept, renamed, outside the manager's directory; the chain no longer lists it.
    assert os.listdir(tmp_path / "checkpoints_unusable") == [f"2-{reason}"]
    assert ck.all_steps() == [1]
    # The save at the broken step succeeds again (no StepAlreadyExistsError) and restores.
    ck.save(2, _state(2), {"step": 2})
    ck.wait()
    state, meta, step = ck.restore_latest(_state(0))
    assert step == 2 and _equal(state, _state(2))
    ck.close()


def test_lost_step_metadata_alone_is_not_corruption(tmp_path):
    """Orbax's step-level `_CHECKPOINT_METADATA` is bookkeeping; the arrays still verify."""
    ck = _saved(tmp_path)
    ck.close()
    os.remove(os.path.join(str(tmp_path / "checkpoints"), "2", "_CHECKPOINT_METADATA"))
    state, _, step = Checkpointer(str(tmp_path / "checkpoints")).restore_latest(_state(0))
    assert step == 2 and _equal(state, _state(2))
    assert not os.path.exists(tmp_path / "checkpoints_unusable")


def test_flipped_byte_would_restore_wrong_values_without_the_checksum(tmp_path):
    """The flipped byte is silent to orbax itself; only the checksum catches it."""
    ck = _saved(tmp_path)
    ck.close()
    step_dir = os.path.join(str(tmp_path / "checkpoints"), "2")
    _flip_byte(step_dir)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _state(0))
    raw = ocp.StandardCheckpointer().restore(os.path.join(step_dir, "state"), abstract)
    assert not _equal(raw, _state(2))  # orbax returns different numbers, no error
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        Checkpointer(str(tmp_path / "checkpoints")).restore(2, _state(0))


def test_all_checkpoints_unusable_starts_from_scratch(tmp_path, caplog):
    ck = _saved(tmp_path)
    ck.close()
    for s in ("1", "2"):
        _truncate(os.path.join(str(tmp_path / "checkpoints"), s))
    ck = Checkpointer(str(tmp_path / "checkpoints"))
    with caplog.at_level(logging.WARNING, logger="lsgan_jax.training.checkpoint"):
        assert ck.restore_latest(_state(0)) is None
    unusable = str(tmp_path / "checkpoints_unusable")
    assert sorted(os.listdir(unusable)) == ["1-unreadable", "2-unreadable"]
    assert any(
        "starting from scratch" in r.getMessage() and unusable in r.getMessage()
        for r in caplog.records
    )
    ck.save(1, _state(1), {"step": 1})
    ck.wait()
    assert ck.all_steps() == [1]
    ck.close()


def test_moving_aside_twice_keeps_both_copies(tmp_path):
    ck = _saved(tmp_path)
    for _ in range(2):
        _truncate(os.path.join(ck.directory, "2"))
        assert ck.restore_latest(_state(0))[2] == 1
        ck.save(2, _state(2), {"step": 2})
        ck.wait()
    assert sorted(os.listdir(tmp_path / "checkpoints_unusable")) == [
        "2-unreadable",
        "2-unreadable-1",
    ]
    ck.close()


def test_structure_change_is_a_config_error_and_moves_nothing(tmp_path):
    ck = _saved(tmp_path)
    wider = _state(0, n=8192)
    with pytest.raises(ConfigError, match=r"params\.w: float32\[4096\] -> float32\[8192\]"):
        ck.restore_latest(wider)
    assert ck.all_steps() == [1, 2]
    assert not os.path.exists(tmp_path / "checkpoints_unusable")
    ck.close()


def test_nonfinite_state_is_never_saved(tmp_path):
    ck = _saved(tmp_path, steps=(1,))
    bad = _state(2)
    bad = bad.replace(params={**bad.params, "b": bad.params["b"].at[1].set(jnp.nan)})
    with pytest.raises(
        NonFiniteError, match=r"step 2.*params\.b.*last finite checkpoint is step 1"
    ):
        ck.save(2, bad, {"step": 2})
    ck.wait()
    assert ck.all_steps() == [1]
    assert sorted(os.listdir(ck.directory)) == ["1"]
    inf = _state(3).replace(params={"w": jnp.full(4, jnp.inf), "b": jnp.zeros(3)})
    with pytest.raises(NonFiniteError, match="step 3"):
        ck.save(3, inf, {})
    ck.close()


def test_nonfinite_on_an_empty_directory_says_there_is_no_checkpoint(tmp_path):
    ck = Checkpointer(str(tmp_path / "checkpoints"))
    with pytest.raises(NonFiniteError, match="no earlier checkpoint"):
        ck.save(1, _state(1).replace(step=jnp.asarray(1), params={"w": jnp.array([jnp.nan])}), {})
    assert ck.all_steps() == []
    ck.close()


def test_allow_nonfinite_runs_only_exempts_the_marked_runs(tmp_path):
    ck = Checkpointer(str(tmp_path / "checkpoints"))
    state = _state(1, runs=3)
    state = state.replace(params={**state.params, "w": state.params["w"].at[1, 5].set(jnp.nan)})
    with pytest.raises(NonFiniteError):
        ck.save(1, state, {})
    ck.save(1, state, {}, allow_nonfinite_runs=[1])
    ck.wait()
    assert ck.all_steps() == [1]
    with pytest.raises(NonFiniteError):
        ck.save(2, state, {}, allow_nonfinite_runs=[0, 2])
    # NaN survives the round trip and the checksum still verifies (bytes, not values).
    restored, _, _ = ck.restore_latest(_state(0, runs=3))
    assert np.isnan(restored.params["w"][1, 5])
    ck.close()


def test_interrupted_tmp_save_is_not_a_step_and_is_saved_again(tmp_path):
    ck = _saved(tmp_path)
    ck.close()
    # What a kill -9 during orbax's save of step 3 leaves behind: an unfinished tmp directory.
    tmp = os.path.join(str(tmp_path / "checkpoints"), "3.orbax-checkpoint-tmp-1764590000000000")
    shutil.copytree(os.path.join(str(tmp_path / "checkpoints"), "2"), tmp)
    os.remove(os.path.join(tmp, "_CHECKPOINT_METADATA"))
    ck = Checkpointer(str(tmp_path / "checkpoints"))
    assert ck.all_steps() == [1, 2]
    assert ck.restore_latest(_state(0))[2] == 2
    ck.save(3, _state(3), {"step": 3})
    ck.wait()
    assert ck.all_steps() == [1, 2, 3]
    assert _equal(ck.restore(3, _state(0))[0], _state(3))
    assert not any("orbax-checkpoint-tmp" in n for n in os.listdir(ck.directory))
    ck.close()


def test_checkpoints_without_checksums_still_restore(tmp_path):
    """Steps written before checksums existed (no `checksums` item) restore unverified."""
    directory = str(tmp_path / "checkpoints")
    mgr = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=True))
    mgr.save(
        5,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(_state(5)), meta=ocp.args.JsonSave({"old": True})
        ),
    )
    mgr.wait_until_finished()
    mgr.close()
    state, meta, step = Checkpointer(directory).restore_latest(_state(0))
    assert step == 5 and meta == {"old": True} and _equal(state, _state(5))


def test_sharded_state_round_trip_verifies(tmp_path):
    """A state sharded over the 8 fake devices: checksums cover the gathered global arrays."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    state = _state(1)
    state = state.replace(params={**state.params, "w": jax.device_put(state.params["w"], sharded)})
    ck = Checkpointer(str(tmp_path / "checkpoints"))
    ck.save(1, state, {})
    ck.wait()
    like = _state(0)
    like = like.replace(params={**like.params, "w": jax.device_put(like.params["w"], sharded)})
    restored, _, step = ck.restore_latest(like)
    assert step == 1 and _equal(restored, state)
    assert restored.params["w"].sharding == sharded
    ck.close()
