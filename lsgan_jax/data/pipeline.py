"""The training input pipeline: a checkpointable grain iterator of preprocessed batches.

Pipeline (per process; :func:`make_iterator`)::

    grain.MapDataset.range(steps)                     # step k = 0, 1, 2, … (forever by default)
      .map(step k → example indices of batch k        # process p of P: its slice of the split,
                    → read (TFDS ArrayRecord source, #   a fresh seeded permutation each epoch
                      or an in-memory copy for small sets)
                    → crop → bilinear resize → x / 127.5 − 1)
      .to_iter_dataset(grain.ReadOptions(num_threads, prefetch))  # in-process prefetch threads
    → {"image": float32 (B_local, S, S, C) in [−1, 1], "label": int32 (B_local,)}

The iterator is a ``grain.DatasetIterator``: ``get_state()``/``set_state()`` (state
``{"next_index": k}``, a few bytes) and orbax saves it with
``grain.checkpoint.CheckpointSave(it)`` / restores it with ``CheckpointRestore(it)``; resuming is
exact because batch ``k`` is a pure function of (dataset, seed, process, k).

**Why one map call per batch.** grain's per-example path (``source → shuffle → repeat → batch``)
spends most of its time in Python per example (``index_shuffle`` above all), which caps a
tiny-image pipeline whatever the threads. Computing a batch's indices with one vectorized
permutation per epoch, reading them, and resizing the whole batch with two matrix products
removes that overhead. grain's multiprocessing (``mp_prefetch``) is slower than in-process
threads on a few cores, so the default is in-process prefetch with ``num_threads`` threads
(measurements: ``docs/data.md``).

Needs the ``[data]`` extra (grain; TFDS for named datasets); imported lazily.
"""

from __future__ import annotations

import logging
import numbers
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lsgan_jax.data.catalog import DatasetSpec
from lsgan_jax.data.resize import check_crop, preprocess
from lsgan_jax.data.sources import ImageDatasetInfo, load_source

if TYPE_CHECKING:  # pragma: no cover
    import grain

log = logging.getLogger(__name__)

__all__ = [
    "AUTO_CACHE_BYTES",
    "DEFAULT_NUM_THREADS",
    "local_batch_size",
    "make_iterator",
    "synthetic_batches",
]

#: Default number of in-process prefetch threads.
DEFAULT_NUM_THREADS = max(1, min(4, os.cpu_count() or 1))


def _as_hwc(image: Any) -> np.ndarray:
    image = np.asarray(image)
    return image[..., None] if image.ndim == 2 else image


class _MemorySource:
    """Examples ``[start, stop)`` of a source read once into uint8 arrays (small datasets).

    Reading through TFDS (an ArrayRecord read and a proto parse per example) dominates the cost
    of tiny images; gathering from memory is far cheaper (``docs/data.md``).
    """

    def __init__(self, source: Any, start: int, stop: int):
        first = _as_hwc(source[start]["image"])
        log.info("Reading %d examples of %s into memory.", stop - start, first.shape)
        self.start = start
        self.images = np.empty((stop - start, *first.shape), np.uint8)
        self.labels = np.empty((stop - start,), np.int32)
        for i in range(start, stop):
            record = source[i]
            image = _as_hwc(record["image"])
            if image.shape != first.shape:
                raise ValueError(
                    f"cache=True needs images of one shape; got {first.shape} and {image.shape}."
                )
            self.images[i - start] = image
            self.labels[i - start] = int(record.get("label", 0))

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        local = np.asarray(indices, np.int64) - self.start
        return self.images[local], self.labels[local]


#: ``cache=None`` reads a split into memory when its shard is at most this many bytes.
AUTO_CACHE_BYTES = 256 << 20


def _auto_cache(source: Any, num_examples: int) -> bool:
    info = getattr(source, "info", None)
    if not isinstance(info, ImageDatasetInfo) or None in info.image_shape:
        return False
    return num_examples * int(np.prod(info.image_shape)) <= AUTO_CACHE_BYTES


class _BatchIndices:
    """Step ``k`` → the example indices of batch ``k``: a pure function of (seed, k).

    Positions ``k·B … k·B + B − 1`` of an endless stream over this process's ``n`` examples; in
    epoch ``e`` the stream visits them in the order of a fresh permutation seeded by
    ``(seed, process, e)``. Vectorized (grain's per-example ``index_shuffle`` would cost more
    than reading a tiny image), and it keeps grain's iterator state to one number, the step.
    """

    def __init__(
        self,
        start: int,
        stop: int,
        batch: int,
        *,
        seed: int,
        process_index: int,
        shuffle: bool,
        total: int | None,
    ):
        self.start, self.n, self.batch = start, stop - start, batch
        self.seed, self.process_index = seed, process_index
        self.shuffle, self.total = shuffle, total

        self._perms: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # picklable for grain worker processes
        state = dict(self.__dict__)
        state["_perms"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _permutation(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:  # two threads may both compute it: same result, harmless
            rng = np.random.default_rng([self.seed, self.process_index, epoch])
            perm = rng.permutation(self.n).astype(np.int32 if self.n < 2**31 else np.int64)
            with self._lock:
                self._perms[epoch] = perm
                for old in sorted(self._perms)[:-3]:  # keep the newest three epochs
                    del self._perms[old]
        return perm

    def __call__(self, step: int) -> np.ndarray:
        stop = (step + 1) * self.batch
        if self.total is not None:
            stop = min(stop, self.total)
        epoch, pos = np.divmod(np.arange(step * self.batch, stop, dtype=np.int64), self.n)
        if self.shuffle:
            for e in np.unique(epoch):
                sel = epoch == e
                pos[sel] = self._permutation(int(e))[pos[sel]]
        return self.start + pos


class _BatchLoader:
    """grain map: a step → its preprocessed batch (picklable, thread-safe)."""

    def __init__(self, indices: _BatchIndices, source: Any, image_size: int, crop: str):
        self.indices = indices
        self.source = source
        self.image_size = image_size
        self.crop = crop

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        indices = self.indices(int(step))
        if isinstance(self.source, _MemorySource):
            images, labels = self.source.gather(indices)
        else:
            records = [self.source[int(i)] for i in indices]
            images = [_as_hwc(r["image"]) for r in records]
            labels = np.fromiter((int(r.get("label", 0)) for r in records), np.int32, len(records))
        return {"image": preprocess(images, self.image_size, self.crop), "label": labels}


# --------------------------------------------------------------------------------------------
# Iterators
# --------------------------------------------------------------------------------------------


def _grain():
    from lsgan_jax._extras import require  # noqa: PLC0415

    return require("grain", "data", purpose="the image input pipeline")


def _check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return int(value)


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax  # noqa: PLC0415

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    process_count = _check_int("process_count", process_count, minimum=1)
    process_index = _check_int("process_index", process_index, minimum=0)
    if process_index >= process_count:
        raise ValueError(f"process_index={process_index} must be < process_count={process_count}.")
    return process_index, process_count


def local_batch_size(global_batch: int, process_count: int) -> int:
    """``global_batch // process_count``; ``ValueError`` unless it divides evenly."""
    global_batch = _check_int("global_batch", global_batch, minimum=1)
    if global_batch % process_count:
        raise ValueError(
            f"global_batch={global_batch} is not divisible by process_count={process_count}: "
            "every process loads global_batch // process_count examples per step. Use a "
            f"multiple of {process_count} (e.g. {max(1, global_batch // process_count)} x "
            f"{process_count} = {max(1, global_batch // process_count) * process_count})."
        )
    return global_batch // process_count


def _seed_entropy(seed: Any) -> int:
    """Any int as SeedSequence entropy (non-negative, 64 bits); SeedSequence hashes it, so
    nearby seeds give unrelated streams."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    return int(seed) % (1 << 64)


def make_iterator(
    name_or_source: str | Sequence[Mapping[str, Any]],
    *,
    global_batch: int,
    image_size: int,
    seed: int,
    split: str = "train",
    data_dir: str | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    shuffle: bool = True,
    drop_remainder: bool = True,
    num_threads: int = DEFAULT_NUM_THREADS,
    prefetch: int | None = None,
    num_epochs: int | None = None,
    crop: str | None = None,
    cache: bool | None = None,
) -> grain.DatasetIterator:
    """A checkpointable iterator of this process's batches, repeating forever by default.

    Process ``p`` of ``P`` reads the contiguous slice ``[p·N/P, (p+1)·N/P)`` of the split's
    ``N`` examples (disjoint, covering the split; with finite ``num_epochs`` and
    ``drop_remainder`` every slice has ``N // P`` examples so all processes yield the same number
    of batches), shuffles it with a new permutation each epoch, and yields
    ``global_batch // P`` examples per batch. Batches cross epoch boundaries when repeating.

    Args:
      name_or_source: a dataset name (see :func:`get_spec`) or any random-access source of
        ``{"image": uint8 HWC, "label": int}`` (e.g. from :func:`load_source`, or a list).
      global_batch: examples per step over all processes.
      image_size: output size S.
      seed: shuffle seed (any int); the same seed gives the same batches.
      split: TFDS split string.
      data_dir: TFDS data directory (see :func:`default_data_dir`).
      process_index: this process; default ``jax.process_index()``.
      process_count: number of processes; default ``jax.process_count()``.
      shuffle: shuffle the examples (each epoch differently).
      drop_remainder: drop a last partial batch (only matters with finite ``num_epochs``).
      num_threads: in-process prefetch threads (0: load synchronously in ``next``).
      prefetch: batches to read ahead; default ``max(4, 2 · num_threads)``.
      num_epochs: ``None`` repeats forever; an int stops after that many passes.
      crop: override the dataset's crop (``"none"``, ``"square"``, ``"center:H[xW]"``); default
        the spec's, or ``"square"`` for a raw source.
      cache: read this process's examples into memory once (uint8, same-shape images only)
        instead of through TFDS at every step; ``None`` caches fixed-shape datasets whose
        shard is at most :data:`AUTO_CACHE_BYTES` (digits, MNIST, Fashion-MNIST, CIFAR-10,
        Omniglot, small folders: a few seconds at start, then 10-50x the throughput). Same
        batches either way.

    Returns:
      A ``grain.DatasetIterator`` of ``{"image": float32 (B_local, S, S, C) in [−1, 1],
      "label": int32 (B_local,)}`` with ``get_state()``/``set_state()``; save it with
      ``grain.checkpoint.CheckpointSave(it)`` in an orbax ``Composite``.

    Raises:
      ValueError: bad batch/process/size arguments, unknown dataset, split or crop.
      DatasetNotPreparedError: the dataset is not prepared (message says how).
    """
    grain = _grain()

    process_index, process_count = _processes(process_index, process_count)
    batch = local_batch_size(global_batch, process_count)
    image_size = _check_int("image_size", image_size, minimum=1)
    num_threads = _check_int("num_threads", num_threads, minimum=0)
    prefetch = max(4, 2 * num_threads) if prefetch is None else prefetch
    prefetch = _check_int("prefetch", prefetch, minimum=1)
    if num_epochs is not None:
        num_epochs = _check_int("num_epochs", num_epochs, minimum=1)
    seed = _seed_entropy(seed)

    if isinstance(name_or_source, str):
        source, _ = load_source(
            name_or_source, split=split, data_dir=data_dir, image_size=image_size
        )
        crop = source.spec.crop if crop is None else crop
    else:
        source = name_or_source
        spec = getattr(source, "spec", None)
        crop = (spec.crop if isinstance(spec, DatasetSpec) else "square") if crop is None else crop
    crop = check_crop(crop)

    n = len(source)
    if n < process_count:
        raise ValueError(f"The split has {n} examples, fewer than process_count={process_count}.")
    if num_epochs is not None and drop_remainder:
        per = n // process_count
        start, stop = process_index * per, (process_index + 1) * per
    else:
        start, stop = process_index * n // process_count, (process_index + 1) * n // process_count
    if num_epochs is not None and drop_remainder and (stop - start) * num_epochs < batch:
        raise ValueError(
            f"{stop - start} examples x {num_epochs} epochs per process make no full batch of "
            f"{batch}; lower global_batch, raise num_epochs or pass drop_remainder=False."
        )

    if cache is None:
        cache = _auto_cache(source, stop - start)
    loader_source = _MemorySource(source, start, stop) if cache else source

    if num_epochs is None:
        total, num_batches = None, sys.maxsize
    else:
        total = (stop - start) * num_epochs
        num_batches = total // batch if drop_remainder else -(-total // batch)
    indices = _BatchIndices(
        start, stop, batch, seed=seed, process_index=process_index, shuffle=shuffle, total=total
    )
    ds = grain.MapDataset.range(num_batches).map(
        _BatchLoader(indices, loader_source, image_size, crop)
    )
    read = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    return iter(ds.to_iter_dataset(read))


class _SyntheticPool:
    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self.batches = batches

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        return self.batches[i]


def synthetic_batches(
    global_batch: int,
    image_size: int,
    channels: int,
    num_classes: int,
    seed: int,
    *,
    process_count: int | None = None,
    num_distinct: int = 4,
) -> grain.DatasetIterator:
    """An infinite iterator of random batches shaped like :func:`make_iterator`'s.

    For "does the input pipeline keep up" benchmarks: it costs next to nothing per batch because
    it cycles through ``num_distinct`` precomputed batches (read-only arrays) — images uniform in
    [−1, 1], labels uniform in ``[0, num_classes)``. Also a checkpointable
    ``grain.DatasetIterator``, so a trainer can treat it like the real one.

    Args:
      global_batch: examples per step over all processes (divided by ``process_count``).
      image_size: S.
      channels: C.
      num_classes: label range (1 for unconditional).
      seed: any int.
      process_count: default ``jax.process_count()``.
      num_distinct: how many different batches to cycle through.
    """
    grain = _grain()

    _, process_count = _processes(0, process_count)
    batch = local_batch_size(global_batch, process_count)
    image_size = _check_int("image_size", image_size, minimum=1)
    channels = _check_int("channels", channels, minimum=1)
    num_classes = _check_int("num_classes", num_classes, minimum=1)
    num_distinct = _check_int("num_distinct", num_distinct, minimum=1)
    rng = np.random.default_rng(_seed_entropy(seed))
    pool = []
    for _ in range(num_distinct):
        image = rng.uniform(-1.0, 1.0, (batch, image_size, image_size, channels)).astype(np.float32)
        label = rng.integers(0, num_classes, (batch,), dtype=np.int32)
        image.flags.writeable = False
        label.flags.writeable = False
        pool.append({"image": image, "label": label})
    ds = grain.MapDataset.range(num_distinct).repeat().map(_SyntheticPool(pool))
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=1)))
