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


def _colors(n: int) -> list:
    """n distinguishable colours: tab10 up to 10 curves, then tab20, then a sampled colormap."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("turbo")(i / max(n - 1, 1)) for i in range(n)]


def wrap_label(label: str, width: int = 28) -> str:
    """A legend / tick label wrapped at commas and spaces to lines of about ``width`` chars."""
    parts = label.replace(",", ", ").split()
    lines, cur = [], ""
    for part in parts:
        if cur and len(cur) + 1 + len(part) > width:
            lines.append(cur)
            cur = part
        else:
            cur = f"{cur} {part}" if cur else part
    lines.append(cur)
    return "\n".join(lines)


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
    per_panel: int = 9,
) -> str:
    """Curves sharing an x axis (optionally with shaded bands, e.g. ± s.e. over seeds).

    Up to 6 curves share one axes with the legend inside. More curves become small multiples:
    panels of at most ``per_panel`` curves (in the given order), stacked with a shared x and y
    axis, each with its legend outside to the right and wrapped labels, so every curve keeps a
    distinct colour and a readable name with dozens of groups. The saved figure is cropped to
    everything drawn, so no label is cut.
    """
    names = list(curves)
    many = len(names) > 6
    chunks = (
        [names[i : i + per_panel] for i in range(0, len(names), per_panel)] if many else [names]
    )
    fig, axes = plt.subplots(
        len(chunks), 1, figsize=(7.6 if many else 5.2, (2.9 if many else 3.4) * len(chunks)),
        sharex=True, sharey=True, squeeze=False,
    )  # fmt: skip
    for ax, chunk in zip(axes[:, 0], chunks, strict=True):
        for name, color in zip(chunk, _colors(len(chunk)), strict=True):
            label = wrap_label(name, 40) if many else name
            ax.plot(xs, curves[name], label=label, lw=1.3, color=color)
            if bands and name in bands:
                lo, hi = bands[name]
                ax.fill_between(xs, lo, hi, alpha=0.15, color=color, lw=0)
        if logy:
            ax.set_yscale("log")
        ax.set_ylabel(ylabel, fontsize=8 if many else None)
        ax.grid(alpha=0.3)
        if many:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                      borderaxespad=0.0, labelspacing=0.4)  # fmt: skip
        else:
            ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel(xlabel)
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def interval_plot(
    labels: Sequence[str],
    values: Sequence[float],
    intervals: Sequence[tuple[float, float]],
    path: str,
    *,
    xlabel: str,
    title: str | None = None,
    colors: Sequence[str] | None = None,
) -> str:
    """One horizontal bar per group with its interval (e.g. a 95 % CI), labels wrapped at left.

    Horizontal bars keep long group names (a sweep point's fields) readable for any number of
    groups: the figure grows with the number of rows, and is cropped to what is drawn.
    """
    n = len(labels)
    fig, ax = plt.subplots(figsize=(6.4, max(2.0, 0.32 * n + 0.9)))
    y = np.arange(n)[::-1]
    vals = np.asarray(values, np.float64)
    lo = np.asarray([v - iv[0] for v, iv in zip(vals, intervals, strict=True)])
    hi = np.asarray([iv[1] - v for v, iv in zip(vals, intervals, strict=True)])
    ax.barh(y, vals, xerr=np.stack([np.maximum(lo, 0), np.maximum(hi, 0)]), capsize=2,
            color=list(colors) if colors else "tab:green", alpha=0.8, height=0.7)  # fmt: skip
    ax.set_yticks(y, [wrap_label(lb, 44) for lb in labels], fontsize=7)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
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


def sample_rows(samples: Sequence[np.ndarray | None], ncol: int = 16) -> np.ndarray | None:
    """One grid row per sample array (e.g. per seed), each cut or padded (white) to ``ncol``.

    Args:
      samples: ``(N_i, H, W, C)`` arrays in [−1, 1] (``None`` or empty ones are skipped).
      ncol: Images per row.

    Returns:
      An HWC uint8 grid, or None when there is nothing to draw.
    """
    rows = [np.asarray(s[:ncol], np.float32) for s in samples if s is not None and len(s)]
    if not rows:
        return None
    rows = [np.concatenate([r, np.ones((ncol - len(r), *r.shape[1:]), r.dtype)]) for r in rows]
    return image_grid(np.concatenate(rows), ncol=ncol)


def save_grid(samples: Sequence[np.ndarray | None], path: str, ncol: int = 16) -> str | None:
    """:func:`sample_rows` written to ``path`` (PNG); None when there is nothing to draw."""
    grid = sample_rows(samples, ncol)
    return None if grid is None else save_image(grid, path)


def save_overview(
    grids: dict[str, np.ndarray | None], titles: dict[str, str], path: str
) -> str | None:
    """The grids of a study (HWC uint8 arrays, e.g. from :func:`sample_rows`) stacked with titles."""
    items = [(k, g) for k, g in grids.items() if g is not None]
    if not items:
        return None
    fig, axes = plt.subplots(len(items), 1, figsize=(8, 1.2 + len(items)), squeeze=False)
    for ax, (name, grid) in zip(axes[:, 0], items, strict=True):
        g = np.asarray(grid)
        ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0, vmax=255)
        ax.set_title(titles.get(name, name), fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
