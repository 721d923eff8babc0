"""Which arm works, at which alpha, at what cost: every method's worst-cell, mismatched-cell and
real-image accuracy beside ERM's, with paired differences over seeds (every arm trains on the same
manifests and seeds as ERM)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation.cells import t_interval

MEASURES = {"worst_cell": "acc_wg", "mismatched": "acc_mismatched", "real_acc": "acc_real"}
# Why an arm cannot help where alpha makes source and class the same thing (alpha 0 and 1).
LIMITS = {
    "reweight": "source = class at this alpha: two groups only, no mismatched group to up-weight",
    "groupdro": "source = class at this alpha: two groups only, no mismatched group to up-weight",
    "adversarial": "source = class at this alpha: hiding the source hides the class",
    "two_stage": "undefined at this alpha (one class per stage): skipped",
}


def _columns() -> list[str]:
    cols = ["dataset", "variant", "architecture", "method", "alpha", "n_seeds"]
    for name in MEASURES:
        cols += [name, f"{name}_ci_low", f"{name}_ci_high"]
    for name in MEASURES:
        cols += [f"delta_{name}", f"delta_{name}_ci_low", f"delta_{name}_ci_high"]
    return cols + ["note"]


def _known(values: list) -> np.ndarray:
    return np.asarray([x for x in values if x is not None and not np.isnan(x)], dtype=float)


def _interval(values: list, ci: float, bounds: tuple | None = (0.0, 1.0)) -> list[float]:
    """[mean, low, high] over seeds; NaN when no seed has a value (a skipped arm)."""
    v = _known(values)
    if not len(v):
        return [np.nan] * 3
    mean, _, low, high = t_interval(v, ci, bounds)
    return [mean, low, high]


def mitigation_summary(records: list[dict], ci: float, methods: list[str] | None = None) -> pd.DataFrame:
    """One row per (dataset, variant, architecture, method, alpha) from the runs' metric records.

    ``delta_*`` is the arm minus ERM on the same seed, averaged over seeds (ERM's own rows are 0);
    ``methods`` fixes the row order (default: order of first appearance)."""
    frame = pd.DataFrame(records)
    if frame.empty:
        return pd.DataFrame(columns=_columns())
    frame["alpha"] = frame["alpha"].astype(float)
    order = methods or list(dict.fromkeys(frame["method"]))
    key = ["dataset", "variant", "architecture", "alpha", "seed"]
    erm = frame[frame["method"] == "erm"].set_index(key)
    rows = []
    for (dataset, variant, arch, alpha), group in frame.groupby(["dataset", "variant", "architecture", "alpha"],
                                                                 sort=False):
        for method in [m for m in order if m in set(group["method"])]:
            runs = group[group["method"] == method]
            row = [dataset, variant, arch, method, alpha]
            values = {name: [r.get(metric) for r in runs.to_dict("records")] for name, metric in MEASURES.items()}
            row.append(len(_known(values["worst_cell"])))
            for name in MEASURES:
                row += _interval(values[name], ci)
            for name, metric in MEASURES.items():
                deltas = []
                for r in runs.to_dict("records"):
                    base = (dataset, variant, arch, alpha, r["seed"])
                    if base in erm.index and r.get(metric) is not None and erm.loc[base, metric] is not None:
                        deltas.append(float(r[metric]) - float(erm.loc[base, metric]))
                row += _interval(deltas, ci, bounds=None)  # a difference may be negative
            if row[5] == 0:  # no seed has metrics: the arm was skipped (its training logs say why)
                row.append(LIMITS["two_stage"] if method == "two_stage" else "no run has metrics (see its log)")
            else:
                row.append(LIMITS.get(method, "") if alpha in (0.0, 1.0) else "")
            rows.append(row)
    return pd.DataFrame(rows, columns=_columns())
