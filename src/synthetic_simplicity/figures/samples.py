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


def plot_samples(real: ImageSet, synthetic: dict[str, ImageSet], path, per_class: int = 8, seed: int = 0):
    """PNG grid: per class a real row then one row per generator variant (``synthetic``: name -> pool) of
    ``per_class`` randomly chosen images. Variants share per-image seeds, so a column shows one starting
    noise through every variant's generator and sampler."""
    pools = list(synthetic.values())
    for name, s in synthetic.items():
        if list(real.class_names) != list(s.class_names):
            raise ValueError(f"class names differ: real {real.class_names}, {name} {s.class_names}")
        if not np.array_equal(s.label, pools[0].label):
            raise ValueError(f"the pools of {list(synthetic)} hold different rows; sample them with one config")
    rng = np.random.default_rng(seed)
    rows = []
    for k, name in enumerate(real.class_names):
        for sets in ({"real": real}, synthetic):
            idx = np.flatnonzero(next(iter(sets.values())).label == k)
            pick = np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
            rows += [(f"{name} · {source}", s.images[pick]) for source, s in sets.items()]
    return _grid(rows, per_class, path)


def plot_grid(images: np.ndarray, labels: np.ndarray, class_names, path):
    """One row per class of generated samples (e.g. the diffusion training preview)."""
    labels = np.asarray(labels)
    rows = [(str(name), images[labels == k]) for k, name in enumerate(class_names)]
    return _grid(rows, max((len(r[1]) for r in rows), default=1), path)
