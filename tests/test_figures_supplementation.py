import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthetic_simplicity.figures.supplementation import K_LABEL, plot_label_heatmap, plot_supplementation

CI = "95% percentile bootstrap over test subjects (2000 resamples)"
P = "paired bootstrap vs real only; holm-adjusted over the labels tested in this group"
POINT = "mean of per-run AUROCs over 3 seed(s)"
FEW = "not tested: 3 positive / 4997 negative test images, fewer than evaluation.min_positives=10"
LABELS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
          "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
          "Pneumothorax", "Support Devices"]
KS = (0, 1, 2, 5, 10)


def table(labels=LABELS, archs=("densenet121",), test_sets=("internal", "mimic"), seed=0):
    """A long results table as the pipeline writes it (and as read back from CSV)."""
    rng = np.random.default_rng(seed)
    recs = []
    for arch in archs:
        for ts in test_sets:
            n_img, n_sub = (2000, 900) if ts == "internal" else (5000, 3100)
            conds = [("real+synthetic", k) for k in KS] + [("synthetic only", k) for k in KS[1:]] \
                + [("external mixing", k) for k in KS[1:]]
            for protocol, k in conds:
                ref = protocol == "real+synthetic" and k == 0
                shift = {"real+synthetic": 0.01, "synthetic only": -0.03, "external mixing": 0.005}[protocol]
                vals = []
                for i, lab in enumerate(labels):
                    v = 0.8 + 0.01 * i + (0 if ref else shift * np.log1p(k)) + rng.normal(0, 0.003)
                    if ts == "mimic" and lab == "Pleural Other":  # no positives: AUROC undefined everywhere
                        v = np.nan
                    if ts == "internal" and lab == "Fracture" and protocol == "synthetic only" and k == 10:
                        v = np.nan
                    vals.append(v)
                    p = np.nan if ref else (0.001 if protocol == "real+synthetic" and k >= 5 else 0.3)
                    if protocol == "real+synthetic" and k == 2:
                        p = 0.005  # significant alone, not after adjustment (x3 below)
                    if ts == "mimic" and lab == "Fracture" and protocol == "real+synthetic" and k == 1:
                        p = np.nan  # too few positives to be tested
                    recs.append((arch, ts, protocol, k, f"auroc:{lab}", v, v - 0.02, v + 0.02, p,
                                 min(1.0, 3 * p)))
                m = float(np.nanmean(vals))
                p = np.nan if ref else (0.004 if protocol == "real+synthetic" and k >= 2 else 0.2)
                recs.append((arch, ts, protocol, k, "auroc_macro", m, m - 0.01, m + 0.01, p, p))
    t = pd.DataFrame(recs, columns=["arch", "test_set", "protocol", "k", "metric", "value", "ci_low", "ci_high",
                                    "p_value", "p_adjusted"])
    t["n_seeds"], t["n_images"], t["n_subjects"] = 3, 0, 0
    t.loc[t["test_set"] == "internal", ["n_images", "n_subjects"]] = (2000, 900)
    t.loc[t["test_set"] != "internal", ["n_images", "n_subjects"]] = (5000, 3100)
    t["n_pos"], t["n_neg"], t["n_boot_valid"] = 50, 4950, 2000
    t["point_method"], t["ci_method"] = POINT, CI
    t["p_method"] = np.where(t["p_value"].isna(), "", P)
    few = (t["test_set"] == "mimic") & (t["metric"] == "auroc:Fracture") & (t["k"] == 1) \
        & (t["protocol"] == "real+synthetic")
    t.loc[few, "p_method"] = FEW
    return t


def roundtrip(t, tmp_path):
    t.to_csv(tmp_path / "t.csv", index=False)
    return pd.read_csv(tmp_path / "t.csv")


def caption(fig):
    return " ".join(t.get_text() for t in fig.texts).replace("\n", " ")


def check_file(path, min_bytes=10_000):
    data = path.read_bytes()
    assert len(data) > min_bytes
    if path.suffix == ".pdf":
        assert data[:5] == b"%PDF-" and b"%%EOF" in data[-32:]
    else:
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as im:
            im.verify()
    assert not [p for p in path.parent.iterdir() if ".partial" in p.name]


def test_plot_supplementation(tmp_path):
    # mimic listed first in the file: internal must still come first
    t = roundtrip(table().sort_values("test_set", ascending=False, kind="stable"), tmp_path)
    fig = plot_supplementation(t, tmp_path / "s.pdf", "CheXpert supplementation")
    check_file(tmp_path / "s.pdf")
    axes = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["internal", "mimic"]
    assert "2,000 images\n900 patients" in axes[0].get_title()
    assert fig.get_supxlabel() == K_LABEL
    ax = axes[0]
    ref = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(ref) == 1 and ref[0].get_label() == "real only (k = 0)"
    macro = t[(t["metric"] == "auroc_macro") & (t["test_set"] == "internal")]
    ref_value = macro[(macro["protocol"] == "real+synthetic") & (macro["k"] == 0)]["value"].item()
    assert ref[0].get_ydata()[0] == pytest.approx(ref_value)
    curves = {ln.get_label(): ln for ln in ax.lines if ln.get_linestyle() != "--"}
    assert list(curves) == ["real+synthetic", "synthetic only", "external mixing"]
    assert list(curves["real+synthetic"].get_xdata()) == [0, 1, 2, 5, 10]
    assert list(curves["synthetic only"].get_xdata()) == [1, 2, 5, 10]
    assert len(ax.collections) == 3  # one CI band per protocol
    assert list(ax.get_xticks()) == [0, 1, 2, 5, 10]
    stars = [x for x in ax.texts if x.get_text() == "*"]
    assert len(stars) == int((macro["p_value"] < 0.01).sum()) == 3
    text = caption(fig)
    assert CI in text and P in text and "3 seeds" in text and POINT in text

    fig = plot_supplementation(t, tmp_path / "s.png", "png")
    check_file(tmp_path / "s.png")


def test_plot_supplementation_two_archs(tmp_path):
    t = table(archs=("densenet121", "resnet50"), test_sets=("internal",), labels=["Edema"])
    fig = plot_supplementation(t, tmp_path / "a.pdf", "two archs")
    check_file(tmp_path / "a.pdf", 5_000)
    ax = next(ax for ax in fig.axes if ax.lines)
    labels = [ln.get_label() for ln in ax.lines]
    assert "real+synthetic · resnet50" in labels and "real only (k = 0) · densenet121" in labels
    styles = {ln.get_label(): ln.get_linestyle() for ln in ax.lines}
    assert styles["synthetic only · densenet121"] != styles["synthetic only · resnet50"]
    assert "--" not in {s for lab, s in styles.items() if not lab.startswith("real only")}


def test_plot_label_heatmap(tmp_path):
    t = roundtrip(table(), tmp_path)
    fig = plot_label_heatmap(t, tmp_path / "h.pdf", "Per-label change")
    check_file(tmp_path / "h.pdf")
    axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["internal", "mimic"]
    ax = axes[0]
    assert [x.get_text() for x in ax.get_yticklabels()] == LABELS
    cols = [x.get_text() for x in ax.get_xticklabels()]
    assert cols == [f"real+synthetic · k={k}" for k in KS[1:]] + [f"synthetic only · k={k}" for k in KS[1:]]
    arr = ax.images[0].get_array()
    assert arr.shape == (14, 8)
    norm = ax.images[0].norm
    assert norm.vmin == -norm.vmax  # diverging, centred at 0

    li = t[(t["test_set"] == "internal") & (t["arch"] == "densenet121")].set_index(["metric", "protocol", "k"])
    want = li.loc[("auroc:Edema", "real+synthetic", 5), "value"] - li.loc[("auroc:Edema", "real+synthetic", 0), "value"]
    assert arr[LABELS.index("Edema"), cols.index("real+synthetic · k=5")] == pytest.approx(want)
    texts = {(round(x.get_position()[1]), round(x.get_position()[0])): x.get_text() for x in ax.texts}
    cell = texts[(LABELS.index("Edema"), cols.index("real+synthetic · k=5"))]
    assert cell == f"{want:+.2f}*"  # adjusted p = 0.003
    assert not texts[(LABELS.index("Edema"), cols.index("real+synthetic · k=1"))].endswith("*")
    # p = 0.005 alone, 0.015 after adjustment: the heatmap marks adjusted p-values only
    assert not texts[(LABELS.index("Edema"), cols.index("real+synthetic · k=2"))].endswith("*")
    assert texts[(LABELS.index("Fracture"), cols.index("synthetic only · k=10"))] == "n/a"
    assert np.ma.is_masked(arr[LABELS.index("Fracture"), cols.index("synthetic only · k=10")])
    mimic = axes[1]
    row = LABELS.index("Pleural Other")
    assert all(x.get_text() == "n/a" for x in mimic.texts if round(x.get_position()[1]) == row)
    assert mcolors.to_hex(mimic.images[0].cmap.get_bad()) == mcolors.to_hex("0.85")
    mimic_texts = {(round(x.get_position()[1]), round(x.get_position()[0])): x.get_text() for x in mimic.texts}
    assert mimic_texts[(LABELS.index("Fracture"), cols.index("real+synthetic · k=1"))].endswith("†")
    text = caption(fig)
    assert CI in text and P in text and "adjusted p < 0.01" in text and "† not tested" in text

    plot_label_heatmap(t, tmp_path / "h.png", "png")
    check_file(tmp_path / "h.png")


def test_one_label(tmp_path):
    t = roundtrip(table(labels=["7"], test_sets=("internal",)), tmp_path)
    fig = plot_supplementation(t, tmp_path / "m.pdf", "MNIST demo")
    check_file(tmp_path / "m.pdf", 5_000)
    assert CI in caption(fig)
    fig = plot_label_heatmap(t, tmp_path / "mh.png", "MNIST demo")
    check_file(tmp_path / "mh.png", 5_000)
    ax = next(ax for ax in fig.axes if ax.images)
    assert ax.images[0].get_array().shape == (1, 8)
    assert [x.get_text() for x in ax.get_yticklabels()] == ["7"]


@pytest.mark.parametrize("plot", [plot_supplementation, plot_label_heatmap])
def test_missing_reference(tmp_path, plot):
    t = table(test_sets=("internal", "mimic"), labels=["Edema", "Fracture"])
    t = t[~((t["test_set"] == "mimic") & (t["protocol"] == "real+synthetic") & (t["k"] == 0))]
    with pytest.raises(ValueError, match=r"no real-only reference .*k=0.*test_set=mimic") as e:
        plot(t, tmp_path / "x.pdf", "t")
    assert "\n" not in str(e.value) and "internal" not in str(e.value)
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.parametrize("plot", [plot_supplementation, plot_label_heatmap])
def test_missing_rows_and_columns(tmp_path, plot):
    t = table(labels=["Edema"], test_sets=("internal",))
    kind = "auroc:" if plot is plot_label_heatmap else "auroc_macro"
    with pytest.raises(ValueError, match=kind):
        plot(t[~t["metric"].str.startswith(kind)], tmp_path / "x.pdf", "t")
    with pytest.raises(ValueError, match="lacks column"):
        plot(t.drop(columns="ci_method"), tmp_path / "x.pdf", "t")
    with pytest.raises(ValueError, match="share a key"):
        plot(pd.concat([t, t.iloc[:1]]), tmp_path / "x.pdf", "t")
