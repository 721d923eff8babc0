"""Study A manifests: exact α mixes, nested draws, train-only rows, the test set, I/O and gather."""

import numpy as np
import pytest

from synthetic_simplicity.assembly.alpha import alpha_counts, assemble_alpha, assemble_test, max_per_class
from synthetic_simplicity.assembly.manifest import AssemblyError, Manifest, gather, read_manifest, write_manifest
from synthetic_simplicity.core.imageset import SOURCES, SPLITS, ImageSet

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
SYN_OFFSET = 100  # synthetic row i has pixel value 100 + i, real row i has value i


def pool(n_train: int, n_test: int, source: str, offset: int, order_seed: int) -> ImageSet:
    """Rows of both classes and splits shuffled together; every pixel of row i equals offset + i."""
    label = np.repeat([0, 1, 0, 1], [n_train, n_train, n_test, n_test])
    split = np.repeat([SPLITS["train"]] * 2 + [SPLITS["test"]] * 2, [n_train, n_train, n_test, n_test])
    perm = np.random.default_rng(order_seed).permutation(len(label))
    label, split = label[perm], split[perm]
    n = len(label)
    images = np.broadcast_to((offset + np.arange(n, dtype=np.uint8))[:, None, None], (n, 3, 3)).copy()
    return ImageSet(images=images, label=label.astype(np.int64), source=np.full(n, SOURCES[source], np.uint8),
                    split=split.astype(np.uint8), dataset="toy", class_names=["two", "four"])


@pytest.fixture
def pools():
    real = pool(10, 3, "real", 0, 1)  # 26 rows
    synthetic = pool(12, 4, "synthetic", SYN_OFFSET, 2)  # 32 rows
    return real, synthetic


def cell(m: Manifest, c: int, src: str) -> np.ndarray:
    return m.index[(m.label == c) & (m.pool == SOURCES[src])]


def test_alpha_counts_exact():
    assert alpha_counts(0.25, 10) == {(0, "real"): 3, (0, "synthetic"): 7, (1, "real"): 7, (1, "synthetic"): 3}
    assert alpha_counts(0.5, 7)[(0, "real")] == 4  # round half up
    for a in ALPHAS:
        for n in (1, 2, 5, 10, 101):
            c = alpha_counts(a, n)
            assert c[(0, "real")] + c[(0, "synthetic")] == n == c[(1, "real")] + c[(1, "synthetic")]
            assert c[(1, "real")] == c[(0, "synthetic")] and c[(1, "synthetic")] == c[(0, "real")]
            assert all(v >= 0 for v in c.values())


def test_max_per_class(pools):
    assert max_per_class(*pools) == 10


@pytest.mark.parametrize("n_per_class, n", [(None, 10), (6, 6)])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_realised_counts_match_alpha(pools, alpha, n_per_class, n):
    real, synthetic = pools
    m = assemble_alpha(real, synthetic, alpha, n_per_class, base_seed=0, run_seed=0)[0]
    expected = alpha_counts(alpha, n)
    for (c, src), k in expected.items():
        rows = cell(m, c, src)
        assert len(rows) == k, (c, src)
        s = real if src == "real" else synthetic
        assert np.all(s.split[rows] == SPLITS["train"])  # never a test row
        assert np.all(s.label[rows] == c)
        assert len(np.unique(rows)) == len(rows)
    for c in (0, 1):
        assert (m.label == c).sum() == n
    assert m.attrs["n_per_class"] == n and m.attrs["alpha"] == alpha and m.attrs["run_seed"] == 0
    assert m.attrs["counts"] == {f"{name}·{src}": expected[(c, src)]
                                 for c, name in enumerate(real.class_names) for src in ("real", "synthetic")}
    assert np.array_equal(m.source, m.pool)
    assert m.index.dtype.kind == "i" and m.label.dtype == np.int64


def test_extreme_alphas(pools):
    real, synthetic = pools
    m1 = assemble_alpha(real, synthetic, 1.0, None, 0, 0)[0]
    assert np.all(m1.pool[m1.label == 0] == SOURCES["real"])
    assert np.all(m1.pool[m1.label == 1] == SOURCES["synthetic"])
    m0 = assemble_alpha(real, synthetic, 0.0, None, 0, 0)[0]
    assert np.all(m0.pool[m0.label == 0] == SOURCES["synthetic"])
    assert np.all(m0.pool[m0.label == 1] == SOURCES["real"])
    # with n = the whole pool, α=1 takes every real class-0 training row
    assert set(cell(m1, 0, "real")) == set(np.flatnonzero((real.label == 0) & (real.split == SPLITS["train"])))


def test_alphas_are_nested(pools):
    real, synthetic = pools
    ms = {a: assemble_alpha(real, synthetic, a, None, 0, 3)[0] for a in ALPHAS}
    for lo, hi in zip(ALPHAS, ALPHAS[1:]):
        # growing α adds real class-0 rows and synthetic class-1 rows, never swaps them
        assert set(cell(ms[lo], 0, "real")) <= set(cell(ms[hi], 0, "real"))
        assert set(cell(ms[lo], 1, "synthetic")) <= set(cell(ms[hi], 1, "synthetic"))
        assert set(cell(ms[hi], 0, "synthetic")) <= set(cell(ms[lo], 0, "synthetic"))
        assert set(cell(ms[hi], 1, "real")) <= set(cell(ms[lo], 1, "real"))
    assert set(cell(ms[0.5], 0, "real")) <= set(cell(ms[1.0], 0, "real"))
    assert 0 < len(cell(ms[0.5], 0, "real")) < len(cell(ms[1.0], 0, "real"))


def test_deterministic_and_seed_dependent(pools):
    real, synthetic = pools
    a = assemble_alpha(real, synthetic, 0.5, 6, 0, 0)[0]
    b = assemble_alpha(real, synthetic, 0.5, 6, 0, 0)[0]
    assert np.array_equal(a.index, b.index) and np.array_equal(a.pool, b.pool)
    c = assemble_alpha(real, synthetic, 0.5, 6, 0, 1)[0]  # other run seed
    d = assemble_alpha(real, synthetic, 0.5, 6, 1, 0)[0]  # other base seed
    assert not np.array_equal(a.index, c.index)
    assert not np.array_equal(a.index, d.index)
    assert c.attrs["counts"] == a.attrs["counts"]  # same mix, other rows


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_out_of_range_names_the_key(pools, alpha):
    with pytest.raises(AssemblyError, match=r"assembly\.alphas"):
        assemble_alpha(*pools, alpha, None, 0, 0)
    with pytest.raises(AssemblyError, match=r"assembly\.alphas"):
        alpha_counts(alpha, 10)


@pytest.mark.parametrize("per_class", [11, 0])
def test_per_class_too_large_names_the_key(pools, per_class):
    with pytest.raises(AssemblyError, match=r"assembly\.per_class") as e:
        assemble_alpha(*pools, 0.5, per_class, 0, 0)
    if per_class == 11:
        assert "10" in str(e.value) and "synthesis.train_per_class" in str(e.value)


def test_needs_two_classes(pools):
    real, synthetic = pools
    real.class_names = ["a", "b", "c"]
    with pytest.raises(AssemblyError, match="exactly 2 classes"):
        assemble_alpha(real, synthetic, 0.5, None, 0, 0)


def test_test_manifest_has_every_test_row(pools):
    real, synthetic = pools
    m = assemble_test(real, synthetic)
    for src, s in (("real", real), ("synthetic", synthetic)):
        rows = np.sort(m.index[m.pool == SOURCES[src]])
        assert np.array_equal(rows, np.flatnonzero(s.split == SPLITS["test"]))
        assert np.array_equal(m.label[m.pool == SOURCES[src]], s.label[m.index[m.pool == SOURCES[src]]])
    assert m.attrs["counts"] == {"two·real": 3, "two·synthetic": 4, "four·real": 3, "four·synthetic": 4}
    assert min(m.attrs["counts"].values()) > 0


def test_test_manifest_empty_cell_raises(pools):
    real, synthetic = pools
    no_syn_four = synthetic.rows(~((synthetic.label == 1) & (synthetic.split == SPLITS["test"])))
    with pytest.raises(AssemblyError, match="empty cell"):
        assemble_test(real, no_syn_four)


@pytest.mark.parametrize("kind", ["alpha", "test"])
def test_manifest_round_trip(tmp_path, pools, kind):
    m = assemble_alpha(*pools, 0.25, None, 0, 0)[0] if kind == "alpha" else assemble_test(*pools)
    path = tmp_path / "m" / "train.h5"
    write_manifest(path, m)
    assert [p.name for p in path.parent.iterdir()] == ["train.h5"]
    r = read_manifest(path)
    for name in ("pool", "index", "label"):
        assert np.array_equal(getattr(r, name), getattr(m, name)) and getattr(r, name).dtype == getattr(m, name).dtype
    assert r.attrs == m.attrs


def test_gather_returns_the_named_images(pools):
    real, synthetic = pools
    for m in (assemble_alpha(real, synthetic, 0.75, None, 0, 0)[0], assemble_test(real, synthetic)):
        images = gather(m, real, synthetic)
        assert images.shape == (len(m.index), 3, 3) and images.dtype == np.uint8
        expected = np.where(m.pool == SOURCES["real"], m.index, SYN_OFFSET + m.index)
        assert np.array_equal(images[:, 1, 2], expected)
        assert np.all(images == images[:, :1, :1])  # whole images, not single pixels


@pytest.mark.parametrize("alpha", ALPHAS)
def test_validation_manifest_has_the_alpha_mix_and_never_a_training_row(pools, alpha):
    real, synthetic = pools
    train, val = assemble_alpha(real, synthetic, alpha, None, 0, 0, val_fraction=0.2)
    assert max_per_class(real, synthetic, 0.2) == 8 and train.attrs["n_per_class"] == 8  # 10 - round(0.2 * 10)
    assert val.attrs["counts"] == {f"{name}·{src}": k for (c, src), k in alpha_counts(alpha, 2).items()
                                   for name in [real.class_names[c]]}
    for c in (0, 1):
        for src, s in (("real", real), ("synthetic", synthetic)):
            assert not set(cell(val, c, src)) & set(cell(train, c, src))
            assert np.all(s.split[cell(val, c, src)] == SPLITS["train"])  # no test row, no real validation split
    # the held-out rows are the same for every alpha of a seed, so no alpha trains on another's validation rows
    others = [assemble_alpha(real, synthetic, a, None, 0, 0, val_fraction=0.2) for a in ALPHAS]
    for c in (0, 1):
        for src in ("real", "synthetic"):
            trained = set().union(*(cell(t, c, src) for t, _ in others))
            held = set().union(*(cell(v, c, src) for _, v in others))
            assert not trained & held


def test_a_real_validation_split_is_used_for_the_real_validation_rows(pools):
    """CAMUS has its own (patient-disjoint) validation split: the real validation images come from it."""
    real, synthetic = pools
    val_rows = np.flatnonzero(real.split == SPLITS["train"])[::5]  # 2 per class become a validation split
    real.split[val_rows] = SPLITS["val"]
    per_class = min(int(((real.split == SPLITS["val"]) & (real.label == c)).sum()) for c in (0, 1))
    train, val = assemble_alpha(real, synthetic, 1.0, None, 0, 0, val_fraction=0.4)
    assert val.attrs["n_per_class"] == per_class  # the split's size, not val_fraction
    assert np.all(real.split[cell(val, 0, "real")] == SPLITS["val"])
    assert np.all(real.split[cell(train, 0, "real")] == SPLITS["train"])
    assert not set(cell(val, 1, "synthetic")) & set(cell(train, 1, "synthetic"))


def test_balanced_held_out_set_is_the_reserve_and_meets_no_training_row(pools):
    """DFR's held-out set: per_cell rows of every class x source cell, from the validation reserve of
    the same run seed, disjoint from the training rows of every alpha and from the test rows."""
    from synthetic_simplicity.assembly.alpha import assemble_balanced

    real, synthetic = pools
    balanced = assemble_balanced(real, synthetic, 2, base_seed=0, run_seed=3, val_fraction=0.2)
    assert balanced.attrs["counts"] == {"two·real": 2, "two·synthetic": 2, "four·real": 2, "four·synthetic": 2}
    for alpha in ALPHAS:
        train, val = assemble_alpha(real, synthetic, alpha, None, base_seed=0, run_seed=3, val_fraction=0.2)
        for c in (0, 1):
            for src, s in (("real", real), ("synthetic", synthetic)):
                held = cell(balanced, c, src)
                assert not set(held) & set(cell(train, c, src))
                assert (s.split[held] == SPLITS["train"]).all() and (s.label[held] == c).all()
    with pytest.raises(AssemblyError, match="mitigation.dfr.per_cell"):
        assemble_balanced(real, synthetic, 3, base_seed=0, run_seed=3, val_fraction=0.2)
