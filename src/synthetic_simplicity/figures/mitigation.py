"""The mitigation figure: for every arm, worst-cell, mismatched-cell and real-image accuracy against alpha."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .alpha import ALPHA_LABEL
from .common import caption, in_given_order, percent_line, save_figure

ROWS = {"acc_wg": "Worst-cell accuracy (%)", "acc_mismatched": "Mismatched-cell accuracy (%)",
        "acc_real": "Real-image accuracy (%)"}
# Okabe-Ito, colour-blind safe; ERM in black so every arm reads against it.
METHOD_COLOURS = {"erm": "#000000", "reweight": "#E69F00", "groupdro": "#56B4E9", "adversarial": "#009E73",
                  "dfr": "#CC79A7", "harmonise": "#0072B2", "augment": "#D55E00", "two_stage": "#999999"}
METHOD_MARKERS = {"erm": "o", "reweight": "s", "groupdro": "D", "adversarial": "^", "dfr": "v",
                  "harmonise": "P", "augment": "X", "two_stage": "*"}
LIMITS_CAPTION = ("At α 0 and 1 source and class coincide: reweighting and GroupDRO see two groups only (no "
                  "mismatched group to up-weight), gradient reversal hides the class with the source, and "
                  "two-stage training is undefined (one class per stage; no point).")


def plot_mitigation(table: pd.DataFrame, path, title: str, ci_label: str, methods: list[str],
                    panel_titles: dict | None = None):
    """One column per (variant, architecture), one row per measure, one line per method with its band.

    ``table``: the alpha metrics table (``evaluation.cells.aggregate``); ``methods`` fixes the legend
    order; ``panel_titles[(variant, architecture)]`` titles a column, and the columns it names come first,
    in its order (the config's). Returns the closed figure."""
    rows = table[table["metric"].isin(list(ROWS))]
    if rows.empty:
        raise ValueError("plot_mitigation: the table has none of the metrics " + ", ".join(ROWS))
    panel_titles = panel_titles or {}
    panels = in_given_order(panel_titles, list(dict.fromkeys(zip(rows["variant"], rows["architecture"]))))
    alphas = sorted(rows["alpha"].unique())
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(len(ROWS), len(panels), figsize=(4.2 * len(panels) + 2.0, 3.0 * len(ROWS) + 1.0),
                                 sharex=True, sharey=True, squeeze=False, layout="constrained")
    for j, (variant, arch) in enumerate(panels):
        for i, metric in enumerate(ROWS):
            ax = axes[i, j]
            sub = rows[(rows["variant"] == variant) & (rows["architecture"] == arch) & (rows["metric"] == metric)]
            for method in [m for m in methods if m in set(sub["method"])]:
                percent_line(ax, sub[sub["method"] == method].sort_values("alpha"), METHOD_COLOURS.get(method, "0.5"),
                             0.08, marker=METHOD_MARKERS.get(method, "o"), label=method,
                             linewidth=2.2 if method == "erm" else 1.4)
            ax.set_xticks(alphas)
            ax.set_xticklabels([f"{a:g}" for a in alphas])
            ax.set_ylim(0, 100)
            if i == 0:
                ax.set_title(panel_titles.get((variant, arch), f"{variant} · {arch}"), fontsize="medium")
            if j == 0:
                ax.set_ylabel(ROWS[metric])
    fig.supxlabel(ALPHA_LABEL, fontsize="medium")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", frameon=False, title="method")
    fig.suptitle(title)
    n = rows["n_seeds"][rows["n_seeds"] > 0]
    seeds = f"{n.max()}" if len(n) and n.min() == n.max() else f"{n.min()}–{n.max()}" if len(n) else "0"
    caption(fig, f"Mean over {seeds} seeds; bands: {ci_label}. Mismatched cells: each class's minority source in "
                 f"training (all four cells at α 0.5). {LIMITS_CAPTION}")
    save_figure(fig, path)
    return fig
