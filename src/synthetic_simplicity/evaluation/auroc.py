"""Per-label AUROC of multi-label runs, and the uncertainty of the supplementation table.

Label semantics follow Study B's eval script: per label, uncertain (-1) rows are dropped and
not-mentioned (NaN) rows count as negative; a label with one class absent has no AUROC and is left
out of the macro mean. Images of one patient are correlated, so every resampling draws patients.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import rankdata

from ..core.seeds import derive_seed

PROTOCOLS = ("real+synthetic", "synthetic only", "external mixing")
REFERENCE = ("real+synthetic", 0)  # (protocol, k) of the real-only baseline every group is tested against
MACRO = "auroc_macro"
RUN_KEYS = ("arch", "protocol", "k", "seed", "test_set", "frame")
COLUMNS = ("arch", "test_set", "protocol", "k", "metric", "value", "ci_low", "ci_high", "p_value", "p_adjusted",
           "n_seeds", "n_images", "n_subjects", "n_pos", "n_neg", "n_boot_valid", "point_method", "ci_method",
           "p_method")
POINTS = ("run_mean", "ensemble")
P_ADJUST = ("holm", "bh", "none")


def _binary_scores(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    if y.ndim != 1 or y.shape != score.shape:
        raise ValueError(f"y and score must be 1-D of equal length, got {y.shape} and {score.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1")
    if np.isnan(score).any():
        raise ValueError("score holds NaN")
    return y == 1, score


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUROC, ties counted half (= sklearn roc_auc_score); NaN if a class is absent."""
    pos, score = _binary_scores(y, score)
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)  # midranks: a positive tied with a negative adds half a pair
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def label_targets(frame: pd.DataFrame, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(y, p), both (N, L) float; y is 0/1, NaN where the row is dropped for that label (uncertain)."""
    ycols = [f"y:{name}" for name in labels]
    pcols = [f"p:{name}" for name in labels]
    missing = [c for c in ycols + pcols if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {missing}")
    raw = frame[ycols].to_numpy(dtype=float)
    bad = ~(np.isnan(raw) | np.isin(raw, (-1.0, 0.0, 1.0)))
    if bad.any():
        raise ValueError(f"labels must be 1, 0, -1 or NaN, got {sorted(set(raw[bad].tolist()))}")
    y = np.where(np.isnan(raw), 0.0, raw)  # not mentioned counts as negative
    y[y == -1] = np.nan  # uncertain: left out of that label's AUROC
    return y, frame[pcols].to_numpy(dtype=float)


def per_label_auroc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(L,) AUROC per column over its non-NaN rows of y."""
    if y.ndim != 2 or y.shape != p.shape:
        raise ValueError(f"y and p must be (N, L) of equal shape, got {y.shape} and {p.shape}")
    keep = ~np.isnan(y)
    return np.array([auroc(y[keep[:, j], j], p[keep[:, j], j]) for j in range(y.shape[1])])


def _none_if_nan(v: float) -> float | None:
    return None if math.isnan(v) else float(v)  # NaN is not JSON


def _macro(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the defined (non-NaN) values; NaN where none is defined."""
    ok = ~np.isnan(values)
    n = ok.sum(axis=-1)
    total = np.where(ok, values, 0.0).sum(axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def run_auroc(frame: pd.DataFrame, labels: list[str]) -> dict:
    """auroc:<L>, count_pos:<L>, count_neg:<L> per label and auroc_macro; undefined AUROCs are None."""
    y, p = label_targets(frame, labels)
    aucs = per_label_auroc(y, p)
    out: dict = {}
    for j, name in enumerate(labels):
        out[f"auroc:{name}"] = _none_if_nan(aucs[j])
        out[f"count_pos:{name}"] = int((y[:, j] == 1).sum())
        out[f"count_neg:{name}"] = int((y[:, j] == 0).sum())
    out[MACRO] = _none_if_nan(float(_macro(aucs)))
    return out


def _resamples(subject: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, int, Iterator[np.ndarray]]:
    """(subject code per row, number of subjects, the n_boot draws of subject codes, lazily).

    The one source of resamples, so cluster_bootstrap and the table's weights see the same draws;
    drawn one resample at a time to hold one draw in memory, not n_boot.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if len(subject) == 0:
        raise ValueError("no rows to resample")
    _, codes = np.unique(np.asarray(subject).astype(str), return_inverse=True)
    n_subjects = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    return codes, n_subjects, (rng.integers(0, n_subjects, n_subjects) for _ in range(n_boot))


def cluster_bootstrap(subject: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Row indices of n_boot patient-level resamples: all rows of each drawn subject, once per draw."""
    codes, _, draws = _resamples(subject, n_boot, seed)
    by_subject = np.argsort(codes, kind="stable")  # rows grouped by subject, file order within
    sizes = np.bincount(codes)
    starts = np.cumsum(sizes) - sizes
    out = []
    for d in draws:
        n = sizes[d]
        within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        out.append(by_subject[np.repeat(starts[d], n) + within])
    return out


def _draw_weights(codes: np.ndarray, n_subjects: int, draws: Iterator[np.ndarray], n_boot: int) -> np.ndarray:
    """(n_subjects, n_boot) times each subject is drawn per resample, as the sparse-product operand.

    float32 halves the memory traffic and is exact while every weighted sum stays below 2**24; a
    resample holds at most n_subjects x (largest subject) rows.
    """
    most_rows = n_subjects * int(np.bincount(codes).max())
    weights = np.empty((n_subjects, n_boot), dtype=np.float32 if 2 * most_rows < 2**24 else np.float64)
    for b, d in enumerate(draws):
        weights[:, b] = np.bincount(d, minlength=n_subjects)
    return weights


def _boot_auroc(y: np.ndarray, score: np.ndarray, codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of each resample: Mann-Whitney with every row weighted by its subject's draw count.

    Positives sharing the negatives below and tied with them form one slot. A negative counts twice
    for every slot above it and once for a slot it ties, i.e. +1 from the first slot whose tie range
    passes it and +1 from the first slot wholly above it. One sparse product with the weights gives
    these increments and each slot's positive weight per resample; a running sum over slots
    completes it. So a resample costs O(n), with no per-resample sort.
    """
    pos = y == 1
    if pos.sum() > (~pos).sum():
        pos, score = ~pos, -score  # AUROC(y, s) = AUROC(1 - y, -s): "positives" (slots) are the smaller class
    if not pos.any() or pos.all():
        return np.full(weights.shape[1], np.nan)
    order = np.argsort(score[~pos], kind="stable")
    neg_sorted, neg_codes = score[~pos][order], codes[~pos][order]
    n_neg = len(neg_sorted)
    below = np.searchsorted(neg_sorted, score[pos], side="left")
    upto = np.searchsorted(neg_sorted, score[pos], side="right")
    slot_key, pos_slot = np.unique(below * (n_neg + 1) + upto, return_inverse=True)  # score order
    slot_below, slot_upto = np.divmod(slot_key, n_neg + 1)
    n_slots, rank = len(slot_key), np.arange(n_neg)
    rows = np.concatenate([np.searchsorted(slot_upto, rank, side="right"),
                           np.searchsorted(slot_below, rank, side="right"), n_slots + 1 + pos_slot])
    cols = np.concatenate([neg_codes, neg_codes, codes[pos]])
    both = sparse.csr_matrix((np.ones(len(rows), dtype=weights.dtype), (rows, cols)),
                             shape=(2 * n_slots + 1, weights.shape[0]))
    prod = both @ weights
    steps = list(prod[:n_slots + 1])
    for prev, cur in zip(steps, steps[1:]):
        cur += prev  # running sum over slots, vectorised across resamples; row n_slots: 2 x negative weight
    twice = np.einsum("kb,kb->b", prod[:n_slots], prod[n_slots + 1:], dtype=np.float64)
    pairs = prod[n_slots + 1:].sum(axis=0, dtype=np.float64) * prod[n_slots]  # 2 x positive x negative weight
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, twice / pairs, np.nan)


def _percentile_ci(values: np.ndarray, ci: float) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if not len(v):
        return math.nan, math.nan
    lo, hi = np.quantile(v, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def auroc_ci(y: np.ndarray, score: np.ndarray, subject: np.ndarray, n_boot: int, ci: float,
             seed: int) -> tuple[float, float, float]:
    """(AUROC, CI low, CI high): the percentile interval of a bootstrap that resamples subjects (give
    each row its own subject where rows are independent)."""
    y = np.asarray(y, dtype=float)
    codes, n_subjects, draws = _resamples(subject, n_boot, seed)
    boot = _boot_auroc(y, np.asarray(score, dtype=float), codes, _draw_weights(codes, n_subjects, draws, n_boot))
    return (auroc(y, score), *_percentile_ci(boot, ci))


def _paired_bootstrap_p(diff: np.ndarray) -> float:
    """Two-sided p from the bootstrap distribution of a difference, +1-corrected so never 0."""
    d = diff[~np.isnan(diff)]
    if not len(d):
        return math.nan
    below = ((d <= 0).sum() + 1) / (len(d) + 1)
    above = ((d >= 0).sum() + 1) / (len(d) + 1)
    return float(min(1.0, 2 * min(below, above)))


def _test_set_inputs(runs: list[dict], labels: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """subject and y shared by all runs of one test set, and {(arch, protocol, k): [p per seed]}."""
    def name(r):
        return f"{r['arch']}/{r['protocol']}/k={r['k']}/seed={r['seed']} on {r['test_set']}"

    first = runs[0]
    subject = first["frame"]["subject"].astype(str).to_numpy()
    index = first["frame"]["index"].to_numpy()
    y, _ = label_targets(first["frame"], labels)
    groups: dict = defaultdict(list)
    for r in runs:
        f = r["frame"]
        ry, rp = label_targets(f, labels)
        # Pairing (shared patient resamples) needs every run to score the same rows in the same order.
        if not (len(f) == len(subject) and np.array_equal(f["subject"].astype(str).to_numpy(), subject)
                and np.array_equal(f["index"].to_numpy(), index)):
            raise ValueError(f"run {name(r)} scores other rows (subject/index order) than run {name(first)}")
        if not np.array_equal(ry, y, equal_nan=True):
            raise ValueError(f"run {name(r)} has other labels than run {name(first)} on the same rows")
        if np.isnan(rp).any():
            raise ValueError(f"run {name(r)} has NaN probabilities")
        groups[(r["arch"], r["protocol"], int(r["k"]))].append(rp)
    return subject, y, groups


def adjust_p(p: np.ndarray, method: str) -> np.ndarray:
    """Multiplicity-adjusted p-values of one family (NaN entries are not tested and stay NaN).

    holm: Holm's step-down (family-wise error); bh: Benjamini-Hochberg (false discovery rate).
    """
    if method not in P_ADJUST:
        raise ValueError(f"p_adjust must be one of {P_ADJUST}, got {method!r}")
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0 or method == "none":
        out[ok] = p[ok]
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adjusted = np.minimum.accumulate((m / np.arange(m, 0, -1) * ranked[::-1]))[::-1]
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _run_draws(n_runs: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_runs) run indices drawn with replacement per resample: seeds are a source of variance.
    Groups with as many runs share the draws (run i is seed i in each), as they share the patients."""
    return np.random.default_rng(seed).integers(0, n_runs, (n_boot, n_runs))


def _group_estimates(y: np.ndarray, ps: list[np.ndarray], keep: np.ndarray, codes: np.ndarray,
                     weights: np.ndarray, point: str, draw_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(point (L,), resamples (n_boot, L)) of one group's per-label AUROC.

    run_mean: the mean of the runs' AUROCs; each resample draws patients (``weights``) and runs
    (``_run_draws(len(ps), n_boot, draw_seed)``). ensemble: the AUROC of the seed-mean
    probabilities on each patient resample.
    """
    scorers = [np.mean(ps, axis=0)] if point == "ensemble" else ps
    points = np.stack([per_label_auroc(y, s) for s in scorers])  # (runs, L)
    boots = np.stack([np.column_stack([_boot_auroc(y[kept, j], s[kept, j], codes[kept], weights)
                                       for j, kept in enumerate(keep)]) for s in scorers])  # (runs, n_boot, L)
    if len(scorers) == 1:
        return points[0], boots[0]
    draws = _run_draws(len(scorers), weights.shape[1], draw_seed)
    resampled = boots[draws, np.arange(weights.shape[1])[:, None]].mean(axis=1)  # (n_boot, L)
    return points.mean(axis=0), resampled


def _fixed_macro(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean over the same ``labels`` in every row; NaN where one of them is undefined in that row."""
    v = values[..., labels]
    return v.mean(axis=-1) if len(labels) else np.full(v.shape[:-1], np.nan)


def supplementation_table(runs: list[dict], labels: list[str], n_boot: int, ci: float, seed: int,
                          point: str = "run_mean", p_adjust: str = "holm", min_positives: int = 10) -> pd.DataFrame:
    """Long table: one row per (arch, test_set, protocol, k, metric), AUROC with CI and p vs real only.

    ``point``: the value is the mean of the per-run AUROCs (``run_mean``; resamples draw patients and
    runs, so seeds add to the interval) or the AUROC of the seed-mean probabilities (``ensemble``;
    resamples draw patients). Every group of a test set shares the same patient resamples, so
    comparisons are paired: the p-value of a label or of the macro AUROC is the two-sided paired
    bootstrap test of its difference from real only (protocol real+synthetic, k = 0) of the same
    architecture. Per-label p-values are adjusted over the labels of their group (``p_adjust``) and
    not given where a label has fewer than ``min_positives`` positive or negative test images. The
    macro AUROC is the mean over the labels defined on the whole test set, the same set in every
    resample (a resample where one of them is undefined is left out: ``n_boot_valid``).
    n_images / n_subjects / n_pos / n_neg count what a metric is computed on (a label drops its
    uncertain rows; a macro row gives the smallest label's counts).
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    if point not in POINTS:
        raise ValueError(f"point must be one of {POINTS}, got {point!r}")
    adjust_p(np.array([]), p_adjust)  # checks the method name before any work
    if not labels:
        raise ValueError("no labels")
    seen, by_test_set = set(), defaultdict(list)
    for r in runs:
        missing = [k for k in RUN_KEYS if k not in r]
        if missing:
            raise ValueError(f"run lacks key(s) {missing}")
        # External mixing names its real site: "external mixing (mimic)".
        if r["protocol"].split(" (", 1)[0] not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {r['protocol']!r}")
        key = (r["arch"], r["protocol"], int(r["k"]), int(r["seed"]), r["test_set"])
        # A repeated run would silently weigh twice in the seed mean.
        if key in seen:
            raise ValueError(f"duplicate run {dict(zip(RUN_KEYS[:-1], key))}")
        seen.add(key)
        by_test_set[r["test_set"]].append(r)

    rows = []
    for test_set in sorted(by_test_set):
        subject, y, groups = _test_set_inputs(by_test_set[test_set], labels)
        codes, n_subjects, draws = _resamples(subject, n_boot, seed)
        weights = _draw_weights(codes, n_subjects, draws, n_boot)  # shared by all groups: paired
        keep = ~np.isnan(y).T  # (L, N): rows scored for each label
        n_pos = np.array([int((y[kept, j] == 1).sum()) for j, kept in enumerate(keep)])
        n_neg = keep.sum(axis=1) - n_pos
        defined = np.flatnonzero((n_pos > 0) & (n_neg > 0))
        label_subjects = [len(np.unique(codes[kept])) for kept in keep]
        estimates = {g: _group_estimates(y, ps, keep, codes, weights, point,
                                         derive_seed(seed, "runs", test_set, len(ps)))
                     for g, ps in groups.items()}
        for g in sorted(groups):
            arch, protocol, k = g
            ref = (arch, *REFERENCE)
            paired = ref in groups and g != ref
            n_runs = len(groups[g])
            point_text = (f"mean of per-run AUROCs over {n_runs} seed(s)" if point == "run_mean"
                          else f"AUROC of seed-mean probabilities ({n_runs} seed(s))")
            what = "patients and seeds" if point == "run_mean" and n_runs > 1 else "patients"
            ci_text = f"{ci * 100:g}% CI: percentile bootstrap over {what} ({n_boot} resamples)"
            value, boot = estimates[g]
            diff = boot - estimates[ref][1] if paired else None
            lead = (arch, test_set, protocol, k)
            macro_boot = _fixed_macro(boot, defined)
            p_macro = _paired_bootstrap_p(_fixed_macro(diff, defined)) if paired else math.nan
            smallest = defined[np.argmin(n_pos[defined])] if len(defined) else None
            p_test = (f"vs real only (k=0): paired patient-level bootstrap of the difference ({n_boot} "
                      f"resamples)") if paired else "not tested (this is the reference or it has none)"
            rows.append((*lead, MACRO, float(_fixed_macro(value, defined)), *_percentile_ci(macro_boot, ci),
                         p_macro, p_macro, n_runs, len(y), n_subjects,
                         None if smallest is None else int(n_pos[smallest]),
                         None if smallest is None else int(n_neg[smallest]), int(np.isfinite(macro_boot).sum()),
                         point_text + f", averaged over the {len(defined)} labels defined on this test set",
                         ci_text, p_test))
            p_label = np.full(len(labels), np.nan)
            few = (n_pos < min_positives) | (n_neg < min_positives)
            if paired:
                for j in defined:
                    if not few[j]:
                        p_label[j] = _paired_bootstrap_p(diff[:, j])
            p_adj = adjust_p(p_label, p_adjust)
            family = f"{p_adjust}-adjusted over the {int((~np.isnan(p_label)).sum())} labels tested in this group"
            for j, name in enumerate(labels):
                if paired and j in defined and few[j]:
                    p_text = (f"not tested: {n_pos[j]} positive / {n_neg[j]} negative test images, fewer than "
                              f"evaluation.min_positives={min_positives}")
                elif paired and j in defined:
                    p_text = f"{p_test}; {family}" if p_adjust != "none" else f"{p_test}; not adjusted"
                else:
                    p_text = p_test if not paired else "not tested: AUROC undefined on this test set"
                rows.append((*lead, f"auroc:{name}", float(value[j]), *_percentile_ci(boot[:, j], ci), p_label[j],
                             p_adj[j], n_runs, int(keep[j].sum()), label_subjects[j], int(n_pos[j]), int(n_neg[j]),
                             int(np.isfinite(boot[:, j]).sum()), point_text, ci_text, p_text))
    return pd.DataFrame(rows, columns=list(COLUMNS))
