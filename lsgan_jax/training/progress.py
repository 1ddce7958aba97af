"""Progress display for the trainers."""

from __future__ import annotations

import sys


def progress(total: int, initial: int = 0, desc: str = "train"):
    """A tqdm bar with steps/s on an interactive terminal; a no-op object otherwise."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="step",
        disable=not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
