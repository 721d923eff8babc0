import json
import math

import numpy as np
import pandas as pd
import pytest

from synthetic_simplicity.evaluation.auroc import (
    COLUMNS, _boot_auroc, _draw_weights, _resamples, adjust_p, auroc, cluster_bootstrap, label_targets,
    per_label_auroc, run_auroc, supplementation_table,
)


def pairwise_auroc(y, s):
    """Brute force: share of (positive, negative) pairs ranked right, ties half."""
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def test_auroc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    for n, prevalence in [(2, 0.5), (7, 0.3), (50, 0.5), (400, 0.1), (401, 0.9)]:
        y = (rng.random(n) < prevalence).astype(float)
        y[:2] = [0, 1]  # both classes present
        s = np.round(rng.random(n) + 0.3 * y, 1)  # coarse scores: many ties, also across classes
        assert auroc(y, s) == pytest.approx(pairwise_auroc(y, s), abs=1e-12)


def test_auroc_known_examples():
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert auroc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert auroc(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3])) == 1.0
    assert auroc(np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3])) == 0.0
    assert auroc(np.array([0, 1, 1]), np.array([0.4, 0.4, 0.9])) == pytest.approx(0.75)
    assert math.isnan(auroc(np.array([1, 1]), np.array([0.2, 0.3])))
    assert math.isnan(auroc(np.array([0, 0]), np.array([0.2, 0.3])))
    with pytest.raises(ValueError, match="0 and 1"):
        auroc(np.array([0, -1]), np.array([0.2, 0.3]))
    with pytest.raises(ValueError, match="NaN"):
        auroc(np.array([0, 1]), np.array([0.2, np.nan]))


def test_label_targets_drops_uncertain_and_counts_unmentioned_negative():
    frame = pd.DataFrame({"subject": list("abcd"), "index": range(4),
                          "y:A": [1.0, 0.0, -1.0, np.nan], "p:A": [0.9, 0.1, 0.5, 0.3],
                          "y:B": [np.nan, np.nan, 1.0, -1.0], "p:B": [0.2, 0.3, 0.4, 0.5]})
    y, p = label_targets(frame, ["A", "B"])
    np.testing.assert_array_equal(y, [[1, 0], [0, 0], [np.nan, 1], [0, np.nan]])
    np.testing.assert_array_equal(p, frame[["p:A", "p:B"]].to_numpy())
    with pytest.raises(ValueError, match=r"\['y:C', 'p:C'\]"):
        label_targets(frame, ["A", "C"])
    with pytest.raises(ValueError, match=r"\[2.0\]"):
        label_targets(frame.assign(**{"y:A": [2.0, 0, 1, 0]}), ["A"])


def test_run_auroc_skips_dropped_rows_and_undefined_labels():
    # The uncertain row would rank above the positive; counted as either class it would change A's AUROC.
    frame = pd.DataFrame({"subject": list("abcde"), "index": range(5),
                          "y:A": [1.0, 0.0, np.nan, -1.0, 0.0], "p:A": [0.8, 0.3, 0.1, 0.95, 0.6],
                          "y:B": [0.0, np.nan, -1.0, 0.0, 0.0], "p:B": [0.1, 0.2, 0.3, 0.4, 0.5]})
    m = run_auroc(frame, ["A", "B"])
    assert m["auroc:A"] == 1.0
    assert m["count_pos:A"] == 1 and m["count_neg:A"] == 3
    assert m["auroc:B"] is None and m["count_pos:B"] == 0 and m["count_neg:B"] == 4
    assert m["auroc_macro"] == 1.0  # B has no AUROC and is left out, not counted as 0 or 0.5
    json.dumps(m, allow_nan=False)
    y, p = label_targets(frame, ["A", "B"])
    np.testing.assert_array_equal(per_label_auroc(y, p), [1.0, np.nan])


def test_cluster_bootstrap_keeps_whole_patients_and_is_deterministic():
    subject = np.array(["p3", "p1", "p3", "p2", "p1", "p3", "p4"])
    rows_of = {s: set(np.flatnonzero(subject == s)) for s in set(subject)}
    boots = cluster_bootstrap(subject, 50, seed=7)
    assert len(boots) == 50
    for idx in boots:
        drawn = pd.Series(subject[idx]).value_counts()
        # Each subject appears (its row count) x (times drawn); 4 draws of 4 subjects per resample.
        times = {s: c // len(rows_of[s]) for s, c in drawn.items()}
        assert all(c % len(rows_of[s]) == 0 for s, c in drawn.items())
        assert sum(times.values()) == 4
        for s, t in times.items():
            assert sorted(i for i in idx if subject[i] == s) == sorted(list(rows_of[s]) * t)
    again = cluster_bootstrap(subject, 50, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(boots, again))
    other = cluster_bootstrap(subject, 50, seed=8)
    assert not all(np.array_equal(a, b) for a, b in zip(boots, other))


def test_fast_bootstrap_auroc_equals_auroc_of_each_resample():
    rng = np.random.default_rng(4)
    n = 300
    subject = rng.integers(0, 90, n).astype(str)
    boots = cluster_bootstrap(subject, 40, seed=5)
    codes, n_subjects, draws = _resamples(subject, 40, seed=5)
    weights = _draw_weights(codes, n_subjects, draws, 40)
    for prevalence in (0.02, 0.3, 0.5, 0.8, 0.97):
        y = (rng.random(n) < prevalence).astype(float)
        s = np.round(rng.random(n) + 0.3 * y, 1)  # many ties
        slow = np.array([auroc(y[i], s[i]) for i in boots])
        np.testing.assert_allclose(_boot_auroc(y, s, codes, weights), slow, rtol=0, atol=1e-12)


LABELS = ["A", "B", "C", "Empty"]


def make_frame(rng, n_subjects, y, noise):
    """Two images per patient; p = sigmoid(signal + noise); label 'Empty' is never mentioned."""
    subject = np.repeat([f"s{i:04d}" for i in range(n_subjects)], 2)
    f = {"subject": subject, "index": np.arange(len(subject))}
    for j, name in enumerate(LABELS):
        f[f"y:{name}"] = y[:, j]
        signal = np.nan_to_num(y[:, j], nan=0.0).clip(0)
        f[f"p:{name}"] = 1 / (1 + np.exp(-(2 * signal + rng.normal(0, noise, len(subject)))))
    return pd.DataFrame(f)


@pytest.fixture(scope="module")
def table_inputs():
    rng = np.random.default_rng(6)
    n = 2 * 500
    y = (rng.random((n, len(LABELS))) < [0.3, 0.2, 0.5, 0]).astype(float)
    y[rng.random((n, len(LABELS))) < 0.08] = -1.0
    y[rng.random((n, len(LABELS))) < 0.2] = np.nan
    y[:, 3] = np.nan
    runs = []
    for seed in (0, 1):
        for arch, protocol, k, noise in [("a", "real+synthetic", 0, 2.5), ("a", "real+synthetic", 5, 1.0),
                                         ("c", "synthetic only", 5, 1.0)]:
            runs.append({"arch": arch, "protocol": protocol, "k": k, "seed": seed, "test_set": "t",
                         "frame": make_frame(rng, n // 2, y, noise)})
        same = make_frame(rng, n // 2, y, 2.0)
        for k in (0, 1):  # arch b: k=1 is an exact copy of the reference
            runs.append({"arch": "b", "protocol": "real+synthetic", "k": k, "seed": seed, "test_set": "t",
                         "frame": same})
    return runs, y


@pytest.fixture(scope="module")
def table(table_inputs):
    return supplementation_table(table_inputs[0], LABELS, n_boot=200, ci=0.95, seed=11, min_positives=5)


def cell(table, arch, k, metric, protocol="real+synthetic"):
    row = table[(table.arch == arch) & (table.k == k) & (table.metric == metric) & (table.protocol == protocol)]
    assert len(row) == 1
    return row.iloc[0]


def test_table_layout(table, table_inputs):
    assert list(table.columns) == list(COLUMNS) == [
        "arch", "test_set", "protocol", "k", "metric", "value", "ci_low", "ci_high", "p_value", "p_adjusted",
        "n_seeds", "n_images", "n_subjects", "n_pos", "n_neg", "n_boot_valid", "point_method", "ci_method",
        "p_method"]
    groups = [("a", "real+synthetic", 0), ("a", "real+synthetic", 5), ("b", "real+synthetic", 0),
              ("b", "real+synthetic", 1), ("c", "synthetic only", 5)]
    metrics = ["auroc_macro"] + [f"auroc:{name}" for name in LABELS]
    assert list(zip(table.arch, table.protocol, table.k, table.metric)) == [
        (*g, m) for g in groups for m in metrics]
    assert (table.test_set == "t").all() and (table.n_seeds == 2).all()
    y = table_inputs[1]
    macro = table[table.metric == "auroc_macro"]
    assert (macro.n_images == len(y)).all() and (macro.n_subjects == len(y) // 2).all()
    a_label = cell(table, "a", 5, "auroc:A")
    assert a_label.n_images == (y[:, 0] != -1).sum()  # uncertain rows dropped, NaN kept as negative
    assert a_label.n_pos == (y[:, 0] == 1).sum() and a_label.n_pos + a_label.n_neg == a_label.n_images
    assert macro.n_pos.iloc[0] == min((y[:, j] == 1).sum() for j in range(3))  # the smallest defined label
    assert a_label.point_method == "mean of per-run AUROCs over 2 seed(s)"
    assert macro.point_method.iloc[0].endswith("averaged over the 3 labels defined on this test set")
    assert a_label.ci_method == "95% CI: percentile bootstrap over patients and seeds (200 resamples)"
    assert macro.p_method.iloc[1] == (
        "vs real only (k=0): paired patient-level bootstrap of the difference (200 resamples)")
    assert a_label.p_method == ("vs real only (k=0): paired patient-level bootstrap of the difference (200 "
                                "resamples); holm-adjusted over the 3 labels tested in this group")
    assert cell(table, "a", 0, "auroc:A").p_method == "not tested (this is the reference or it has none)"
    assert cell(table, "a", 5, "auroc:Empty").p_method == "not tested: AUROC undefined on this test set"


def test_table_point_estimate_is_the_mean_of_per_run_aurocs(table, table_inputs):
    runs, _ = table_inputs
    frames = [r["frame"] for r in runs if (r["arch"], r["k"]) == ("a", 5)]
    y, _ = label_targets(frames[0], LABELS)
    per_run = np.mean([per_label_auroc(y, label_targets(f, LABELS)[1]) for f in frames], axis=0)
    for j, name in enumerate(LABELS[:3]):
        assert cell(table, "a", 5, f"auroc:{name}").value == pytest.approx(per_run[j])
    assert cell(table, "a", 5, "auroc_macro").value == pytest.approx(np.mean(per_run[:3]))
    empty = cell(table, "a", 5, "auroc:Empty")  # no positives: undefined, left out of the macro
    assert math.isnan(empty.value) and math.isnan(empty.ci_low) and math.isnan(empty.p_value)


def test_table_ensemble_point_estimate_on_seed_mean_probabilities(table_inputs):
    runs, _ = table_inputs
    ensemble = supplementation_table(runs, LABELS, n_boot=100, ci=0.95, seed=11, point="ensemble")
    frames = [r["frame"] for r in runs if (r["arch"], r["k"]) == ("a", 5)]
    y, _ = label_targets(frames[0], LABELS)
    aucs = per_label_auroc(y, np.mean([label_targets(f, LABELS)[1] for f in frames], axis=0))
    assert cell(ensemble, "a", 5, "auroc:B").value == pytest.approx(aucs[1])
    assert cell(ensemble, "a", 5, "auroc:B").point_method == "AUROC of seed-mean probabilities (2 seed(s))"
    assert cell(ensemble, "a", 5, "auroc:B").ci_method.endswith("over patients (100 resamples)")


def test_table_better_group_is_significant(table):
    ref, better = cell(table, "a", 0, "auroc_macro"), cell(table, "a", 5, "auroc_macro")
    assert better.value > ref.value
    assert better.p_value < 0.05
    assert better.ci_low > ref.ci_high  # the intervals do not even overlap
    for name in LABELS[:3]:
        row = cell(table, "a", 5, f"auroc:{name}")
        assert row.p_value < 0.05 and row.p_value <= row.p_adjusted < 0.05


def test_table_identical_groups(table):
    for metric in ["auroc_macro"] + [f"auroc:{name}" for name in LABELS[:3]]:
        ref, copy = cell(table, "b", 0, metric), cell(table, "b", 1, metric)
        assert (copy.value, copy.ci_low, copy.ci_high) == (ref.value, ref.ci_low, ref.ci_high)
        assert copy.p_value == pytest.approx(1.0)


def test_table_reference_and_unreferenced_groups_have_no_p(table):
    assert table[(table.k == 0)].p_value.isna().all()
    assert table[table.protocol == "synthetic only"].p_value.isna().all()  # arch c has no real-only run
    assert not math.isnan(cell(table, "c", 5, "auroc_macro", "synthetic only").ci_low)


def test_table_ci_contains_point_estimate(table):
    defined = table[table.value.notna()]
    assert len(defined) == 20
    assert ((defined.ci_low <= defined.value) & (defined.value <= defined.ci_high)).all()


def test_table_is_deterministic(table, table_inputs):
    again = supplementation_table(table_inputs[0], LABELS, n_boot=200, ci=0.95, seed=11, min_positives=5)
    pd.testing.assert_frame_equal(table, again)


def test_table_rejects_bad_runs(table_inputs):
    runs = table_inputs[0][:2]
    shuffled = dict(runs[1], frame=runs[1]["frame"].iloc[::-1].reset_index(drop=True))
    with pytest.raises(ValueError, match=r"run a/real\+synthetic/k=5/seed=0 on t scores other rows"):
        supplementation_table([runs[0], shuffled], LABELS, n_boot=10, ci=0.95, seed=0)
    with pytest.raises(ValueError, match="duplicate run"):
        supplementation_table([runs[0], runs[0]], LABELS, n_boot=10, ci=0.95, seed=0)
    with pytest.raises(ValueError, match="protocol"):
        supplementation_table([dict(runs[0], protocol="real only")], LABELS, n_boot=10, ci=0.95, seed=0)
    with pytest.raises(ValueError, match="ci"):
        supplementation_table(runs, LABELS, n_boot=10, ci=95, seed=0)
    with pytest.raises(ValueError, match="p_adjust"):
        supplementation_table(runs, LABELS, n_boot=10, ci=0.95, seed=0, p_adjust="bonferroni")
    with pytest.raises(ValueError, match="point"):
        supplementation_table(runs, LABELS, n_boot=10, ci=0.95, seed=0, point="median")


def test_adjust_p_holm_and_bh_known_values():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5])
    # Holm: sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, running maximum.
    np.testing.assert_allclose(adjust_p(p, "holm"), [0.04, 0.09, np.nan, 0.09, 0.5])
    # BH: sorted times 4/1, 4/2, 4/3, 4/4, running minimum from the top.
    np.testing.assert_allclose(adjust_p(p, "bh"), [0.04, 0.04 * 4 / 3, np.nan, 0.04 * 4 / 3, 0.5])
    np.testing.assert_allclose(adjust_p(p, "none"), p)
    assert np.isnan(adjust_p(np.array([np.nan]), "holm")).all()
    np.testing.assert_allclose(adjust_p(np.array([0.6, 0.7]), "holm"), [1.0, 1.0])  # capped at 1


def pair_of_runs(rng, n_patients, images_per_patient, effect):
    """Reference and candidate scores on one test set where every image of a patient scores alike."""
    subject = np.repeat([f"p{i}" for i in range(n_patients)], images_per_patient)
    y = np.repeat((rng.random(n_patients) < 0.5).astype(float), images_per_patient)
    base = np.repeat(rng.normal(0, 1, n_patients), images_per_patient) + y
    frames = {}
    for k, shift in ((0, 0.0), (1, effect)):
        score = base + shift * y + np.repeat(rng.normal(0, 0.3, n_patients), images_per_patient)
        frames[k] = pd.DataFrame({"subject": subject, "index": np.arange(len(y)), "y:A": y,
                                  "p:A": 1 / (1 + np.exp(-score))})
    return [{"arch": "a", "protocol": "real+synthetic", "k": k, "seed": 0, "test_set": "t", "frame": f}
            for k, f in frames.items()]


def test_per_label_p_respects_patient_clustering():
    """Ten identical images per patient are one patient's evidence, not ten: the patient-level test
    gives a larger p than the same scores with every image counted as its own patient."""
    runs = pair_of_runs(np.random.default_rng(5), 60, 10, effect=0.2)
    clustered = supplementation_table(runs, ["A"], n_boot=400, ci=0.95, seed=1)
    unclustered_runs = [dict(r, frame=r["frame"].assign(subject=r["frame"]["index"].astype(str))) for r in runs]
    naive = supplementation_table(unclustered_runs, ["A"], n_boot=400, ci=0.95, seed=1)
    p_clustered = clustered[(clustered.k == 1) & (clustered.metric == "auroc:A")].p_value.iloc[0]
    p_naive = naive[(naive.k == 1) & (naive.metric == "auroc:A")].p_value.iloc[0]
    assert p_naive < 0.05 < p_clustered
    width = lambda tb: (tb.ci_high - tb.ci_low)[tb.metric == "auroc:A"].iloc[0]  # noqa: E731
    assert width(clustered) > 2 * width(naive)


def test_few_positives_get_no_p_value():
    runs = pair_of_runs(np.random.default_rng(4), 200, 1, effect=2.0)
    for r in runs:  # keep 6 positives
        f = r["frame"]
        pos = np.flatnonzero(f["y:A"] == 1)
        f.loc[pos[6:], "y:A"] = 0.0
    table = supplementation_table(runs, ["A"], n_boot=100, ci=0.95, seed=1, min_positives=10)
    row = table[(table.k == 1) & (table.metric == "auroc:A")].iloc[0]
    assert row.n_pos == 6 and math.isnan(row.p_value) and math.isnan(row.p_adjusted)
    assert row.p_method == ("not tested: 6 positive / 194 negative test images, fewer than "
                            "evaluation.min_positives=10")
    assert not math.isnan(row.ci_low)  # the estimate and its interval are still given
    tested = supplementation_table(runs, ["A"], n_boot=100, ci=0.95, seed=1, min_positives=5)
    assert not math.isnan(tested[(tested.k == 1) & (tested.metric == "auroc:A")].p_value.iloc[0])


def test_macro_uses_the_same_labels_in_every_resample():
    """A rare label missing from some resamples makes those resamples' macro undefined instead of
    silently averaging over fewer labels."""
    rng = np.random.default_rng(5)
    runs = pair_of_runs(rng, 150, 1, effect=0.5)
    for r in runs:
        f = r["frame"]
        f["y:Rare"] = 0.0
        f.loc[[3, 77], "y:Rare"] = 1.0  # two positive patients
        f["p:Rare"] = rng.random(len(f))
    table = supplementation_table(runs, ["A", "Rare"], n_boot=300, ci=0.95, seed=2, min_positives=0)
    macro = table[(table.k == 1) & (table.metric == "auroc_macro")].iloc[0]
    rare = table[(table.k == 1) & (table.metric == "auroc:Rare")].iloc[0]
    assert rare.n_boot_valid < 300 and macro.n_boot_valid == rare.n_boot_valid
    a = table[(table.k == 1) & (table.metric == "auroc:A")].iloc[0]
    assert macro.value == pytest.approx((a.value + rare.value) / 2)
