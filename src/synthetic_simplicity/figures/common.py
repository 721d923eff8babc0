"""What every figure shares: atomic saving and a caption below the axes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt

from ..core.atomic import atomic_output


def save_figure(fig, path) -> None:
    """Save atomically (the format follows the suffix) and close the figure either way."""
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip(".").lower() or None, bbox_inches="tight")
    finally:
        plt.close(fig)


def in_given_order(given, present: list) -> list:
    """The ``present`` keys, those named in ``given`` first and in its order (the config's)."""
    return [p for p in given if p in present] + [p for p in present if p not in given]


def percent_line(ax, d, colour, band_alpha: float, **style) -> None:
    """``d``'s mean against alpha in %, with its interval as a band where one exists (single-seed
    points have none)."""
    import numpy as np

    x = d["alpha"].to_numpy(float)
    ax.plot(x, 100 * d["mean"].to_numpy(float), color=colour, **style)
    lo, hi = d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)
    ok = ~(np.isnan(lo) | np.isnan(hi))
    if ok.any():
        ax.fill_between(x, 100 * lo, 100 * hi, where=ok, color=colour, alpha=band_alpha, linewidth=0)


def caption(fig, text: str) -> None:
    """Wrapped text below the figure area; bbox_inches="tight" in save_figure extends the canvas to it."""
    width = max(60, int(fig.get_figwidth() * 13))
    fig.text(0.5, -0.01, textwrap.fill(text, width), ha="center", va="top", fontsize=9)
