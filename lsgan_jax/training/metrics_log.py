"""Metric writers: `metrics.jsonl` (always) and TensorBoard via tensorboardX (no TensorFlow).

Logs stay consistent with the restored state. A resumed run passes the restored checkpoint's step
as `resume_step`: rows written after that step by the interrupted process (the steps that will be
trained again) are cut from `metrics.jsonl`, together with a torn last line left by a kill, before
new rows are appended, so every step appears exactly once. The TensorBoard writer of the resumed
segment opens a new event file with ``purge_step = resume_step + 1``; TensorBoard then discards the
events with ``step > resume_step`` that older files hold.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


def _to_float(v: Any) -> float | None:
    f = float(np.asarray(v))
    return f if math.isfinite(f) else None


def summary_writer_class() -> type:
    """tensorboardX's ``SummaryWriter``, imported without PyTorch.

    ``tensorboardX.writer`` imports ``torch`` at module level when it is installed, only to accept
    torch tensors; we log Python floats and NumPy arrays, so that import is seconds of start-up
    for nothing in every run of an environment that also has PyTorch (e.g. the test extra's
    torch-fidelity). While tensorboardX is first imported, ``torch`` is hidden (unless it is
    already loaded); it imports normally afterwards.
    """
    if "tensorboardX.writer" not in sys.modules and "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` -> ImportError
        try:
            import tensorboardX  # noqa: PLC0415, F401
        finally:
            del sys.modules["torch"]
    from tensorboardX import SummaryWriter  # noqa: PLC0415

    return SummaryWriter


class MetricWriter:
    """Writes scalars to `workdir/metrics.jsonl` and TensorBoard event files.

    Each JSONL line is `{"step": int, **scalars}`; non-finite values are written as null.
    Only process 0 of a multi-host job should create a writer.

    Args:
      workdir: the run's directory (``metrics.jsonl`` and ``tb/`` go there).
      tensorboard: also write TensorBoard event files.
      resume_step: the step of the restored checkpoint when resuming; rows with a larger step are
        removed from ``metrics.jsonl`` first and TensorBoard purges events after it. ``0`` on a
        fresh start in a workdir whose run was moved aside or whose checkpoints were all unusable
        (keeps only step-0 rows); ``None`` leaves existing rows alone (a torn last line is still
        dropped).
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True, resume_step: int | None = None):
        os.makedirs(workdir, exist_ok=True)
        path = os.path.join(workdir, METRICS_FILE)
        if os.path.exists(path):
            _repair(path, resume_step)
        self._jsonl = open(path, "a", buffering=1)  # noqa: SIM115
        self._tb = None
        if tensorboard:
            SummaryWriter = summary_writer_class()  # noqa: N806
            purge = None if resume_step is None else int(resume_step) + 1
            # tensorboardX names files by the second; the suffix keeps a segment started within
            # the same second from overwriting the previous one and sorts after it.
            self._tb = SummaryWriter(
                os.path.join(workdir, "tb"),
                purge_step=purge,
                filename_suffix=f".{time.time_ns()}",
            )

    def write_scalars(self, step: int, scalars: dict[str, Any]) -> None:
        row = {"step": int(step)}
        row.update({k: _to_float(v) for k, v in scalars.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and v is not None:
                    self._tb.add_scalar(k, v, int(step))

    def write_image(self, step: int, name: str, image: np.ndarray) -> None:
        """`image`: HWC uint8 or float in [0, 1]."""
        if self._tb is not None:
            self._tb.add_image(name, np.asarray(image), int(step), dataformats="HWC")

    def write_hparams(self, hparams: dict[str, Any]) -> None:
        if self._tb is not None:
            flat = {
                k: (v if isinstance(v, int | float | str | bool) else str(v))
                for k, v in hparams.items()
            }
            self._tb.add_text("config", json.dumps(flat, indent=1, default=str), 0)

    def flush(self) -> None:
        self._jsonl.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def _parse(path: str, *, strict: bool = True) -> tuple[list[dict[str, Any]], bool, int]:
    """Rows of a JSONL file, whether its last line was torn, and how many lines were skipped.

    Raises:
      ValueError: when `strict`, a line other than the last is unparsable (the file is damaged,
        not torn); otherwise such lines are skipped with a warning.
    """
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    rows, torn, skipped = [], False, 0
    numbered = [(i, ln) for i, ln in enumerate(lines, 1) if ln.strip()]
    for k, (i, line) in enumerate(numbered):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if k == len(numbered) - 1:
                torn = True
                break
            if not strict:
                log.warning("%s, line %d, is not a JSON row (%s); dropped it.", path, i, e)
                skipped += 1
                continue
            raise ValueError(f"{path}, line {i}, is not a JSON row ({e}); fix or remove it.") from e
        rows.append(row)
    return rows, torn, skipped


def _repair(path: str, resume_step: int | None) -> None:
    """Drops a torn last line and (when resuming) the rows after `resume_step`; atomic rewrite."""
    rows, torn, damaged = _parse(path, strict=False)
    unterminated = False
    if os.path.getsize(path) > 0:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            unterminated = f.read(1) != b"\n"  # a row without its newline: rewrite it whole
    kept = rows if resume_step is None else [r for r in rows if r.get("step", 0) <= resume_step]
    if torn:
        log.warning("%s: dropped a torn last line (the previous process was killed).", path)
    if len(kept) < len(rows):
        log.info("%s: removed %d rows after step %s.", path, len(rows) - len(kept), resume_step)
    if torn or unterminated or damaged or len(kept) < len(rows):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(tmp, path)


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """Reads `workdir/metrics.jsonl` back as a list of dicts.

    A torn last line (a process killed mid-write) is skipped with a warning.

    Raises:
      ValueError: a line before the last is not a JSON row.
    """
    path = os.path.join(workdir, METRICS_FILE)
    rows, torn, _ = _parse(path)
    if torn:
        log.warning("%s: skipped a torn last line.", path)
    return rows
