"""Why the shortcut appears: how detectable each pool is against how much the classifier exploits it
(fidelity), and what sets the pools apart in image statistics (fingerprints)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .alpha import CLASS_MARKERS, SOURCE_COLOURS
from .common import caption, save_figure


def _errors(frame: pd.DataFrame, value: str, low: str, high: str, scale: float = 1.0) -> np.ndarray:
    """Asymmetric error bars; a missing interval (one seed) draws none."""
    v = frame[value].to_numpy(float)
    err = np.stack([v - frame[low].to_numpy(float), frame[high].to_numpy(float) - v]) * scale
    return np.nan_to_num(err, nan=0.0)


def plot_fidelity(summary: pd.DataFrame, path, title: str):
    """x: C2ST AUROC of each variant's pool (CI); y: mismatched-cell accuracy at alpha 0 and 1 (filled) and
    the worst cell at alpha 0.5 (hollow), mean and interval over seeds; one marker per architecture."""
    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(6.8, 4.6), layout="constrained")
    archs = list(dict.fromkeys(summary["architecture"]))
    for k, arch in enumerate(archs):
        d = summary[summary["architecture"] == arch]
        marker = CLASS_MARKERS[k % len(CLASS_MARKERS)]
        xerr = _errors(d, "c2st_auroc", "c2st_ci_low", "c2st_ci_high")
        ax.errorbar(d["c2st_auroc"], 100 * d["mismatched_acc"], xerr=xerr,
                    yerr=_errors(d, "mismatched_acc", "mismatched_ci_low", "mismatched_ci_high", 100),
                    fmt=marker, color=SOURCE_COLOURS["synthetic"], capsize=3,
                    label=f"{arch}: mismatched cells, α ∈ {{0, 1}}")
        ax.errorbar(d["c2st_auroc"], 100 * d["worst_cell_alpha0.5"], xerr=xerr,
                    yerr=_errors(d, "worst_cell_alpha0.5", "worst_cell_alpha0.5_ci_low",
                                 "worst_cell_alpha0.5_ci_high", 100),
                    fmt=marker, mfc="white", color=SOURCE_COLOURS["real"], capsize=3,
                    label=f"{arch}: worst cell, α = 0.5")
        for _, row in d.iterrows():
            ax.annotate(row["variant"], (row["c2st_auroc"], 100 * row["mismatched_acc"]), textcoords="offset points",
                        xytext=(6, 6), fontsize=8)
    ax.axvline(0.5, color="0.5", linewidth=0.8, linestyle=":")
    ax.set_xlim(min(0.45, float(summary["c2st_auroc"].min()) - 0.05), 1.02)
    ax.set_ylim(0, 102)
    ax.set_xlabel("C2ST AUROC of the synthetic pool (0.5: indistinguishable from real)")
    ax.set_ylabel("Test accuracy (%)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8, frameon=False)
    ax.set_title(title)
    caption(fig, "How detectable may synthetic data be before the shortcut appears? One point per generator "
                 "variant; C2ST: a real-vs-synthetic classifier trained on the training pools, AUROC on the test "
                 "pools with a bootstrap interval. Accuracy: mean and " + str(summary["ci_method"].iloc[0])
            + f" ({int(summary['n_seeds'].max())} seeds).")
    save_figure(fig, path)
    return fig


def plot_fingerprints(arrays: dict, class_names: list[str], path, title: str):
    """Per class (rows): radially averaged power spectrum and intensity histogram of real vs each variant's
    pool, and the mean image difference (synthetic − real) per variant. ``arrays``: variant -> its .npz."""
    variants = list(arrays)
    first = arrays[variants[0]]
    palette = sns.color_palette("colorblind", len(variants) + 1)[1:]
    columns = 2 + len(variants)
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(len(class_names), columns, figsize=(3.4 * columns, 3.0 * len(class_names) + 0.6),
                                 squeeze=False, layout="constrained")
    limit = max(float(np.abs(a[f"{c}/synthetic/mean_image"] - a[f"{c}/real/mean_image"]).max())
                for a in arrays.values() for c in range(len(class_names))) or 1.0
    for c, name in enumerate(class_names):
        spectrum, histogram = axes[c, 0], axes[c, 1]
        bins = np.linspace(0, 256, len(first[f"{c}/real/histogram"]) + 1)
        centres = (bins[:-1] + bins[1:]) / 2
        spectrum.semilogy(first["radius"], first[f"{c}/real/spectrum"], color=SOURCE_COLOURS["real"], label="real")
        histogram.semilogy(centres, first[f"{c}/real/histogram"], color=SOURCE_COLOURS["real"], label="real")
        for colour, variant in zip(palette, variants):
            a = arrays[variant]
            spectrum.semilogy(a["radius"], a[f"{c}/synthetic/spectrum"], color=colour, linestyle="--", label=variant)
            histogram.semilogy(centres, a[f"{c}/synthetic/histogram"], color=colour, linestyle="--", label=variant)
        spectrum.set_title(f"{name}: power spectrum", fontsize="medium")
        spectrum.set_xlabel("spatial frequency (fraction of Nyquist)")
        spectrum.set_ylabel("mean power")
        histogram.set_title(f"{name}: intensity histogram", fontsize="medium")
        histogram.set_xlabel("grey level")
        histogram.set_ylabel("share of pixels")
        for k, variant in enumerate(variants):
            a = arrays[variant]
            ax = axes[c, 2 + k]
            image = ax.imshow(a[f"{c}/synthetic/mean_image"] - a[f"{c}/real/mean_image"], cmap="RdBu_r",
                              vmin=-limit, vmax=limit)
            ax.set_title(f"{name}: {variant} − real (mean image)", fontsize="medium")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(image, ax=axes[c, 2:].tolist(), shrink=0.8, label="grey-level difference")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    caption(fig, "Training pools per class. Spectra: radially averaged power of the mean-removed images "
                 "(log scale); histograms: share of pixels per grey level (log scale); heat maps: mean synthetic "
                 "image minus mean real image (red: synthetic brighter).")
    save_figure(fig, path)
    return fig
