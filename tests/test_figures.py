import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthetic_simplicity.figures.alpha import plot_alpha
from synthetic_simplicity.figures.samples import plot_grid, plot_samples
from synthetic_simplicity.core.imageset import ImageSet
from synthetic_simplicity.evaluation.cells import CI_METHOD, aggregate


def table(archs=("cnn", "resnet"), seeds=(0, 1, 2)):
    recs = []
    for arch in archs:
        for alpha in (0.0, 0.5, 1.0):
            for s in seeds:
                r = {"dataset": "mnist", "variant": "ddpm50", "method": "erm", "architecture": arch, "alpha": alpha, "seed": s, "acc_avg": 0.9}
                for c in ("2·real", "2·synthetic", "7·real", "7·synthetic"):
                    r[f"acc_cell:{c}"] = 0.5 + 0.1 * alpha + 0.01 * s
                recs.append(r)
    return aggregate(recs)


def test_plot_alpha_pdf_and_png(tmp_path):
    fig = plot_alpha(table(), tmp_path / "a.pdf", "MNIST", CI_METHOD)
    assert (tmp_path / "a.pdf").read_bytes()[:4] == b"%PDF"
    data_axes = [ax for ax in fig.axes if ax.lines]
    assert len(data_axes) == 2 and [ax.get_title() for ax in data_axes] == ["mnist · ddpm50\ncnn",
                                                                           "mnist · ddpm50\nresnet"]
    ax = data_axes[0]
    assert ax.get_ylim() == (0, 100) and list(ax.get_xticks()) == [0.0, 0.5, 1.0]
    assert [l.get_label() for l in ax.lines] == ["2 · real", "2 · synthetic", "7 · real", "7 · synthetic"]
    styles = {l.get_label(): (l.get_color(), l.get_linestyle()) for l in ax.lines}
    assert styles["2 · real"][1] == "-" and styles["7 · real"][1] == "--"
    assert styles["2 · real"][0] == styles["7 · real"][0] != styles["2 · synthetic"][0]
    assert ax.lines[0].get_ydata()[1] == pytest.approx(100 * 0.56)
    assert len(ax.collections) == 4  # one CI band per cell
    texts = [t.get_text() for t in fig.texts]
    assert f"Mean over 3 seeds; bands: {CI_METHOD}" in texts

    fig = plot_alpha(table(archs=("cnn",), seeds=(0,)), tmp_path / "a.png", "one seed", CI_METHOD)
    with Image.open(tmp_path / "a.png") as im:
        im.verify()
    data_axes = [ax for ax in fig.axes if ax.lines]
    assert len(data_axes) == 1 and len(data_axes[0].collections) == 0  # no band without a CI
    assert not any(p.name.endswith((".tmp.png", ".tmp.pdf")) for p in tmp_path.iterdir())


def test_plot_alpha_has_a_row_per_variant_titled_by_its_detectability(tmp_path):
    ddim = table().assign(variant="ddim20")
    both = pd.concat([table(), ddim[ddim["architecture"] == "cnn"]], ignore_index=True)
    fig = plot_alpha(both, tmp_path / "v.pdf", "MNIST", CI_METHOD,
                     row_titles={("mnist", "ddim20"): "ddim20 · C2ST AUROC 0.99"})
    titles = [ax.get_title() for ax in fig.axes if ax.axison]  # titled rows first, in the titles' order
    assert titles == ["ddim20 · C2ST AUROC 0.99\ncnn", "mnist · ddpm50\ncnn", "mnist · ddpm50\nresnet"]
    assert sum(not ax.axison for ax in fig.axes) == 1  # ddim20 has no resnet sweep: an empty slot


def test_plot_alpha_needs_cells(tmp_path):
    t = table()
    with pytest.raises(ValueError):
        plot_alpha(t[t["metric"] == "acc_avg"], tmp_path / "x.png", "t", CI_METHOD)


def imageset(n, shape, source, seed):
    rng = np.random.default_rng(seed)
    return ImageSet(images=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
                    label=np.arange(n) % 2, source=np.full(n, source, np.uint8),
                    split=np.full(n, 2, np.uint8), dataset="toy", class_names=["2", "7"])


@pytest.mark.parametrize("shape", [(12, 12), (3, 12, 12), (1, 12, 12)])
def test_plot_samples_grid(tmp_path, shape):
    real, syn = imageset(20, shape, 0, 1), imageset(6, shape, 1, 2)  # syn has only 3 per class
    sizes = {}
    for k in (3, 8):
        fig = plot_samples(real, {"synthetic": syn}, tmp_path / f"s{k}.png", per_class=k, seed=0)
        assert len(fig.axes) == 4 * k  # 2 classes x (real, synthetic) rows, per_class columns
        assert [ax.get_ylabel().split("\n")[0] for ax in fig.axes[::k]] == \
            ["2 · real", "2 · synthetic", "7 · real", "7 · synthetic"]
        assert sum(bool(ax.images) for ax in fig.axes[k:2 * k]) == min(k, 3)  # synthetic row pads blank
        with Image.open(tmp_path / f"s{k}.png") as im:
            im.verify()
            sizes[k] = im.size
    assert sizes[8][0] > sizes[3][0] and sizes[8][1] == pytest.approx(sizes[3][1], abs=4)


def test_plot_samples_deterministic(tmp_path):
    real, syn = imageset(20, (8, 8), 0, 1), imageset(20, (8, 8), 1, 2)
    plot_samples(real, {"synthetic": syn}, tmp_path / "a.png", per_class=4, seed=5)
    plot_samples(real, {"synthetic": syn}, tmp_path / "b.png", per_class=4, seed=5)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_plot_samples_shows_the_same_rows_of_every_variant(tmp_path):
    real, first, second = imageset(20, (8, 8), 0, 1), imageset(10, (8, 8), 1, 2), imageset(10, (8, 8), 1, 3)
    fig = plot_samples(real, {"ddpm50": first, "ddim20": second}, tmp_path / "v.png", per_class=3, seed=0)
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["2 · real", "2 · ddpm50", "2 · ddim20", "7 · real",
                                                         "7 · ddpm50", "7 · ddim20"]
    shown = [ax.images[0].get_array() for ax in fig.axes[3:9]]
    rows = [np.flatnonzero([np.array_equal(shown[i], im) for im in pool.images])
            for i, pool in zip(range(6), [first] * 3 + [second] * 3)]
    assert [int(r[0]) for r in rows[:3]] == [int(r[0]) for r in rows[3:]]  # one column, one seed
    with pytest.raises(ValueError, match="different rows"):
        plot_samples(real, {"a": first, "b": imageset(12, (8, 8), 1, 3)}, tmp_path / "w.png")


def test_plot_grid(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (6, 1, 10, 10), dtype=np.uint8)
    fig = plot_grid(imgs, np.array([0, 0, 0, 0, 1, 1]), ["2", "7"], tmp_path / "g.png")
    assert len(fig.axes) == 2 * 4
    assert sum(bool(ax.images) for ax in fig.axes) == 6
    with Image.open(tmp_path / "g.png") as im:
        im.verify()
