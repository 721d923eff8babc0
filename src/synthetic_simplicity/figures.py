"""Figures: accuracy-vs-alpha curves per cell, and sample grids of real and synthetic images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless cluster nodes have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .atomic import atomic_output  # noqa: E402
from .imageset import ImageSet  # noqa: E402
from .metrics import CELL_SEP, SOURCE_NAMES  # noqa: E402

# Colour encodes source, line style/marker encode class, so a cell is readable in greyscale too.
SOURCE_COLOURS = {"real": "#0072B2", "synthetic": "#D55E00"}  # Okabe-Ito, colour-blind safe
CLASS_STYLES = ["-", "--", ":", "-."]
CLASS_MARKERS = ["o", "s", "^", "D"]
ALPHA_LABEL = "α (fraction of class-1 training images that are real; class 2 gets 1−α)"
ACC_LABEL = "Test accuracy per cell (%)"


def _save(fig, path) -> None:
    """Save atomically (the format follows the suffix) and close the figure either way."""
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip(".").lower() or None, bbox_inches="tight")
    finally:
        plt.close(fig)


def _split_cell(cell: str) -> tuple[str, str]:
    cls, _, src = cell.rpartition(CELL_SEP)
    return cls, src


def plot_alpha(table: pd.DataFrame, path, title: str, ci_label: str,
               class_names: list[str] | None = None):
    """Accuracy (%) vs alpha, one line per cell, one panel per architecture (rows: datasets).

    ``table`` is the output of ``metrics.aggregate`` (accuracies as fractions). ``class_names`` fixes
    the class order (class 1 solid, class 2 dashed); by default the order of first appearance.
    Returns the (closed) figure so callers and tests can inspect its axes.
    """
    cells = table[table["metric"].str.startswith("acc_cell:")]
    if cells.empty:
        raise ValueError("plot_alpha: the table has no acc_cell:* rows")
    classes = list(class_names) if class_names else list(dict.fromkeys(_split_cell(c)[0] for c in cells["cell"]))
    datasets = sorted(cells["dataset"].unique())
    archs = sorted(cells["architecture"].unique())
    alphas = sorted(cells["alpha"].unique())
    with sns.axes_style("whitegrid"):
        # constrained layout makes room for the shared labels and the outside legend itself.
        fig, axes = plt.subplots(len(datasets), len(archs), figsize=(4.2 * len(archs) + 1.6, 3.4 * len(datasets) + 0.8),
                                 sharex=True, sharey=True, squeeze=False, layout="constrained")
    for i, ds in enumerate(datasets):
        for j, arch in enumerate(archs):
            ax = axes[i, j]
            sub = cells[(cells["dataset"] == ds) & (cells["architecture"] == arch)]
            for cell in sorted(sub["cell"].unique(), key=lambda c: (
                    classes.index(_split_cell(c)[0]) if _split_cell(c)[0] in classes else len(classes),
                    SOURCE_NAMES.index(_split_cell(c)[1]) if _split_cell(c)[1] in SOURCE_NAMES else 2, c)):
                cls, src = _split_cell(cell)
                k = classes.index(cls) if cls in classes else len(classes)
                colour = SOURCE_COLOURS.get(src, "0.4")
                d = sub[sub["cell"] == cell].sort_values("alpha")
                x = d["alpha"].to_numpy(float)
                ax.plot(x, 100 * d["mean"].to_numpy(float), color=colour,
                        linestyle=CLASS_STYLES[k % len(CLASS_STYLES)], marker=CLASS_MARKERS[k % len(CLASS_MARKERS)],
                        label=f"{cls} · {src}")
                lo, hi = d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)
                ok = ~(np.isnan(lo) | np.isnan(hi))
                if ok.any():  # single-seed points have no interval; draw bands only where one exists
                    ax.fill_between(x, 100 * lo, 100 * hi, where=ok, color=colour, alpha=0.15, linewidth=0)
            ax.set_xticks(alphas)
            ax.set_xticklabels([f"{a:g}" for a in alphas])
            ax.set_ylim(0, 100)
            ax.set_title(arch if len(datasets) == 1 else f"{ds} · {arch}")
            if j == 0:
                ax.set_ylabel(ACC_LABEL)
    fig.supxlabel(ALPHA_LABEL, fontsize="medium")  # one shared x label instead of one per panel
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", frameon=False, title="cell")
    fig.suptitle(title)
    n = cells["n_seeds"]
    seeds = f"{n.max()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    # Below the figure area; bbox_inches="tight" in _save extends the canvas to include it.
    fig.text(0.5, -0.01, f"Mean over {seeds} seeds; bands: {ci_label}", ha="center", va="top", fontsize=9)
    _save(fig, path)
    return fig


def _display(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(H,W) greyscale or (C,H,W): RGB when C == 3, else the first channel."""
    if img.ndim == 3:
        if img.shape[0] == 3:
            return np.transpose(img, (1, 2, 0)), None
        img = img[0]
    return img, "gray"


def _show(ax, img) -> None:
    arr, cmap = _display(img)
    ax.imshow(arr, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")


def _grid(rows: list[tuple[str, np.ndarray]], ncols: int, path):
    """One labelled row of images per entry; empty slots stay blank."""
    ncols = max(1, ncols)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.0 * ncols + 1.0, 1.0 * len(rows)), squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if c < len(imgs):
                _show(ax, imgs[c])
        axes[r, 0].set_ylabel(label if len(imgs) else f"{label}\n(none)", rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    _save(fig, path)
    return fig


def plot_samples(real: ImageSet, synthetic: ImageSet, path, per_class: int = 8, seed: int = 0):
    """PNG grid: per class a real row then a synthetic row of ``per_class`` randomly chosen images."""
    if list(real.class_names) != list(synthetic.class_names):
        raise ValueError(f"class names differ: real {real.class_names}, synthetic {synthetic.class_names}")
    rng = np.random.default_rng(seed)
    rows = []
    for k, name in enumerate(real.class_names):
        for src, s in (("real", real), ("synthetic", synthetic)):
            idx = np.flatnonzero(s.label == k)
            pick = np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
            rows.append((f"{name} · {src}", s.images[pick]))
    return _grid(rows, per_class, path)


def plot_grid(images: np.ndarray, labels: np.ndarray, class_names, path):
    """One row per class of generated samples (e.g. the diffusion training preview)."""
    labels = np.asarray(labels)
    rows = [(str(name), images[labels == k]) for k, name in enumerate(class_names)]
    return _grid(rows, max((len(r[1]) for r in rows), default=1), path)
