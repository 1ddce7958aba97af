"""Metric writers: `metrics.jsonl` (always) and TensorBoard via tensorboardX (no TensorFlow)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np


def _to_float(v: Any) -> float | None:
    f = float(np.asarray(v))
    return f if math.isfinite(f) else None


class MetricWriter:
    """Writes scalars to `workdir/metrics.jsonl` and TensorBoard event files.

    Each JSONL line is `{"step": int, **scalars}`; non-finite values are written as null.
    Only process 0 of a multi-host job should create a writer.
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True):
        os.makedirs(workdir, exist_ok=True)
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", buffering=1)  # noqa: SIM115
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter  # noqa: PLC0415

            self._tb = SummaryWriter(os.path.join(workdir, "tb"))

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


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """Reads `workdir/metrics.jsonl` back as a list of dicts."""
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
