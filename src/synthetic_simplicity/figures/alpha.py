"""Study A's figure: test accuracy per class x source cell against alpha."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..evaluation.cells import CELL_SEP, SOURCE_NAMES
from .common import caption, in_given_order, percent_line, save_figure

# Colour encodes source, line style/marker encode class, so a cell is readable in greyscale too.
SOURCE_COLOURS = {"real": "#0072B2", "synthetic": "#D55E00"}  # Okabe-Ito, colour-blind safe


CLASS_STYLES = ["-", "--", ":", "-."]


CLASS_MARKERS = ["o", "s", "^", "D"]


ALPHA_LABEL = "α (fraction of class-1 training images that are real; class 2 gets 1−α)"


ACC_LABEL = "Test accuracy per cell (%)"


def _split_cell(cell: str) -> tuple[str, str]:
    cls, _, src = cell.rpartition(CELL_SEP)
    return cls, src


def plot_alpha(table: pd.DataFrame, path, title: str, ci_label: str,
               class_names: list[str] | None = None, row_titles: dict | None = None):
    """Accuracy (%) vs alpha, one line per cell, one panel per architecture; one row per dataset and
    generator variant, titled ``row_titles[(dataset, variant)]`` (default "dataset · variant"); rows
    named there come first, in its order (the config's), the others after them.

    ``table`` is the output of ``metrics.aggregate`` (accuracies as fractions). ``class_names`` fixes
    the class order (class 1 solid, class 2 dashed); by default the order of first appearance.
    Returns the (closed) figure so callers and tests can inspect its axes.
    """
    cells = table[table["metric"].str.startswith("acc_cell:")]
    if cells.empty:
        raise ValueError("plot_alpha: the table has no acc_cell:* rows")
    classes = list(class_names) if class_names else list(dict.fromkeys(_split_cell(c)[0] for c in cells["cell"]))
    row_titles = row_titles or {}
    present = list(dict.fromkeys(zip(cells["dataset"], cells["variant"])))
    rows = in_given_order(row_titles, present)
    archs = sorted(cells["architecture"].unique())
    alphas = sorted(cells["alpha"].unique())
    with sns.axes_style("whitegrid"):
        # constrained layout makes room for the shared labels and the outside legend itself.
        fig, axes = plt.subplots(len(rows), len(archs), figsize=(4.2 * len(archs) + 1.6, 3.4 * len(rows) + 0.8),
                                 sharex=True, sharey=True, squeeze=False, layout="constrained")
    for i, (ds, var) in enumerate(rows):
        for j, arch in enumerate(archs):
            ax = axes[i, j]
            sub = cells[(cells["dataset"] == ds) & (cells["variant"] == var) & (cells["architecture"] == arch)]
            if sub.empty:  # this variant's sweep leaves this architecture out (variants[].architectures)
                ax.set_axis_off()
                continue
            for cell in sorted(sub["cell"].unique(), key=lambda c: (
                    classes.index(_split_cell(c)[0]) if _split_cell(c)[0] in classes else len(classes),
                    SOURCE_NAMES.index(_split_cell(c)[1]) if _split_cell(c)[1] in SOURCE_NAMES else 2, c)):
                cls, src = _split_cell(cell)
                k = classes.index(cls) if cls in classes else len(classes)
                percent_line(ax, sub[sub["cell"] == cell].sort_values("alpha"), SOURCE_COLOURS.get(src, "0.4"), 0.15,
                             linestyle=CLASS_STYLES[k % len(CLASS_STYLES)],
                             marker=CLASS_MARKERS[k % len(CLASS_MARKERS)], label=f"{cls} · {src}")
            ax.set_xticks(alphas)
            ax.set_xticklabels([f"{a:g}" for a in alphas])
            ax.set_ylim(0, 100)
            ax.set_title(f"{row_titles.get((ds, var), f'{ds} · {var}')}\n{arch}", fontsize="medium")
            if j == 0:
                ax.set_ylabel(ACC_LABEL)
    fig.supxlabel(ALPHA_LABEL, fontsize="medium")  # one shared x label instead of one per panel
    handles, labels = next(ax for ax in axes.flat if ax.axison).get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", frameon=False, title="cell")
    fig.suptitle(title)
    n = cells["n_seeds"]
    seeds = f"{n.max()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    caption(fig, f"Mean over {seeds} seeds; bands: {ci_label}")
    save_figure(fig, path)
    return fig
