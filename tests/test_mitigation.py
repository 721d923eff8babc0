"""The mitigation arms on a small problem with a planted, perfectly predictive source feature.

Every image shows a bar whose orientation gives the class for 70 % of the training images (a weaker
signal than a feature that is always right); synthetic images also carry a planted source feature.
At alpha 0 (and, for the feature that is 75 % predictive, at 0.25) ERM follows the planted feature and
fails the mismatched cells; the arms that target that feature must recover them. Test images always
show the true bar, so an arm that learns the task scores well on every cell.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from synthetic_simplicity.assembly.alpha import alpha_counts
from synthetic_simplicity.classifier.training import predict, train_classifier
from synthetic_simplicity.mitigation.dfr import retrain_last_layer
from synthetic_simplicity.mitigation.harmonise import fit_harmonisation, harmonise
from synthetic_simplicity.mitigation.objectives import GroupDro, build_objective, training_groups
from synthetic_simplicity.mitigation.two_stage import train_two_stage, undefined

SIDE = 12
CPU = torch.device("cpu")
CFG = {"epochs": 5, "batch_size": 32, "optimizer": "adamw", "learning_rate": 0.003, "weight_decay": 0.0,
       "precision": "fp32"}
MITIGATION = {"reweight": {"mode": "loss"}, "groupdro": {"step_size": 0.1},
              "adversarial": {"weight": 1.0, "hidden": 32, "ramp": True},
              "augment": {"p": 1.0, "noise_std": 0.2, "blur_sigma": 1.5, "contrast": 0.3, "levels": 16},
              "two_stage": {"synthetic_epochs": None, "real_epochs": None, "finetune_lr_factor": 0.1}}
CHECKER = (np.indices((SIDE, SIDE)).sum(0) % 2) * 2 - 1


def draw(label, source, planted: str, rng, reliability: float) -> np.ndarray:
    """Bars (horizontal: class 0, vertical: class 1, the other one for 1 - reliability of images) on
    noise; synthetic images carry the planted feature: a bright corner, a brighter image, or a faint
    checkerboard at the highest frequency."""
    n = len(label)
    x = rng.normal(40, 25, (n, SIDE, SIDE))
    pos = rng.integers(2, SIDE - 2, n)
    shown = np.where(rng.random(n) < reliability, label, 1 - label)
    for i in range(n):
        if shown[i] == 0:
            x[i, pos[i], 1:-1] += 90
        else:
            x[i, 1:-1, pos[i]] += 90
    synthetic = source == 1
    if planted == "corner":
        x[synthetic, :3, :3] = 255
    elif planted == "brightness":
        x[synthetic] += 50
    elif planted == "checker":
        x[synthetic] += 12 * CHECKER
    return np.clip(x, 0, 255).round().astype(np.uint8)


def training_set(alpha: float, planted: str, seed: int = 0, n: int = 1000):
    rng = np.random.default_rng(seed)
    counts = alpha_counts(alpha, n)
    label = np.concatenate([np.full(k, c) for (c, _), k in counts.items()])
    source = np.concatenate([np.full(k, int(s == "synthetic")) for (_, s), k in counts.items()])
    return draw(label, source, planted, rng, 0.7), label, source


def cells(planted: str, seed: int, n: int = 100):
    """n images per class x source cell, with the true bar."""
    label, source = np.repeat([0, 0, 1, 1], n), np.tile(np.repeat([0, 1], n), 2)
    return draw(label, source, planted, np.random.default_rng(seed), 1.0), label, source


def train(method: str, x, y, s, tmp_path, seed: int = 0, cfg: dict = CFG):
    cfg = cfg if method == "erm" else cfg | {"method": method}
    return train_classifier(x, y, 2, "cnn", cfg, seed, CPU, "fp32", tmp_path / f"{method}.pt", progress=False,
                            make_objective=lambda m: build_objective(method, MITIGATION.get(method), y, s, m,
                                                                     cfg["epochs"], "mnist.classifier.methods"))


def mismatched(model, alpha: float, test) -> float:
    """Mean accuracy of the cells whose source is the class's minority source in training."""
    x, y, s = test
    correct = predict(model, x, 256, CPU, "fp32").argmax(1) == y
    cells_ = [(0, 0), (1, 1)] if alpha < 0.5 else [(0, 1), (1, 0)]
    return float(np.mean([correct[(y == c) & (s == src)].mean() for c, src in cells_]))


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def corner_erm(tmp_path_factory):
    """ERM at alpha 0 and 0.25 on the corner problem: (model, training set) per alpha."""
    out = {}
    for alpha in (0.0, 0.25):
        x, y, s = training_set(alpha, "corner")
        out[alpha] = (train("erm", x, y, s, tmp_path_factory.mktemp(f"erm{alpha}"))[0], (x, y, s))
    return out


def test_erm_learns_the_planted_feature(corner_erm):
    test = cells("corner", 100)
    assert mismatched(corner_erm[0.0][0], 0.0, test) < 0.1
    assert mismatched(corner_erm[0.25][0], 0.25, test) < 0.6


def test_reweighting_at_alpha_quarter_recovers_the_mismatched_cells(corner_erm, tmp_path):
    x, y, s = corner_erm[0.25][1]
    model, _ = train("reweight", x, y, s, tmp_path)
    test = cells("corner", 100)
    assert mismatched(model, 0.25, test) > mismatched(corner_erm[0.25][0], 0.25, test) + 0.25


@pytest.mark.parametrize("alpha", [0.0, 0.25])
def test_dfr_on_a_balanced_held_out_set_recovers_the_mismatched_cells(corner_erm, alpha):
    """Only the last layer is refitted, on 20 images per cell: ERM's features still hold the bar."""
    erm = corner_erm[alpha][0]
    test = cells("corner", 100)
    before = mismatched(erm, alpha, test)
    model = copy.deepcopy(erm)
    bx, by, _ = cells("corner", 200, n=20)
    info = retrain_last_layer(model, bx, by, {"steps": 200, "weight_decay": 0.01}, 256, CPU, "fp32")
    assert info["images"] == 80
    # The standardisation is folded into the head: the model's own logits give the fit's loss.
    with torch.no_grad():
        model.eval()
        logits = model(torch.as_tensor(bx[:, None], dtype=torch.float32) / 127.5 - 1)
        loss = torch.nn.functional.cross_entropy(logits.double(), torch.as_tensor(by))
    assert float(loss) == pytest.approx(info["loss"], abs=1e-4)
    assert mismatched(model, alpha, test) > before + 0.3
    assert mismatched(erm, alpha, test) == before  # the ERM model itself is untouched


def test_harmonisation_removes_a_brightness_fingerprint(tmp_path):
    """Fitted on both pools' training images (both classes), applied to every synthetic image."""
    x, y, s = training_set(0.0, "brightness")
    test = cells("brightness", 100)
    erm, _ = train("erm", x, y, s, tmp_path)
    pools = cells("brightness", 300, n=250)  # the pools' training splits hold both classes
    fit = fit_harmonisation(pools[0][pools[2] == 0], pools[0][pools[2] == 1], ["spectrum", "histogram"])
    hx, tx = x.copy(), test[0].copy()
    hx[s == 1], tx[test[2] == 1] = harmonise(x[s == 1], fit), harmonise(test[0][test[2] == 1], fit)
    assert abs(float(hx[s == 1].mean()) - float(pools[0][pools[2] == 0].mean())) < 3
    model, _ = train("harmonise", hx, y, s, tmp_path)
    harmonised_test = (tx, test[1], test[2])
    assert mismatched(model, 0.0, harmonised_test) > mismatched(erm, 0.0, test) + 0.3


def test_augmentation_destroys_a_high_frequency_fingerprint(tmp_path):
    x, y, s = training_set(0.0, "checker")
    test = cells("checker", 100)
    erm, _ = train("erm", x, y, s, tmp_path)
    model, _ = train("augment", x, y, s, tmp_path)
    assert mismatched(model, 0.0, test) > mismatched(erm, 0.0, test) + 0.3


def test_groupdro_weights_move_towards_the_worst_group():
    """Group 2 has the highest loss in every step: its weight grows every step and ends the largest."""
    groups = np.repeat([0, 1, 2, 3], 8)
    dro = GroupDro(groups, step_size=0.5)
    targets = torch.zeros(32, dtype=torch.long)
    logits = torch.zeros(32, 2)
    logits[groups == 2, 1] = 3.0  # confidently wrong on group 2 only
    weights = []
    for _ in range(5):
        dro.loss(logits, targets, np.arange(32))
        weights.append(float(dro.q[2]))
    assert all(b > a for a, b in zip(weights, weights[1:]))
    assert int(dro.q.argmax()) == 2 and float(dro.q.sum()) == pytest.approx(1.0)


def test_groupdro_training_logs_its_group_weights(corner_erm, tmp_path):
    x, y, s = corner_erm[0.25][1]
    _, history = train("groupdro", x, y, s, tmp_path)
    weights = history["group_weights"]
    assert len(weights) == CFG["epochs"] and set(weights[-1]) == {0, 1, 2, 3}
    assert sum(weights[-1].values()) == pytest.approx(1.0, abs=1e-4)
    assert max(weights[-1].values()) - min(weights[-1].values()) > 0.01  # moved away from uniform


def test_gradient_reversal_drives_the_source_head_to_chance(tmp_path):
    """At alpha 0.5 the source is independent of the class; the source head first learns the planted
    corner (reversal weight ramps from 0), then the features stop giving it away to the head."""
    x, y, s = training_set(0.5, "corner")
    _, history = train("adversarial", x, y, s, tmp_path)
    accuracy = history["adversary_source_accuracy"]
    assert accuracy[0] > 0.75
    assert accuracy[-1] < 0.6


def test_training_groups_are_class_by_source():
    assert training_groups(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])).tolist() == [0, 1, 2, 3]


def test_two_stage_is_undefined_when_a_stage_holds_one_class():
    for alpha in (0.0, 1.0):
        _, y, s = training_set(alpha, "corner", n=10)
        assert "1 class(es) only" in undefined(y, s)
    _, y, s = training_set(0.25, "corner", n=10)
    assert undefined(y, s) is None


def test_two_stage_trains_on_synthetic_then_real(tmp_path):
    x, y, s = training_set(0.25, "corner", n=100)
    val = cells("corner", 5, n=5)
    model, history = train_two_stage(x, y, s, val, 2, "cnn", CFG | {"epochs": 2}, MITIGATION["two_stage"], 0,
                                     CPU, "fp32", str(tmp_path / "checkpoint.pt"), "mnist.classifier",
                                     progress=False)
    assert list(history) == ["synthetic", "real"]
    assert all(h["epochs_run"] == 2 for h in history.values())
    assert (tmp_path / "checkpoint_synthetic.pt").is_file() and (tmp_path / "checkpoint_real.pt").is_file()
    # The real stage starts from the synthetic stage's weights: the same stage from scratch (same seed,
    # settings and images) ends elsewhere.
    real = s == 0
    scratch_cfg = CFG | {"epochs": 2, "learning_rate": CFG["learning_rate"] * 0.1, "stage": "real"}
    scratch, history_scratch = train_classifier(x[real], y[real], 2, "cnn", scratch_cfg, 0, CPU, "fp32",
                                                tmp_path / "scratch.pt", progress=False)
    assert history["real"]["train_loss"] != history_scratch["train_loss"]
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), scratch.state_dict().values()))
    # A second call finds both stages finished in their checkpoints and returns the same model.
    again, _ = train_two_stage(x, y, s, val, 2, "cnn", CFG | {"epochs": 2}, MITIGATION["two_stage"], 0, CPU,
                               "fp32", str(tmp_path / "checkpoint.pt"), "mnist.classifier", progress=False)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", ["groupdro", "adversarial", "augment", "reweight"])
def test_a_killed_arm_resumes_exactly(method, tmp_path):
    """Epoch 2 of 3 from its checkpoint (weights, optimiser, the adversary head, GroupDRO's q) gives
    the same model as 3 epochs in one go."""
    x, y, s = training_set(0.25, "corner", n=60)
    cfg = CFG | {"epochs": 3, "method": method}

    def run(epochs, path):
        return train_classifier(x, y, 2, "cnn", cfg | {"epochs": epochs}, 0, CPU, "fp32", path, progress=False,
                                make_objective=lambda m: build_objective(method, MITIGATION[method], y, s, m, 3, "m"))

    whole, h_whole = run(3, tmp_path / "whole.pt")
    run(2, tmp_path / "killed.pt")
    resumed, h_resumed = run(3, tmp_path / "killed.pt")
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert h_whole == h_resumed


def test_augmentation_keeps_shape_range_and_is_seeded():
    from synthetic_simplicity.mitigation.augment import fingerprint_augment

    x = torch.rand(16, 1, SIDE, SIDE) * 2 - 1
    cfg = MITIGATION["augment"]
    a = fingerprint_augment(x, torch.Generator().manual_seed(1), cfg)
    b = fingerprint_augment(x, torch.Generator().manual_seed(1), cfg)
    assert a.shape == x.shape and torch.equal(a, b) and a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, x)
    checker = torch.as_tensor(CHECKER, dtype=torch.float32).expand(4, 1, SIDE, SIDE) * 0.1
    blurred = fingerprint_augment(checker, torch.Generator().manual_seed(0),
                                  {"p": 1.0, "noise_std": 0, "blur_sigma": 1.5, "contrast": 0, "levels": None})
    assert blurred.abs().max() < 0.01  # the highest frequency is gone


def test_harmonisation_matches_histogram_and_keeps_the_image_contract():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 120, (50, 2, 8, 8)).astype(np.uint8)  # RGB-like (N, C, H, W)
    synthetic = (rng.integers(0, 120, (40, 2, 8, 8)) + 80).astype(np.uint8)
    fit = fit_harmonisation(real, synthetic, ["histogram"])
    out = harmonise(synthetic, fit)
    assert out.shape == synthetic.shape and out.dtype == np.uint8
    assert abs(float(out.mean()) - float(real.mean())) < 2
    assert harmonise(synthetic[:0], fit).shape == (0, 2, 8, 8)
    with pytest.raises(Exception, match="mitigation.harmonise.match"):
        fit_harmonisation(real, synthetic, ["colour"])


def test_harmonise_pool_is_fitted_on_the_training_splits_only(tmp_path):
    """Changing the synthetic test images does not change how the training images are harmonised."""
    from synthetic_simplicity.core.imageset import SPLITS, ImageSet, read_imageset, write_imageset
    from synthetic_simplicity.mitigation.jobs import harmonise_pool

    rng = np.random.default_rng(0)

    def pool(offset, source, test_offset=0):
        split = np.repeat([SPLITS["train"], SPLITS["test"]], [30, 10]).astype(np.uint8)
        images = rng.integers(0, 100, (40, 8, 8)) + offset
        images[split == SPLITS["test"]] += test_offset
        return ImageSet(images=images.astype(np.uint8), label=np.tile([0, 1], 20).astype(np.int64),
                        source=np.full(40, source, np.uint8), split=split, dataset="toy", class_names=["a", "b"])

    write_imageset(tmp_path / "real.h5", pool(0, 0))
    synthetic = pool(60, 1)
    write_imageset(tmp_path / "s1.h5", synthetic)
    synthetic.images[synthetic.split == SPLITS["test"]] = 255
    write_imageset(tmp_path / "s2.h5", synthetic)
    for name in ("s1", "s2"):
        harmonise_pool(tmp_path / "real.h5", tmp_path / f"{name}.h5", tmp_path / f"{name}_h.h5", ["histogram"])
    a, b = read_imageset(tmp_path / "s1_h.h5"), read_imageset(tmp_path / "s2_h.h5")
    train = a.split == SPLITS["train"]
    assert np.array_equal(a.images[train], b.images[train])
    assert not np.array_equal(a.images[~train], b.images[~train])  # the test pool is harmonised too


def records(method, alpha, seed, mismatched, real):
    return {"dataset": "mnist", "variant": "v", "method": method, "architecture": "cnn", "alpha": alpha,
            "seed": seed, "acc_wg": mismatched, "acc_mismatched": mismatched, "acc_real": real}


def test_mitigation_summary_pairs_each_arm_with_erm_by_seed():
    from synthetic_simplicity.mitigation.summary import mitigation_summary

    runs = [records("erm", 0.0, s, m, 0.9) for s, m in enumerate([0.1, 0.2, 0.3])]
    runs += [records("dfr", 0.0, s, m, 0.8) for s, m in enumerate([0.5, 0.6, 0.7])]
    runs += [records("two_stage", 0.0, s, None, None) for s in range(3)]
    runs += [records("adversarial", 0.0, s, m, 0.5) for s, m in enumerate([0.0, 0.05, 0.2])]
    table = mitigation_summary(runs, 0.95, ["erm", "dfr", "two_stage", "adversarial"])
    assert table["method"].tolist() == ["erm", "dfr", "two_stage", "adversarial"]
    dfr = table[table["method"] == "dfr"].iloc[0]
    assert dfr["mismatched"] == pytest.approx(0.6) and dfr["delta_mismatched"] == pytest.approx(0.4)
    assert dfr["delta_real_acc"] == pytest.approx(-0.1)
    assert dfr["delta_mismatched_ci_low"] == pytest.approx(0.4) == dfr["delta_mismatched_ci_high"]  # paired: no spread
    worse = table[table["method"] == "adversarial"].iloc[0]  # deltas -0.1, -0.15, -0.1: below 0, not clipped
    assert worse["delta_mismatched"] == pytest.approx(-0.35 / 3)
    assert worse["delta_mismatched_ci_low"] < worse["delta_mismatched"] < worse["delta_mismatched_ci_high"] < 0
    skipped = table[table["method"] == "two_stage"].iloc[0]
    assert skipped["n_seeds"] == 0 and np.isnan(skipped["mismatched"]) and "skipped" in skipped["note"]


def test_mitigation_figure_has_a_column_per_variant_and_a_line_per_method(tmp_path):
    from synthetic_simplicity.evaluation.cells import aggregate
    from synthetic_simplicity.figures.mitigation import ROWS, plot_mitigation

    runs = []
    for variant in ("ddpm50", "ddim20"):
        for method in ("erm", "reweight"):
            for alpha in (0.0, 0.5):
                for seed in range(2):
                    r = records(method, alpha, seed, 0.3 + 0.1 * seed, 0.9)
                    runs.append(r | {"variant": variant})
    table = aggregate(runs)
    titles = {(v, "cnn"): f"{v} · C2ST" for v in ("ddpm50", "ddim20")}  # the config's order
    fig = plot_mitigation(table, tmp_path / "m.pdf", "t", "ci", ["erm", "reweight"], panel_titles=titles)
    assert (tmp_path / "m.pdf").read_bytes()[:4] == b"%PDF"
    axes = np.array(fig.axes).reshape(len(ROWS), 2)
    assert [ax.get_title().split(" · ")[0] for ax in axes[0]] == ["ddpm50", "ddim20"]
    assert [line.get_label() for line in axes[1, 0].get_lines()] == ["erm", "reweight"]


def test_study_a_figures_read_the_erm_runs_only():
    import pandas as pd

    from synthetic_simplicity.figures.jobs import _erm

    table = pd.DataFrame({"method": ["erm", "dfr", "erm"], "mean": [1, 2, 3]})
    assert _erm(table)["mean"].tolist() == [1, 3]


def test_dfr_is_not_an_objective():
    with pytest.raises(Exception, match="train_dfr"):
        build_objective("dfr", None, np.zeros(2), np.zeros(2), None, 1, "mnist.classifier.methods")
