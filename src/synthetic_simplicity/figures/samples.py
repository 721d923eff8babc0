"""Sample grids: real and synthetic images per class, and the generator's training preview."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..core.imageset import ImageSet
from .common import save_figure

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
    save_figure(fig, path)
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
