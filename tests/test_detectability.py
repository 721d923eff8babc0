"""Detectability: the C2ST, the Fréchet distance, image fingerprints and the shortcut summary."""

import numpy as np
import pandas as pd
import pytest
import torch

from synthetic_simplicity.data.mnist import load_embedded
from synthetic_simplicity.detectability import fingerprints as fp
from synthetic_simplicity.detectability.c2st import balanced_rows, two_sample_test
from synthetic_simplicity.detectability.frechet import frechet_distance, frechet_gaussians
from synthetic_simplicity.detectability.summary import shortcut_summary
from synthetic_simplicity.evaluation.auroc import auroc, auroc_ci
from synthetic_simplicity.evaluation.cells import mismatched_cells

CPU = torch.device("cpu")
C2ST_CFG = {"architecture": "cnn", "epochs": 3, "batch_size": 32, "optimizer": "adamw", "learning_rate": 1e-3,
            "weight_decay": 1e-4, "precision": "fp32", "bootstrap": 300, "ci": 0.95}


@pytest.fixture(scope="module")
def digits():
    """Real MNIST 2s and 4s from the embedded set, shuffled: (images, class 0/1)."""
    images, labels = load_embedded()
    keep = np.flatnonzero(np.isin(labels, [2, 4]))
    keep = np.random.default_rng(0).permutation(keep)[:800]
    return images[keep], (labels[keep] == 4).astype(np.int64)


def c2st(first, second, tmp_path, labels):
    """C2ST of ``first`` (as real) against ``second`` (as synthetic): each set's first half trains, the
    rest tests."""
    half = len(first) // 2
    split = lambda x: (x[:half], x[half:])  # noqa: E731
    (fa, fb), (sa, sb), (la, lb) = split(first), split(second), split(labels)
    train_x, test_x = np.concatenate([fa, sa]), np.concatenate([fb, sb])
    train_y, test_y = np.concatenate([la, la]), np.concatenate([lb, lb])
    train_real = np.r_[np.ones(half, bool), np.zeros(half, bool)]
    test_real = np.r_[np.ones(len(fb), bool), np.zeros(len(sb), bool)]
    return two_sample_test(train_x, train_y, train_real, test_x, test_y, test_real,
                           np.arange(len(test_x)).astype(str), ["2", "4"], C2ST_CFG, 0, CPU, "fp32",
                           tmp_path / "c2st.pt")


@pytest.mark.usefixtures("torch_one_thread")
def test_c2st_of_two_halves_of_the_same_real_set_is_chance(digits, tmp_path):
    images, labels = digits
    n = len(images) // 2
    result = c2st(images[:n], images[n:], tmp_path, labels[:n])
    pooled = result["pooled"]
    assert pooled["ci_low"] <= 0.5 <= pooled["ci_high"], pooled
    assert abs(pooled["auroc"] - 0.5) < 0.1, pooled
    assert result["n_test"] == 2 * (n - n // 2)


@pytest.mark.usefixtures("torch_one_thread")
def test_c2st_of_real_against_noise_is_one(digits, tmp_path):
    images, labels = digits
    noise = np.random.default_rng(1).integers(0, 256, size=images.shape, dtype=np.uint8)
    result = c2st(images, noise, tmp_path, labels)
    assert result["pooled"]["auroc"] > 0.99 and result["pooled"]["ci_low"] > 0.95, result["pooled"]
    assert {"2", "4"} <= set(result) and result["2"]["n"] + result["4"]["n"] == result["pooled"]["n"]


def test_balanced_rows_match_real_and_synthetic_per_class():
    label = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    real = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)
    rows = balanced_rows(label, real, seed=3)
    for c in (0, 1):
        picked = rows[label[rows] == c]
        assert real[picked].sum() == (~real[picked]).sum() > 0
    assert len(rows) == 6 and np.array_equal(rows, np.sort(rows))


def test_frechet_is_zero_for_identical_sets_and_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Two Gaussians with diagonal covariances: |mu1 - mu2|² + sum (sigma1 - sigma2)².
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 1.0, 0.5])
    closed = float(np.sum((mu1 - mu2) ** 2) + np.sum((sd1 - sd2) ** 2))
    assert frechet_gaussians(mu1, np.diag(sd1 ** 2), mu2, np.diag(sd2 ** 2)) == pytest.approx(closed)
    # A full covariance: rotating both Gaussians the same way leaves the distance unchanged.
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = frechet_gaussians(q @ mu1, q @ np.diag(sd1 ** 2) @ q.T, q @ mu2, q @ np.diag(sd2 ** 2) @ q.T)
    assert rotated == pytest.approx(closed)
    # And from samples of those Gaussians.
    x = mu1 + sd1 * rng.normal(size=(20000, 3))
    y = mu2 + sd2 * rng.normal(size=(20000, 3))
    assert frechet_distance(x, y) == pytest.approx(closed, rel=0.05)


def test_white_noise_has_a_flat_power_spectrum():
    noise = np.random.default_rng(0).normal(0, 20, size=(400, 32, 32))
    radius, power = fp.radial_power_spectrum(noise)
    assert radius[0] > 0 and radius[-1] == pytest.approx(1.0)
    assert np.allclose(power, 400, rtol=0.1), power  # variance 20² at every frequency
    smooth = np.cumsum(np.cumsum(noise, axis=1), axis=2)  # integrated noise: energy at low frequencies
    _, steep = fp.radial_power_spectrum(smooth)
    assert steep[0] > 100 * steep[-1]
    assert fp.high_frequency_share(noise, 0.5) > 0.5 > fp.high_frequency_share(smooth, 0.5)


def test_histogram_background_and_summary():
    real = np.zeros((10, 8, 8), np.uint8)
    real[:, 2:6, 2:6] = 200  # a bright digit on a black border
    synthetic = real.copy()
    synthetic[:, :2, :] = 30  # a grey band in the border gives the pool away
    mask = fp.background_mask(real, 10)
    assert mask.sum() == 64 - 16
    assert fp.intensity_histogram(real).sum() == pytest.approx(1.0)
    r, s = fp.summary(real, mask, 0.5), fp.summary(synthetic, mask, 0.5)
    assert r["background_level"] == 0 and s["background_level"] == pytest.approx(30 * 16 / 48)
    assert s["mean_intensity"] > r["mean_intensity"]


def test_auroc_ci_brackets_the_point_and_follows_subjects():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(100), np.ones(100)]
    score = y + rng.normal(0, 1, 200)
    value, lo, hi = auroc_ci(y, score, np.arange(200).astype(str), 500, 0.95, 0)
    assert value == pytest.approx(auroc(y, score)) and lo < value < hi
    # Ten subjects of one class each, each with its own score offset: the rows are far fewer independent
    # draws, and only a bootstrap over subjects sees it.
    subject = np.arange(200) // 20
    clustered = y + rng.normal(0, 2, 10)[subject] + rng.normal(0, 0.5, 200)
    _, ilo, ihi = auroc_ci(y, clustered, np.arange(200).astype(str), 500, 0.95, 0)
    _, clo, chi = auroc_ci(y, clustered, subject.astype(str), 500, 0.95, 0)
    assert chi - clo > 1.5 * (ihi - ilo)


def test_mismatched_cells_follow_alpha():
    """Each class's minority source in training: at 0 and 1 the source it never had; at 0.5 every cell."""
    assert mismatched_cells(["2", "4"], 0) == ["2·real", "4·synthetic"]
    assert mismatched_cells(["2", "4"], 0.25) == ["2·real", "4·synthetic"]
    assert mismatched_cells(["2", "4"], 1) == ["2·synthetic", "4·real"]
    assert mismatched_cells(["2", "4"], 0.75) == ["2·synthetic", "4·real"]
    assert sorted(mismatched_cells(["2", "4"], 0.5)) == ["2·real", "2·synthetic", "4·real", "4·synthetic"]
    with pytest.raises(ValueError):
        mismatched_cells(["2", "4"], 1.5)


def test_shortcut_summary_reads_each_seed_then_intervals():
    def record(alpha, seed, cells, wg):
        names = ["2·real", "2·synthetic", "4·real", "4·synthetic"]
        return {"dataset": "mnist", "variant": "v", "method": "erm", "architecture": "cnn", "alpha": alpha, "seed": seed,
                "acc_wg": wg} | {f"acc_cell:{n}": c for n, c in zip(names, cells)}

    records = []
    for seed, off in ((0, 0.0), (1, 0.1)):
        records += [record(0.0, seed, [0.1 + off, 1, 1, 0.1 + off], 0.1),  # mismatched: 2·real, 4·synthetic
                    record(1.0, seed, [1, 0.3 + off, 0.3 + off, 1], 0.3),
                    record(0.5, seed, [0.9, 0.8 + off, 0.9, 0.9], 0.8 + off)]
    detect = pd.DataFrame([
        {"variant": "v", "group": "pooled", "metric": "c2st_auroc", "value": 0.9, "ci_low": 0.8, "ci_high": 0.95},
        {"variant": "v", "group": "pooled", "metric": "task_auroc", "value": 0.99, "ci_low": 0.98, "ci_high": 1},
        {"variant": "v", "group": "2", "metric": "frechet", "value": 2.0},
        {"variant": "v", "group": "4", "metric": "frechet", "value": 4.0},
        {"variant": "v", "group": "2", "metric": "frechet_real_floor", "value": 0.1},
        {"variant": "v", "group": "4", "metric": "frechet_real_floor", "value": 0.3}])
    row = shortcut_summary(records, detect, ["2", "4"], 0.95).iloc[0]
    assert row["mismatched_acc"] == pytest.approx(0.25)  # seeds 0.2 and 0.3
    assert row["mismatched_ci_low"] < 0.25 < row["mismatched_ci_high"]
    assert row["worst_cell_alpha0.5"] == pytest.approx(0.85)
    assert row["c2st_minus_task"] == pytest.approx(-0.09)
    assert row["frechet"] == pytest.approx(3.0) and row["frechet_real_floor"] == pytest.approx(0.2)
    assert row["n_seeds"] == 2


def test_result_tables_keep_variant_names_that_look_like_numbers(tmp_path):
    from synthetic_simplicity.evaluation.cells import read_table

    path = tmp_path / "t.csv"
    pd.DataFrame({"variant": ["50", "NA", "None"], "group": ["2", "pooled", "4"],
                  "value": [0.5, None, 1.0]}).to_csv(path, index=False)
    t = read_table(path)
    assert list(t["variant"]) == ["50", "NA", "None"] and list(t["group"]) == ["2", "pooled", "4"]
    assert np.isnan(t["value"][1])
