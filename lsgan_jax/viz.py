"""Figures: 2-D density panels, sample grids, curves (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from lsgan_jax._extras import require

matplotlib = require("matplotlib", "viz", purpose="lsgan_jax.viz (figures)")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402


def density_image(points: np.ndarray, lim: float, bins: int = 160, blur: float = 1.5) -> np.ndarray:
    """A smoothed 2-D histogram of `points` (N, 2) on [-lim, lim]², normalised to max 1."""
    h, _, _ = np.histogram2d(
        points[:, 0], points[:, 1], bins=bins, range=[[-lim, lim], [-lim, lim]]
    )
    h = ndimage.gaussian_filter(h.T, blur)
    return h / max(h.max(), 1e-12)


def density_panels(
    snapshots: dict[int, np.ndarray],
    rows: Sequence[tuple[str, int]],
    ground_truth: np.ndarray,
    path: str,
    *,
    lim: float,
    means: np.ndarray | None = None,
    title: str | None = None,
) -> str:
    """The paper-style figure: one row per loss, density panels at snapshot steps, truth at the end.

    Args:
      snapshots: {step: samples of every run, (R, N, 2)}.
      rows: (row label, run index) for each row.
      ground_truth: (N, 2) samples of the target mixture.
      path: PNG file to write.
      lim: half-width of the plotted square.
      means: optional mode centres, drawn as small crosses.
    """
    steps = sorted(snapshots)
    ncol = len(steps) + 1
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.9 * ncol, 1.95 * len(rows)), squeeze=False)
    for r, (label, run) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r, c]
            pts = snapshots[steps[c]][run] if c < len(steps) else ground_truth
            ax.imshow(
                density_image(np.asarray(pts), lim),
                origin="lower",
                extent=(-lim, lim, -lim, lim),
                cmap="Greens",
                interpolation="bilinear",
            )
            if means is not None:
                ax.plot(means[:, 0], means[:, 1], "x", color="tab:red", ms=3, mew=0.6, alpha=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("target" if c == len(steps) else f"step {steps[c]:,}", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def line_plot(
    xs: np.ndarray,
    curves: dict[str, np.ndarray],
    path: str,
    *,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
    title: str | None = None,
    bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> str:
    """Curves sharing an x axis (optionally with shaded bands, e.g. ± s.e. over seeds)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for name, ys in curves.items():
        ax.plot(xs, ys, label=name, lw=1.4)
        if bands and name in bands:
            lo, hi = bands[name]
            ax.fill_between(xs, lo, hi, alpha=0.2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tiles (N, H, W, C) images in [-1, 1] into one HWC uint8 grid."""
    x = np.asarray(images, np.float32)
    n, h, w, c = x.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.float32)
    for i in range(n):
        r, col = divmod(i, ncol)
        grid[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + col * (w + pad) : pad + col * (w + pad) + w,
        ] = (x[i] + 1.0) / 2.0
    return (np.clip(grid, 0.0, 1.0) * 255).round().astype(np.uint8)


def save_image(grid: np.ndarray, path: str) -> str:
    """Writes an HWC uint8 image (C = 1 or 3) to PNG."""
    from PIL import Image  # noqa: PLC0415

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    arr = grid[..., 0] if grid.shape[-1] == 1 else grid
    Image.fromarray(arr).save(path)
    return path
