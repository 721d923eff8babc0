import json
import math

import numpy as np
import pandas as pd
import pytest

from synthetic_simplicity.core.atomic import write_json
from synthetic_simplicity.evaluation.cells import CI_METHOD, aggregate, ci_method, run_metrics

CLASSES = ["2", "7"]
T_975_DF2 = 4.302652729911275  # t quantile (0.975, df=2)


def frame(cells):
    """cells: {(label, source): (n, n_correct)} -> a predictions frame following the contract."""
    rows = []
    for (label, source), (n, ok) in cells.items():
        for i in range(n):
            pred = label if i < ok else 1 - label
            p1 = 0.9 if pred == 1 else 0.1
            rows.append({"pool": ["real", "synthetic"][source], "index": i, "label": label,
                         "source": source, "pred": pred, "prob_0": 1 - p1, "prob_1": p1})
    return pd.DataFrame(rows)


def test_run_metrics_hand_computed():
    m = run_metrics(frame({(0, 0): (4, 3), (0, 1): (2, 2), (1, 0): (5, 2), (1, 1): (3, 1)}), CLASSES)
    assert m["acc_avg"] == pytest.approx(8 / 14)
    assert m["acc_cell:2·real"] == pytest.approx(0.75)
    assert m["acc_cell:2·synthetic"] == pytest.approx(1.0)
    assert m["acc_cell:7·real"] == pytest.approx(0.4)
    assert m["acc_cell:7·synthetic"] == pytest.approx(1 / 3)
    assert [m[f"count_cell:{c}"] for c in ("2·real", "2·synthetic", "7·real", "7·synthetic")] == [4, 2, 5, 3]
    assert m["acc_wg"] == pytest.approx(1 / 3)
    assert m["acc_balanced"] == pytest.approx((5 / 6 + 3 / 8) / 2)
    assert "\u00b7" in "acc_cell:2·real"
    json.dumps(m, allow_nan=False)  # JSON-clean: plain floats/ints/None


def test_empty_cell_is_null_and_skipped_by_worst_group():
    m = run_metrics(frame({(0, 0): (4, 1), (1, 0): (2, 2), (1, 1): (2, 1)}), CLASSES)
    assert m["acc_cell:2·synthetic"] is None and m["count_cell:2·synthetic"] == 0
    assert m["acc_wg"] == pytest.approx(0.25)
    assert m["acc_balanced"] == pytest.approx((0.25 + 0.75) / 2)


def test_missing_columns_named():
    with pytest.raises(ValueError, match=r"\['source', 'pred'\]"):
        run_metrics(pd.DataFrame({"label": [0]}), CLASSES)


def test_bad_codes_rejected():
    with pytest.raises(ValueError, match="labels"):
        run_metrics(pd.DataFrame({"label": [2], "source": [0], "pred": [0]}), CLASSES)
    with pytest.raises(ValueError, match="source"):
        run_metrics(pd.DataFrame({"label": [0], "source": [2], "pred": [0]}), CLASSES)


def rec(seed, acc, alpha=0.5, **extra):
    return {"dataset": "mnist", "variant": "ddpm50", "method": "erm", "architecture": "cnn", "alpha": alpha, "seed": seed,
            "acc_avg": acc, "acc_cell:2·real": acc / 2, "count_cell:2·real": 10, **extra}


def test_aggregate_t_interval_three_seeds():
    t = aggregate([rec(0, 0.5), rec(1, 0.6), rec(2, 0.7)])
    assert list(t.columns) == ["dataset", "variant", "method", "architecture", "alpha", "metric", "cell",
                               "n_seeds", "mean", "sd", "ci_low", "ci_high"]
    assert set(t["metric"]) == {"acc_avg", "acc_cell:2·real"}  # count_* and identity keys excluded
    row = t[t["metric"] == "acc_avg"].iloc[0]
    half = T_975_DF2 * 0.1 / math.sqrt(3)
    assert row["n_seeds"] == 3 and row["cell"] == ""
    assert row["mean"] == pytest.approx(0.6) and row["sd"] == pytest.approx(0.1)
    assert row["ci_low"] == pytest.approx(0.6 - half) and row["ci_high"] == pytest.approx(0.6 + half)
    cell = t[t["metric"] == "acc_cell:2·real"].iloc[0]
    assert cell["cell"] == "2·real" and cell["mean"] == pytest.approx(0.3)


def test_aggregate_single_seed_nan_ci_and_sorted():
    t = aggregate([rec(0, 0.8, alpha=1.0), rec(0, 0.9, alpha=0.0), rec(1, 0.7, alpha=0.0)])
    assert list(t["alpha"]) == [0.0, 0.0, 1.0, 1.0]
    assert list(t["metric"]) == ["acc_avg", "acc_cell:2·real"] * 2
    one = t[(t["alpha"] == 1.0) & (t["metric"] == "acc_avg")].iloc[0]
    assert one["n_seeds"] == 1 and one["mean"] == pytest.approx(0.8)
    assert np.isnan(one["ci_low"]) and np.isnan(one["ci_high"])
    # order of records does not change the table
    t2 = aggregate([rec(1, 0.7, alpha=0.0), rec(0, 0.8, alpha=1.0), rec(0, 0.9, alpha=0.0)])
    pd.testing.assert_frame_equal(t, t2)


def test_aggregate_null_values_and_duplicates():
    t = aggregate([rec(0, 0.5, **{"acc_cell:7·synthetic": None}),
                   rec(1, 0.7, **{"acc_cell:7·synthetic": 0.4})])
    row = t[t["metric"] == "acc_cell:7·synthetic"].iloc[0]
    assert row["n_seeds"] == 1 and row["mean"] == pytest.approx(0.4) and np.isnan(row["ci_low"])
    with pytest.raises(ValueError, match="duplicate"):
        aggregate([rec(0, 0.5), rec(0, 0.6)])


def test_ci_method_string():
    assert CI_METHOD == "95% Student-t interval over seeds, clipped to [0, 1]"
    assert ci_method(0.9) == "90% Student-t interval over seeds, clipped to [0, 1]"


def test_write_json_sorted_atomic(tmp_path):
    p = tmp_path / "sub" / "m.json"
    write_json(p, {"b": np.float64(0.5), "a": None, "acc_cell:2·real": np.int64(3)})
    text = p.read_text(encoding="utf-8")
    assert json.loads(text) == {"a": None, "acc_cell:2·real": 3, "b": 0.5}
    assert text.index('"a"') < text.index('"acc_cell') < text.index('"b"') and "\n  " in text
    assert [f.name for f in p.parent.iterdir()] == ["m.json"]  # no temp file left
    with pytest.raises(ValueError):
        write_json(p, {"x": float("nan")})
    assert json.loads(p.read_text(encoding="utf-8"))["b"] == 0.5  # failed write left old file intact


def test_interval_is_clipped_to_the_accuracy_range():
    records = [{"dataset": "d", "variant": "v", "method": "erm", "architecture": "a", "alpha": 1.0, "seed": s, "acc_avg": v}
               for s, v in enumerate([0.0, 0.0, 0.06])]
    row = aggregate(records).iloc[0]
    assert row["ci_low"] == 0.0  # the unclipped t-interval would reach below zero
    assert 0.06 < row["ci_high"] < 1.0


def test_source_and_mismatched_accuracies():
    """acc_real/acc_synthetic per source; acc_mismatched: the minority-source cells of the run's alpha."""
    pred = pd.DataFrame({"label": [0, 0, 1, 1, 0, 1], "source": [0, 1, 0, 1, 0, 1], "pred": [0, 1, 1, 1, 1, 1]})
    m = run_metrics(pred, ["a", "b"], alpha=0.0)
    assert m["acc_real"] == pytest.approx(2 / 3) and m["acc_synthetic"] == pytest.approx(2 / 3)
    assert m["acc_mismatched"] == pytest.approx((0.5 + 1.0) / 2)  # a·real and b·synthetic
    assert run_metrics(pred, ["a", "b"], alpha=1.0)["acc_mismatched"] == pytest.approx((0.0 + 1.0) / 2)
    assert "acc_mismatched" not in run_metrics(pred, ["a", "b"])
