"""How much a classifier exploits a pool's detectability: one row per generator variant and architecture,
with the pool's C2ST and Fréchet numbers beside the alpha sweep's shortcut measures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation.cells import ci_method, mismatched_cells, t_interval

COLUMNS = ["dataset", "variant", "architecture", "c2st_auroc", "c2st_ci_low", "c2st_ci_high", "task_auroc",
           "c2st_minus_task", "frechet", "frechet_real_floor", "n_seeds", "mismatched_acc", "mismatched_ci_low",
           "mismatched_ci_high", "worst_cell_alpha0.5", "worst_cell_alpha0.5_ci_low", "worst_cell_alpha0.5_ci_high",
           "ci_method"]


def _per_seed(records: list[dict], alpha: float, value) -> np.ndarray:
    """``value(record)`` of every seed's run at ``alpha`` (runs where it is undefined are left out)."""
    out = [value(r) for r in records if float(r["alpha"]) == alpha]
    return np.asarray([v for v in out if v is not None and not np.isnan(v)], dtype=float)


def shortcut_summary(records: list[dict], detectability: pd.DataFrame, class_names: list[str],
                     ci: float) -> pd.DataFrame:
    """``records``: the run metrics of the alpha sweep; ``detectability``: the tidy detectability table.

    mismatched_acc: per seed, the mean accuracy of the mismatched cells at alpha 0 and 1 (four cells), then
    mean and interval over seeds; worst_cell_alpha0.5: the lowest cell at alpha 0.5 the same way. Either is
    empty when the sweep lacks those alphas.
    """

    def number(variant, group, metric, column="value"):
        hit = detectability[(detectability["variant"] == variant) & (detectability["group"] == group)
                            & (detectability["metric"] == metric)]
        return float(hit[column].iloc[0]) if len(hit) else np.nan

    frame = pd.DataFrame(records)
    rows = []
    for (dataset, variant, arch), runs in frame.groupby(["dataset", "variant", "architecture"], sort=False):
        runs = runs.to_dict("records")
        seeds = sorted({r["seed"] for r in runs})

        def mismatched(seed):
            cells = [r[f"acc_cell:{c}"] for a in (0.0, 1.0) for r in runs
                     if r["seed"] == seed and float(r["alpha"]) == a for c in mismatched_cells(class_names, a)]
            return float(np.mean(cells)) if len(cells) == 4 and None not in cells else None

        mis = np.asarray([m for m in map(mismatched, seeds) if m is not None], dtype=float)
        worst = _per_seed(runs, 0.5, lambda r: r.get("acc_wg"))
        c2st = number(variant, "pooled", "c2st_auroc")
        task = number(variant, "pooled", "task_auroc")
        classes = [number(variant, c, "frechet") for c in class_names]
        floors = [number(variant, c, "frechet_real_floor") for c in class_names]
        m_mean, _, m_lo, m_hi = t_interval(mis, ci) if len(mis) else (np.nan,) * 4
        w_mean, _, w_lo, w_hi = t_interval(worst, ci) if len(worst) else (np.nan,) * 4
        rows.append([dataset, variant, arch, c2st, number(variant, "pooled", "c2st_auroc", "ci_low"),
                     number(variant, "pooled", "c2st_auroc", "ci_high"), task, c2st - task,
                     float(np.mean(classes)), float(np.mean(floors)), len(seeds), m_mean, m_lo, m_hi, w_mean, w_lo,
                     w_hi, ci_method(ci)])
    return pd.DataFrame(rows, columns=COLUMNS)
