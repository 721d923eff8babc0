"""The HDF5 image-set contract: round trip, atomic writes, validation and storage layout."""

import json

import h5py
import numpy as np
import pytest

from synthetic_simplicity.core.imageset import (
    GZIP_LEVEL,
    MAX_CHUNK_IMAGES,
    H5Images,
    ImageSetWriter,
    SCHEMA_VERSION,
    ImageSet,
    ImageSetError,
    read_header,
    read_imageset,
    write_imageset,
)


def make_set(shape=(6, 5, 7), with_optional=True) -> ImageSet:
    n = shape[0]
    rng = np.random.default_rng(0)
    return ImageSet(
        images=rng.integers(0, 256, size=shape, dtype=np.uint8),
        label=np.array([0, 1, 2] * (n // 3), np.int64),
        source=np.array([0, 1] * (n // 2), np.uint8),
        split=np.array([0, 0, 1, 1, 2, 2][:n], np.uint8),
        dataset="toy",
        class_names=["zero", "one", "two"],
        subject=np.array([f"subj-{i}" for i in range(n - 1)] + ["sujet-ü"]) if with_optional else None,
        seed=np.array([0, 1, 2**62, 7, 8, 9][:n], np.int64) if with_optional else None,
        cond=rng.random((n, 3), dtype=np.float32) if with_optional else None,
        provenance={"generator": "g.pt", "nested": {"a": [1, 2]}},
    )


def assert_same(a: ImageSet, b: ImageSet) -> None:
    assert a.images.dtype == b.images.dtype == np.uint8
    assert a.images.shape == b.images.shape and np.array_equal(a.images, b.images)
    for name in ("label", "source", "split", "seed", "cond"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.array_equal(x, y), name
    if a.subject is None:
        assert b.subject is None
    else:
        assert list(a.subject) == list(b.subject)
    assert a.dataset == b.dataset and a.class_names == b.class_names


@pytest.mark.parametrize("shape", [(6, 5, 7), (6, 3, 5, 7)], ids=["NHW", "NCHW"])
def test_round_trip_with_all_fields(tmp_path, shape):
    s = make_set(shape)
    path = tmp_path / "sub" / "set.h5"  # parent folder is created
    write_imageset(path, s)
    r = read_imageset(path)
    assert_same(s, r)
    assert r.label.dtype == np.int64 and r.source.dtype == np.uint8 and r.split.dtype == np.uint8
    assert r.seed.dtype == np.int64 and r.seed[2] == 2**62  # 63-bit seeds survive
    assert r.cond.dtype == np.float32
    assert r.subject[-1] == "sujet-ü"  # UTF-8 strings decode as str, not bytes
    assert all(isinstance(x, str) for x in r.subject)
    # provenance keeps the caller's fields and adds the library versions
    assert r.provenance["generator"] == "g.pt" and r.provenance["nested"] == {"a": [1, 2]}
    libs = r.provenance["libraries"]
    assert {"python", "numpy", "h5py", "torch"} <= set(libs)
    assert libs["numpy"] == np.__version__ and libs["h5py"] == h5py.__version__
    with h5py.File(path, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f.attrs["dataset"] == "toy"
        assert json.loads(f.attrs["class_names"]) == ["zero", "one", "two"]
        json.loads(f.attrs["provenance"])  # stored as JSON text
    assert [p.name for p in path.parent.iterdir()] == ["set.h5"]  # no .partial left


def test_round_trip_without_optional_fields(tmp_path):
    s = make_set(with_optional=False)
    write_imageset(tmp_path / "s.h5", s)
    r = read_imageset(tmp_path / "s.h5")
    assert_same(s, r)
    assert r.subject is None and r.seed is None and r.cond is None
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert set(f) == {"images", "label", "source", "split"}


def test_images_are_gzip_compressed_and_chunked(tmp_path):
    n = MAX_CHUNK_IMAGES + 10
    s = ImageSet(images=np.zeros((n, 4, 4), np.uint8), label=np.zeros(n, np.int64), source=np.zeros(n, np.uint8),
                 split=np.zeros(n, np.uint8), dataset="toy", class_names=["a"])
    write_imageset(tmp_path / "s.h5", s)
    with h5py.File(tmp_path / "s.h5", "r") as f:
        d = f["images"]
        assert d.compression == "gzip" and d.compression_opts == GZIP_LEVEL
        assert d.chunks == (MAX_CHUNK_IMAGES, 4, 4)
    small = make_set((6, 2, 5, 7))
    write_imageset(tmp_path / "small.h5", small)
    with h5py.File(tmp_path / "small.h5", "r") as f:
        assert f["images"].chunks == (6, 2, 5, 7)  # never larger than the data
        assert f["images"].compression == "gzip"


def test_empty_set_round_trip(tmp_path):
    s = make_set(with_optional=False).rows(np.zeros(6, bool))
    write_imageset(tmp_path / "e.h5", s)
    r = read_imageset(tmp_path / "e.h5")
    assert len(r) == 0 and r.images.shape == (0, 5, 7)


def test_rows_selects_every_field():
    s = make_set()
    sub = s.rows(np.array([4, 1]))
    assert np.array_equal(sub.images, s.images[[4, 1]]) and list(sub.subject) == [s.subject[4], s.subject[1]]
    assert np.array_equal(sub.seed, s.seed[[4, 1]]) and np.array_equal(sub.cond, s.cond[[4, 1]])
    assert len(sub) == 2 and sub.class_names == s.class_names


@pytest.mark.parametrize(
    "breakage, match",
    [
        (lambda s: setattr(s, "label", np.array([0, 1, 2, 0, 1, 3])), "labels must lie in 0..2"),
        (lambda s: setattr(s, "label", np.array([0, 1, 2, 0, 1, -1])), "labels must lie in 0..2"),
        (lambda s: setattr(s, "source", s.source[:-1]), "'images' has 6 rows, 'source' has 5"),
        (lambda s: setattr(s, "seed", s.seed[:3]), "'seed' has 3 rows"),
        (lambda s: setattr(s, "images", s.images[:4]), "'images' has 4 rows"),
        (lambda s: setattr(s, "images", s.images.astype(np.float32)), "images must be uint8"),
        (lambda s: setattr(s, "images", s.images[:, 0, 0]), "images must be uint8"),
    ],
)
def test_invalid_set_raises_and_leaves_no_file(tmp_path, breakage, match):
    s = make_set()
    breakage(s)
    path = tmp_path / "bad.h5"
    with pytest.raises(ImageSetError, match=match):
        write_imageset(path, s)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a .partial


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "s.h5"
    good = make_set()
    write_imageset(path, good)
    bad = make_set()
    bad.subject = np.array([object()] * len(bad), dtype=object)  # h5py cannot store this
    with pytest.raises(TypeError):  # fails inside h5py, after the temporary file was opened
        write_imageset(path, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    assert_same(good, read_imageset(path))


def test_read_non_contract_hdf5_names_the_path(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(ImageSetError, match="other.h5") as e:
        read_imageset(path)
    assert "images" in str(e.value) and "rebuild" in str(e.value)


def test_read_wrong_schema_version(tmp_path):
    path = tmp_path / "old.h5"
    write_imageset(path, make_set())
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ImageSetError, match=f"old.h5.*version {SCHEMA_VERSION + 1}"):
        read_imageset(path)


def test_read_missing_or_non_hdf5_file_names_the_path(tmp_path):
    with pytest.raises(ImageSetError, match="nothere.h5"):
        read_imageset(tmp_path / "nothere.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(ImageSetError, match="junk.h5"):
        read_imageset(junk)


def test_read_rejects_a_file_whose_rows_disagree(tmp_path):
    path = tmp_path / "s.h5"
    write_imageset(path, make_set())
    with h5py.File(path, "a") as f:
        del f["source"]
        f.create_dataset("source", data=np.zeros(2, np.uint8))
    with pytest.raises(ImageSetError, match="'images' has 6 rows, 'source' has 2"):
        read_imageset(path)


def test_header_matches_the_full_read(tmp_path):
    s = ImageSet(images=np.zeros((3, 4, 4), np.uint8), label=np.array([0, 1, 1]), source=np.zeros(3),
                 split=np.zeros(3), dataset="camus", class_names=["2CH", "4CH"])
    write_imageset(tmp_path / "x.h5", s)
    full = read_imageset(tmp_path / "x.h5")
    assert read_header(tmp_path / "x.h5") == (full.dataset, full.class_names) == ("camus", ["2CH", "4CH"])


def test_chest_xray_sized_images_get_small_chunks(tmp_path):
    """One random 256x256 read must not decompress 256 images (16 MB)."""
    writer = ImageSetWriter(tmp_path / "x.h5", 10, (256, 256))
    with h5py.File(writer.partial, "r") as f:
        assert f["images"].chunks == (3, 256, 256)
    writer.close()


def multilabel_set(n=9) -> ImageSet:
    rng = np.random.default_rng(1)
    labels = rng.choice([1.0, 0.0, -1.0, np.nan], size=(n, 3)).astype(np.float32)
    return ImageSet(images=rng.integers(0, 256, (n, 6, 5), dtype=np.uint8), label=None, labels=labels,
                    source=np.zeros(n, np.uint8), split=np.zeros(n, np.uint8), dataset="cxr",
                    class_names=["a", "b", "c"], subject=np.array([f"p{i // 2}" for i in range(n)]),
                    key=np.array([f"img{i}.jpg" for i in range(n)]), cond=rng.random((n, 4)).astype(np.float32))


def test_multilabel_round_trip_keeps_uncertain_and_blank(tmp_path):
    s = multilabel_set()
    write_imageset(tmp_path / "m.h5", s)
    r = read_imageset(tmp_path / "m.h5")
    assert r.label is None
    np.testing.assert_array_equal(r.labels, s.labels)  # NaN == NaN here: blanks survive as blanks
    assert (r.labels == -1).sum() == (s.labels == -1).sum() > 0
    assert list(r.key) == list(s.key) and list(r.subject) == list(s.subject)
    meta = read_imageset(tmp_path / "m.h5", images=False)
    assert meta.images is None and np.array_equal(meta.cond, s.cond)


def test_a_set_needs_exactly_one_label_kind(tmp_path):
    s = multilabel_set()
    s.label = np.zeros(len(s), np.int64)
    with pytest.raises(ImageSetError, match="exactly one of 'label'"):
        write_imageset(tmp_path / "bad.h5", s)


def test_writer_resumes_after_a_kill_and_discards_another_configs_partial(tmp_path):
    s = multilabel_set(10)
    path = tmp_path / "r.h5"
    first = ImageSetWriter(path, 10, (6, 5), key="cfg-a")
    first.append(s.images[:4])
    first.close()  # what a kill leaves: a partial file with 4 images done
    assert not path.exists()
    again = ImageSetWriter(path, 10, (6, 5), key="cfg-a")
    assert again.done == 4
    again.append(s.images[4:])
    again.finish(s)
    np.testing.assert_array_equal(read_imageset(path).images, s.images)
    assert not again.partial.exists()

    stale = ImageSetWriter(tmp_path / "o.h5", 10, (6, 5), key="cfg-a")
    stale.append(s.images[:4])
    stale.close()
    assert ImageSetWriter(tmp_path / "o.h5", 10, (6, 5), key="cfg-b").done == 0


def test_writer_refuses_to_finish_an_incomplete_set(tmp_path):
    s = multilabel_set(5)
    w = ImageSetWriter(tmp_path / "i.h5", 5, (6, 5), key="k")
    w.append(s.images[:3])
    with pytest.raises(ImageSetError, match="only 3 of 5"):
        w.finish(s)
    w.close()
    assert not (tmp_path / "i.h5").exists()


def test_h5images_reads_any_order_with_repeats_and_views(tmp_path):
    s = multilabel_set(12)
    write_imageset(tmp_path / "h.h5", s)
    images = H5Images(tmp_path / "h.h5")
    idx = np.array([7, 2, 7, 0, 11])
    np.testing.assert_array_equal(images[idx], s.images[idx])
    view = images.view(np.array([3, 5, 9]))
    assert len(view) == 3
    np.testing.assert_array_equal(view[np.array([2, 0])], s.images[[9, 3]])
    # Runs of consecutive rows (read as slices) mixed with single rows, repeats and every row.
    runs = np.array([4, 5, 6, 0, 11, 10, 5, 1, 2])
    np.testing.assert_array_equal(images[runs], s.images[runs])
    rng = np.random.default_rng(0)
    for size in (1, 6, 12, 30):
        idx = rng.integers(0, 12, size)
        np.testing.assert_array_equal(images[idx], s.images[idx])
    np.testing.assert_array_equal(images[np.arange(12)], s.images)
    np.testing.assert_array_equal(images[3], s.images[[3]])


def fingerprint(path) -> str:
    with h5py.File(path, "r") as f:
        return str(f.attrs["fingerprint"])


def test_fingerprint_names_the_content(tmp_path):
    """Equal content, equal fingerprint; one pixel, one label or one subject more or less, another."""
    base = make_set()
    write_imageset(tmp_path / "a.h5", base)
    write_imageset(tmp_path / "b.h5", make_set())
    assert fingerprint(tmp_path / "a.h5") == fingerprint(tmp_path / "b.h5")
    changes = {"pixel": lambda s: s.images.__setitem__((0, 0, 0), s.images[0, 0, 0] ^ 1),
               "label": lambda s: s.label.__setitem__(0, 2), "subject": lambda s: s.subject.__setitem__(0, "x"),
               "split": lambda s: s.split.__setitem__(0, 2)}
    seen = {fingerprint(tmp_path / "a.h5")}
    for name, change in changes.items():
        s = make_set()
        change(s)
        write_imageset(tmp_path / f"{name}.h5", s)
        seen.add(fingerprint(tmp_path / f"{name}.h5"))
    assert len(seen) == 1 + len(changes)


def test_fingerprint_of_a_resumed_write_equals_an_uninterrupted_one(tmp_path):
    s = make_set()
    straight = ImageSetWriter(tmp_path / "straight.h5", 6, (5, 7), key="k")
    for i in range(0, 6, 2):
        straight.append(s.images[i:i + 2])
    straight.finish(s)
    killed = ImageSetWriter(tmp_path / "resumed.h5", 6, (5, 7), key="k")
    killed.append(s.images[:2])
    killed.close()  # the kill: the partial file stays
    resumed = ImageSetWriter(tmp_path / "resumed.h5", 6, (5, 7), key="k")
    assert resumed.done == 2
    for i in range(2, 6, 2):
        resumed.append(s.images[i:i + 2])
    resumed.finish(s)
    assert fingerprint(tmp_path / "resumed.h5") == fingerprint(tmp_path / "straight.h5")


def test_data_key_follows_the_rows_read(tmp_path):
    from synthetic_simplicity.core.imageset import data_key

    write_imageset(tmp_path / "a.h5", make_set())
    whole = H5Images(tmp_path / "a.h5")
    assert data_key(whole) == data_key(H5Images(tmp_path / "a.h5"))
    assert data_key(whole.view(np.arange(3))) != data_key(whole)
    images = make_set().images
    assert data_key(images) == data_key(images.copy()) != data_key(images[::-1])
