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


def caption(fig, text: str) -> None:
    """Wrapped text below the figure area; bbox_inches="tight" in save_figure extends the canvas to it."""
    width = max(60, int(fig.get_figwidth() * 13))
    fig.text(0.5, -0.01, textwrap.fill(text, width), ha="center", va="top", fontsize=9)
