"""Per-run accuracy metrics on the class x source test cells, and their aggregation over seeds.

Metric names follow WILDS (``acc_avg``, ``acc_wg``) so the tables read like the group-robustness
literature; a "group" here is one class x source cell, keyed ``{class}·{source}`` (U+00B7).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

SOURCE_NAMES = ("real", "synthetic")  # index = the `source` code of the image-set contract
CELL_SEP = "\u00b7"
REQUIRED_COLUMNS = ("label", "source", "pred")  # all the metrics need; pool/index/prob_* are extra
IDENTITY_KEYS = ("dataset", "variant", "method", "architecture", "alpha", "seed")
DEFAULT_CI = 0.95


def ci_method(ci: float = DEFAULT_CI) -> str:
    return f"{ci * 100:g}% Student-t interval over seeds, clipped to [0, 1]"


CI_METHOD = ci_method(DEFAULT_CI)


def cell_name(class_name: str, source: int) -> str:
    return f"{class_name}{CELL_SEP}{SOURCE_NAMES[source]}"


def _acc(correct: np.ndarray) -> float | None:
    # None (JSON null), not NaN: an empty cell has no accuracy, and NaN is not valid JSON.
    return float(correct.mean()) if len(correct) else None


def run_metrics(pred: pd.DataFrame, class_names: list[str], alpha: float | None = None) -> dict:
    """acc_avg, acc_cell:*/count_cell:* per class x source cell, acc_wg, acc_balanced, acc_real and
    acc_synthetic (accuracy on each source's test images) and, given the run's ``alpha``,
    acc_mismatched: the mean accuracy of its ``mismatched_cells``."""
    missing = [c for c in REQUIRED_COLUMNS if c not in pred.columns]
    if missing:
        raise ValueError(f"predictions frame lacks required column(s) {missing}; has {list(pred.columns)}")
    label = pred["label"].to_numpy(dtype=np.int64)
    source = pred["source"].to_numpy(dtype=np.int64)
    # Out-of-range codes would silently fall outside every cell and skew acc_avg vs the cells.
    if len(label) and (label.min() < 0 or label.max() >= len(class_names)):
        raise ValueError(f"labels must lie in 0..{len(class_names) - 1} (class_names {class_names})")
    if not np.isin(source, [0, 1]).all():
        raise ValueError(f"source must be 0 (real) or 1 (synthetic), got {sorted(set(source.tolist()))}")
    correct = pred["pred"].to_numpy(dtype=np.int64) == label

    out: dict = {"acc_avg": _acc(correct)}
    cells = []
    for k, name in enumerate(class_names):
        for s in range(len(SOURCE_NAMES)):
            hit = correct[(label == k) & (source == s)]
            out[f"acc_cell:{cell_name(name, s)}"] = _acc(hit)
            out[f"count_cell:{cell_name(name, s)}"] = int(len(hit))
            if len(hit):
                cells.append(float(hit.mean()))
    out["acc_wg"] = min(cells) if cells else None
    # Classes absent from the test set have no recall; averaging only present ones keeps it defined.
    recalls = [float(correct[label == k].mean()) for k in range(len(class_names)) if (label == k).any()]
    out["acc_balanced"] = float(np.mean(recalls)) if recalls else None
    for s, name in enumerate(SOURCE_NAMES):
        out[f"acc_{name}"] = _acc(correct[source == s])
    if alpha is not None:
        mismatched = [out[f"acc_cell:{c}"] for c in mismatched_cells(class_names, alpha)]
        out["acc_mismatched"] = None if None in mismatched else float(np.mean(mismatched))
    return out


def read_table(path) -> pd.DataFrame:
    """A Study A result table (alpha metrics, detectability, shortcut summary): names such as a variant
    called ``50`` or ``NA`` stay strings; only empty fields are missing values."""
    return pd.read_csv(path, dtype={"dataset": str, "variant": str, "method": str, "architecture": str, "group": str},
                       keep_default_na=False, na_values=[""])


def t_interval(values: np.ndarray, ci: float, bounds: tuple[float, float] | None = (0.0, 1.0)
               ) -> tuple[float, float, float, float]:
    """(mean, sd, low, high) of values over seeds: a Student-t interval, clipped to ``bounds`` (accuracies
    live in [0, 1]; None for differences of accuracies); NaN spread and interval from a single seed (no
    spread estimate, not 0)."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    sd = float(v.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf((1 + ci) / 2, n - 1)) * sd / math.sqrt(n) if n > 1 else math.nan
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = np.clip([low, high], *bounds)
    return mean, sd, float(low), float(high)


def mismatched_cells(class_names: list[str], alpha: float) -> list[str]:
    """The cells whose source is the class's minority source in training (class 1 gets alpha real, class 2
    the reverse): at alpha 0 and 1 the sources the class never had. There a "synthetic?" shortcut shows
    as low accuracy. At alpha 0.5 no source is a minority and all four cells count."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], not {alpha}")
    first, second = class_names[:2]
    if alpha < 0.5:
        return [cell_name(first, 0), cell_name(second, 1)]
    if alpha > 0.5:
        return [cell_name(first, 1), cell_name(second, 0)]
    return [cell_name(c, s) for c in (first, second) for s in (0, 1)]


def aggregate(records: list[dict], ci: float = DEFAULT_CI) -> pd.DataFrame:
    """Long table: one row per (dataset, variant, method, architecture, alpha, acc_* metric) with a t-interval
    over seeds.

    Null metric values (empty cells) are left out of that row's seeds, so n_seeds may be below the
    number of runs and is 0 when the cell is empty in every run.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    rows, seen = [], set()
    for r in records:
        missing = [k for k in IDENTITY_KEYS if k not in r]
        if missing:
            raise ValueError(f"metric record lacks identifying key(s) {missing}")
        key = (str(r["dataset"]), str(r["variant"]), str(r["method"]), str(r["architecture"]), float(r["alpha"]),
               int(r["seed"]))
        # A repeated run would silently count as an extra seed and shrink the interval.
        if key in seen:
            raise ValueError(f"duplicate run {dict(zip(IDENTITY_KEYS, key))}")
        seen.add(key)
        for m, v in r.items():
            if m.startswith("acc_"):
                rows.append((*key[:5], m, np.nan if v is None else float(v)))
    group = ["dataset", "variant", "method", "architecture", "alpha", "metric"]
    cols = [*group[:-1], "metric", "cell", "n_seeds", "mean", "sd", "ci_low", "ci_high"]
    if not rows:
        return pd.DataFrame(columns=cols)
    long = pd.DataFrame(rows, columns=[*group, "value"])
    out = []
    for (d, var, meth, a, al, m), g in long.groupby(group, sort=True):
        v = g["value"].dropna().to_numpy()
        cell = m.split(":", 1)[1] if m.startswith("acc_cell:") else ""
        out.append((d, var, meth, a, al, m, cell, len(v), *t_interval(v, ci)))
    table = pd.DataFrame(out, columns=cols)
    return table.sort_values(group, kind="stable").reset_index(drop=True)


