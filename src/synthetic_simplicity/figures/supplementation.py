"""Figures for the supplementation experiment: macro AUROC vs k, and per-label AUROC change heatmaps.

Both read the long results table (one row per arch x test_set x protocol x k x metric, with the CI
and p-value methods named in the table itself) and compare against the real-only reference, i.e.
protocol "real+synthetic" at k = 0, of the same architecture and test set.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..evaluation.auroc import COLUMNS, MACRO, PROTOCOLS
from .common import caption, save_figure

KEYS = ("arch", "test_set", "protocol", "k", "metric")
REFERENCE = "real+synthetic"  # at k = 0 this protocol is the real-only baseline
HEATMAP_PROTOCOLS = ("real+synthetic", "synthetic only")
LABEL_PREFIX = "auroc:"
INTERNAL = "internal"
P_THRESHOLD = 0.01

# Colour encodes protocol, line style/marker encode architecture (Okabe-Ito, colour-blind safe).
PROTOCOL_COLOURS = {"real+synthetic": "#0072B2", "synthetic only": "#D55E00", "external mixing": "#009E73"}
EXTRA_COLOURS = ["#CC79A7", "#E69F00", "#56B4E9", "#000000"]
ARCH_STYLES = ["-", ":", "-."]  # never "--": dashed is reserved for the real-only reference
ARCH_MARKERS = ["o", "s", "^", "D", "v"]
REFERENCE_GREYS = ["0.3", "0.55", "0.7", "0.8"]
K_LABEL = "synthetic images per real training image (k; k×100 % supplementation)"
AUROC_LABEL = "Macro AUROC"
DELTA_LABEL = "ΔAUROC vs real only (k = 0)"


def _prepare(table: pd.DataFrame, who: str) -> pd.DataFrame:
    """Check the columns, coerce the CSV-read dtypes and reject duplicate keys."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{who}: the table lacks column(s) {missing}; has {list(table.columns)}")
    t = table.loc[:, list(COLUMNS)].copy()
    for c in ("value", "ci_low", "ci_high", "p_value", "p_adjusted", "n_seeds", "n_images", "n_subjects", "n_pos",
              "n_neg", "n_boot_valid"):
        t[c] = pd.to_numeric(t[c], errors="coerce")
    k = pd.to_numeric(t["k"], errors="coerce")
    if k.isna().any() or (k != k.round()).any():
        raise ValueError(f"{who}: column k must hold whole numbers, got {sorted(t['k'].unique().tolist())}")
    t["k"] = k.astype(int)
    for c in ("arch", "test_set", "protocol", "metric"):
        t[c] = t[c].astype(str)
    dup = t.duplicated(list(KEYS), keep=False)
    if dup.any():
        r = t[dup].iloc[0]
        raise ValueError(f"{who}: {int(dup.sum())} rows share a key, e.g. "
                         + ", ".join(f"{c}={r[c]}" for c in KEYS))
    return t


def _test_sets(t: pd.DataFrame) -> list[str]:
    """'internal' first, then the external sets in order of first appearance."""
    order = list(dict.fromkeys(t["test_set"]))
    return ([INTERNAL] if INTERNAL in order else []) + [s for s in order if s != INTERNAL]


def _protocols(t: pd.DataFrame, allowed=PROTOCOLS) -> list[str]:
    present = set(t["protocol"])
    extra = [p for p in dict.fromkeys(t["protocol"]) if p not in PROTOCOLS]
    return [p for p in allowed if p in present] + (extra if allowed is PROTOCOLS else [])


def _colour(protocol: str, extras: list[str]) -> str:
    if protocol in PROTOCOL_COLOURS:
        return PROTOCOL_COLOURS[protocol]
    return EXTRA_COLOURS[extras.index(protocol) % len(EXTRA_COLOURS)] if protocol in extras else "0.4"


def _is_reference(t: pd.DataFrame) -> pd.Series:
    return (t["protocol"] == REFERENCE) & (t["k"] == 0)


def _require_reference(t: pd.DataFrame, rows: pd.DataFrame, what: str, who: str) -> None:
    """Every (arch, test_set) with rows must have its real-only (real+synthetic, k=0) reference."""
    ref = rows[_is_reference(rows)]
    have = set(zip(ref["arch"], ref["test_set"]))
    need = list(dict.fromkeys(zip(rows["arch"], rows["test_set"])))
    lacking = [f"arch={a}, test_set={s}" for a, s in need if (a, s) not in have]
    if lacking:
        raise ValueError(f"{who}: no real-only reference (protocol '{REFERENCE}', k=0, {what}) for "
                         + "; ".join(lacking))


def _methods(series: pd.Series, none: str) -> str:
    vals = [str(v) for v in dict.fromkeys(series.dropna()) if str(v).strip()]
    return " / ".join(vals) if vals else none


def _count(series: pd.Series) -> str | None:
    vals = series.dropna()
    if vals.empty:
        return None
    lo, hi = int(vals.min()), int(vals.max())
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def _panel_title(rows: pd.DataFrame, test_set: str, arch: str | None = None) -> str:
    """Test set (and arch) with the test-set size taken from the table, where recorded."""
    head = test_set if arch is None else f"{test_set} · {arch}"
    ref = rows[_is_reference(rows)]
    imgs, subj = _count(ref["n_images"]), _count(ref["n_subjects"])
    # One count per line: narrow heatmap panels sit side by side and long titles collide.
    size = "\n".join(s for s in (imgs and f"{imgs} images", subj and f"{subj} patients") if s)
    return f"{head}\n{size}" if size else head


def _seeds(rows: pd.DataFrame) -> str:
    """'3 seeds per point' from n_seeds, or '' where the table does not record it."""
    n = _count(rows["n_seeds"])
    return "" if n is None else f"{n} seed{'' if n == '1' else 's'} per point"


def _provenance(rows: pd.DataFrame, compared: pd.DataFrame) -> tuple[str, str, str, str]:
    """For a caption: the point estimate and CI method of ``rows``, the p-value method of the
    ``compared`` rows that have a p-value, and ' (n seeds per point)' or ''."""
    point = _methods(rows["point_method"], "point estimate not recorded")
    ci = _methods(rows["ci_method"], "CI method not recorded")
    pm = _methods(compared.loc[compared["p_value"].notna(), "p_method"], "no p-values in the table")
    seeds = _seeds(rows)
    return point, ci, pm, f" ({seeds})" if seeds else ""


def plot_supplementation(table: pd.DataFrame, out_path, title: str, p_threshold: float = P_THRESHOLD):
    """Macro AUROC vs k: one panel per test set, one line per protocol (line style per architecture).

    Shaded bands are the table's CIs (ci_low..ci_high), the dashed horizontal line is the real-only
    reference (real+synthetic at k = 0) and "*" marks points with p_value < ``p_threshold``.
    The methods quoted in the caption come from the table's ci_method and p_method columns.
    Returns the (closed) figure so callers and tests can inspect its axes and texts.
    """
    who = "plot_supplementation"
    t = _prepare(table, who)
    macro = t[t["metric"] == MACRO]
    if macro.empty:
        raise ValueError(f"{who}: the table has no '{MACRO}' rows (metrics present: "
                         f"{sorted(t['metric'].unique().tolist())[:5]}...)")
    _require_reference(t, macro, f"metric {MACRO}", who)
    sets = _test_sets(macro)
    archs = list(dict.fromkeys(macro["arch"]))
    protocols = _protocols(macro)
    extras = [p for p in protocols if p not in PROTOCOL_COLOURS]
    ks = sorted(macro["k"].unique())
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, len(sets), figsize=(4.4 * len(sets) + 2.2, 4.0), sharex=True, sharey=True,
                                 squeeze=False, layout="constrained")
    for j, ts in enumerate(sets):
        ax = axes[0, j]
        rows = macro[macro["test_set"] == ts]
        for a, arch in enumerate(archs):
            ref = rows[_is_reference(rows) & (rows["arch"] == arch)]
            if not ref.empty:
                ax.axhline(float(ref["value"].iloc[0]), color=REFERENCE_GREYS[a % len(REFERENCE_GREYS)],
                           linestyle="--", linewidth=1.2, zorder=1,
                           label="real only (k = 0)" if len(archs) == 1 else f"real only (k = 0) · {arch}")
            for protocol in protocols:
                d = rows[(rows["arch"] == arch) & (rows["protocol"] == protocol)].sort_values("k")
                if d.empty:
                    continue
                colour = _colour(protocol, extras)
                x = d["k"].to_numpy(float)
                y = d["value"].to_numpy(float)
                ax.plot(x, y, color=colour, linestyle=ARCH_STYLES[a % len(ARCH_STYLES)],
                        marker=ARCH_MARKERS[a % len(ARCH_MARKERS)], markersize=4, zorder=3,
                        label=protocol if len(archs) == 1 else f"{protocol} · {arch}")
                lo, hi = d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)
                ok = ~(np.isnan(lo) | np.isnan(hi))
                if ok.any():  # points without an interval get no band
                    ax.fill_between(x, lo, hi, where=ok, color=colour, alpha=0.15, linewidth=0, zorder=2)
                top = np.where(np.isnan(hi), y, hi)
                for xi, yi, p in zip(x, top, d["p_value"].to_numpy(float)):
                    if p < p_threshold and np.isfinite(yi):  # NaN p (the reference) compares False
                        ax.annotate("*", xy=(xi, yi), xytext=(0, 1), textcoords="offset points",
                                    ha="center", va="bottom", color=colour, fontsize=12, fontweight="bold")
        ax.set_xticks(ks)
        ax.set_xticklabels([f"{k:g}" for k in ks])
        ax.set_title(_panel_title(rows, ts))
        if j == 0:
            ax.set_ylabel(AUROC_LABEL)
    fig.supxlabel(K_LABEL, fontsize="medium")
    # Union of handles over panels: a protocol may be absent from the first test set.
    legend = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    fig.legend(list(legend.values()), list(legend.keys()), loc="outside right center", frameon=False,
               title="protocol")
    fig.suptitle(title)
    point, ci, pm, seeds = _provenance(macro, macro)
    caption(fig, f"Macro AUROC{seeds}: {point}; no band where a point has no interval. "
                 f"Bands: {ci}. Dashed: real-only reference ({REFERENCE}, k = 0) of the same test set. "
                 f"* p < {p_threshold:g} vs that reference ({pm}).")
    save_figure(fig, out_path)
    return fig


def _label_names(labels: pd.DataFrame) -> list[str]:
    return [m[len(LABEL_PREFIX):] for m in dict.fromkeys(labels["metric"])]


def plot_label_heatmap(table: pd.DataFrame, out_path, title: str, p_threshold: float = P_THRESHOLD):
    """Per-label AUROC change vs the real-only reference, for real+synthetic and synthetic only.

    Rows are labels (metric "auroc:<label>"), columns protocol · k; one panel per test set (columns)
    and per architecture (rows). Cells hold value − value(real+synthetic, k = 0) of the same arch,
    test set and label on a diverging scale centred at 0; "*" marks an adjusted p-value (``p_adjusted``,
    over the labels of that protocol and k) below ``p_threshold``; "†" marks a label with too few
    positive or negative test images to be tested;
    undefined differences (NaN AUROC here or in the reference, or a missing row) are grey "n/a".
    Returns the (closed) figure so callers and tests can inspect its axes and texts.
    """
    who = "plot_label_heatmap"
    t = _prepare(table, who)
    labels = t[t["metric"].str.startswith(LABEL_PREFIX) & t["protocol"].isin(HEATMAP_PROTOCOLS)]
    if labels.empty:
        raise ValueError(f"{who}: the table has no '{LABEL_PREFIX}<label>' rows for protocols "
                         f"{list(HEATMAP_PROTOCOLS)}")
    _require_reference(t, labels, f"metric {LABEL_PREFIX}<label>", who)
    compared = labels[~_is_reference(labels)]
    if compared.empty:
        raise ValueError(f"{who}: no per-label rows to compare with the reference (need protocol "
                         f"'{REFERENCE}' with k>0 or 'synthetic only')")
    names = _label_names(labels)
    sets = _test_sets(labels)
    archs = list(dict.fromkeys(labels["arch"]))
    columns = [(p, k) for p in _protocols(compared, HEATMAP_PROTOCOLS)
               for k in sorted(compared.loc[compared["protocol"] == p, "k"].unique())]
    col_names = [f"{p} · k={k}" for p, k in columns]

    # Differences per panel, indexed (label, column); NaN where either side is missing or undefined.
    panels = {}
    for arch in archs:
        for ts in sets:
            rows = labels[(labels["arch"] == arch) & (labels["test_set"] == ts)]
            if rows.empty:
                continue
            ref = rows[_is_reference(rows)].set_index("metric")["value"]
            cmp_rows = rows[~_is_reference(rows)].set_index(["metric", "protocol", "k"])
            diff = np.full((len(names), len(columns)), np.nan)
            pval = np.full_like(diff, np.nan)
            untested = np.zeros(diff.shape, bool)
            for i, name in enumerate(names):
                metric = LABEL_PREFIX + name
                base = ref.get(metric, np.nan)
                for c, (p, k) in enumerate(columns):
                    if (metric, p, k) in cmp_rows.index:
                        r = cmp_rows.loc[(metric, p, k)]
                        diff[i, c] = r["value"] - base
                        pval[i, c] = r["p_adjusted"]
                        untested[i, c] = "min_positives" in str(r["p_method"])
            panels[(arch, ts)] = (rows, diff, pval, untested)

    finite = np.concatenate([d[np.isfinite(d)] for _, d, _, _ in panels.values()])
    vmax = float(np.abs(finite).max()) if finite.size else 0.0
    vmax = vmax if vmax > 0 else 0.01  # symmetric limits keep white at exactly 0
    cmap = plt.get_cmap("RdBu").with_extremes(bad="0.85")  # NaN cells: grey, labelled "n/a"

    fig, axes = plt.subplots(len(archs), len(sets), squeeze=False, layout="constrained",
                             figsize=(0.62 * len(columns) * len(sets) + 2.8 + 1.2,
                                      len(archs) * (0.34 * len(names) + 2.0) + 0.6))
    im = None
    for a, arch in enumerate(archs):
        for j, ts in enumerate(sets):
            ax = axes[a, j]
            if (arch, ts) not in panels:
                ax.set_axis_off()
                ax.set_title(f"{ts} · {arch}\n(no rows)" if len(archs) > 1 else f"{ts}\n(no rows)")
                continue
            rows, diff, pval, untested = panels[(arch, ts)]
            im = ax.imshow(np.ma.masked_invalid(diff), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto",
                           interpolation="nearest")
            for i in range(len(names)):
                for c in range(len(columns)):
                    d = diff[i, c]
                    if np.isnan(d):
                        ax.text(c, i, "n/a", ha="center", va="center", fontsize=7, color="0.35")
                        continue
                    star = "*" if pval[i, c] < p_threshold else "†" if untested[i, c] else ""
                    ax.text(c, i, f"{d:+.2f}{star}", ha="center", va="center", fontsize=7,
                            color="white" if abs(d) > 0.6 * vmax else "black")
            ax.set_xticks(range(len(columns)))
            ax.set_xticklabels(col_names, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
            ax.set_yticks(range(len(names)))
            ax.set_yticklabels(names if j == 0 else [], fontsize=8)
            ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
            ax.set_yticks(np.arange(len(names) + 1) - 0.5, minor=True)
            ax.grid(which="minor", color="white", linewidth=1)
            ax.tick_params(which="minor", length=0)
            ax.set_title(_panel_title(rows, ts, arch if len(archs) > 1 else None))
    if im is not None:
        fig.colorbar(im, ax=axes, label=DELTA_LABEL, shrink=0.8)
    fig.suptitle(title)
    point, ci, pm, seeds = _provenance(labels, compared)
    caption(fig, f"Cells: per-label AUROC ({point}) minus the real-only reference ({REFERENCE}, k = 0) of "
                 f"the same architecture and test set{seeds}. "
                 f"* adjusted p < {p_threshold:g} vs that reference ({pm}). "
                 f"† not tested: too few positive or negative test images (counts in the table's n_pos, n_neg). "
                 f"Grey n/a: AUROC undefined (e.g. no positive test cases) here or in the reference. "
                 f"Per-label confidence intervals ({ci}) are in the source table.")
    save_figure(fig, out_path)
    return fig
