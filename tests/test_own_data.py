"""A user's own two-class images: readers (PNG, RGB, TIFF 16-bit, NIfTI, DICOM with MONOCHROME1, rescale and
window), both layouts, patient-disjoint splits, a user synthetic pool, and every malformed-input message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthetic_simplicity.core.imageset import SOURCES, SPLITS, read_imageset
from synthetic_simplicity.data import jobs
from synthetic_simplicity.data.fixtures import OWN_CLASSES, write_dicom, write_own_tree
from synthetic_simplicity.data.images import ImageReadError, read_image, to_square
from synthetic_simplicity.data.own import OwnDataError, assign_split, list_images

CLASSES = list(OWN_CLASSES)


def folder_data(tree: Path, **extra) -> dict:
    return {"format": "folder", "root": str(tree / "real"), "csv": None, "classes": CLASSES,
            "subject_regex": "^(s[0-9]+)_", "channels": "grey", "image_size": 16, "window": None,
            "val_fraction": 0.1, "test_fraction": 0.2, **extra}


def csv_data(tree: Path, **extra) -> dict:
    return {**folder_data(tree), "format": "csv", "root": None, "csv": str(tree / "real.csv"),
            "subject_regex": None, **extra}


def pool_spec(root: Path, source: str = "folder", **extra) -> dict:
    return {"source": source, "root": str(root / "synthetic") if source == "folder" else None,
            "csv": str(root / "synthetic.csv") if source == "csv" else None, "subject_regex": None,
            "test_fraction": 0.2, **extra}


ASSEMBLY = {"per_class": None, "val_fraction": 0.1}


@pytest.fixture(scope="module")
def folder_tree(tmp_path_factory):
    return write_own_tree(tmp_path_factory.mktemp("own_folder"), "folder", per_class=30)


@pytest.fixture(scope="module")
def csv_tree(tmp_path_factory):
    return write_own_tree(tmp_path_factory.mktemp("own_csv"), "csv", per_class=30)


def assert_patient_disjoint(s):
    for subject in np.unique(s.subject):
        assert len(set(s.split[s.subject == subject].tolist())) == 1, subject


# ---------------------------------------------------------------- readers

def test_png_grey_rgb_and_luminance(tmp_path):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert read_image(tmp_path / "c.png", "rgb").shape == (3, 5, 7)
    np.testing.assert_array_equal(read_image(tmp_path / "c.png", "rgb")[0], 200)
    grey = read_image(tmp_path / "c.png", "grey")
    assert grey.shape == (5, 7) and int(grey[0, 0]) == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", "rgb"), 9)  # grey repeated into 3 channels


def test_tiff_16bit_and_nifti_are_scaled_to_8bit(tmp_path):
    import nibabel as nib

    a = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    Image.fromarray(a).save(tmp_path / "x.tif")
    out = read_image(tmp_path / "x.tif")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    np.testing.assert_array_equal(np.argsort(out.ravel()), np.argsort(a.ravel()))
    nib.save(nib.Nifti1Image(a.T.astype(np.float32), np.eye(4)), tmp_path / "x.nii.gz")
    np.testing.assert_array_equal(read_image(tmp_path / "x.nii.gz"), out)  # (x, y) on disk -> (rows, columns)


def test_dicom_rescale_monochrome1_and_window(tmp_path):
    value = np.array([[0, 100], [200, 255]], np.int64)  # intended brightness
    stored = ((255 - value) * 4 + 100) // 2  # MONOCHROME1, modality = stored * 2 - 100
    write_dicom(tmp_path / "a.dcm", stored, photometric="MONOCHROME1", slope=2.0, intercept=-100.0)
    np.testing.assert_array_equal(read_image(tmp_path / "a.dcm"), value)
    # a config window on modality values (255 - brightness) * 4 = 1020, 620, 220, 0: 400..800 spans
    # the full grey range, then MONOCHROME1 inverts it
    out = read_image(tmp_path / "a.dcm", window=(600, 400))
    np.testing.assert_array_equal(out, [[0, 255 - round(220 / 400 * 255)], [255, 255]])
    # the header's window when the config has none; MONOCHROME2 keeps its polarity
    write_dicom(tmp_path / "b.dcm", np.array([[0, 50], [100, 1000]]), window=(50, 100))
    np.testing.assert_array_equal(read_image(tmp_path / "b.dcm"), [[0, 128], [255, 255]])


def test_dicom_without_suffix_is_found_and_read(tmp_path):
    write_dicom(tmp_path / "IM0001", np.array([[0, 10], [20, 30]]))
    from synthetic_simplicity.data.images import is_image_file

    assert is_image_file(tmp_path / "IM0001")
    assert read_image(tmp_path / "IM0001").max() == 255


def test_unreadable_image_names_file_and_fix(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match=r"broken\.png: unreadable image .*re-save it as PNG or remove"):
        read_image(tmp_path / "broken.png")
    (tmp_path / "bad.dcm").write_bytes(b"\0" * 300)
    with pytest.raises(ImageReadError, match=r"bad\.dcm: not a readable DICOM file"):
        read_image(tmp_path / "bad.dcm")


def test_to_square_keeps_aspect_and_pads():
    img = np.full((10, 20), 200, np.uint8)
    out = to_square(img, 8)
    assert out.shape == (8, 8) and out[0].max() == 0 and out[4].min() > 0  # padded rows above and below
    assert to_square(np.stack([img] * 3), 8).shape == (3, 8, 8)


# ---------------------------------------------------------------- listing and splits

def test_folder_and_csv_list_the_same_images(folder_tree, csv_tree):
    f = list_images(folder_data(folder_tree), CLASSES, "own.data")
    c = list_images(csv_data(csv_tree), CLASSES, "own.data")
    assert len(f) == len(c) == 60
    assert sorted(Path(p).relative_to(folder_tree).as_posix() for p in f["path"]) == \
        sorted(Path(p).relative_to(csv_tree).as_posix() for p in c["path"])
    assert (f["label"].value_counts() == 30).all() and f["subject"].nunique() == 10
    assert sorted(f["subject"].unique()) == sorted(c["subject"].unique())


def test_split_is_patient_disjoint_and_seeded(folder_tree):
    frame = list_images(folder_data(folder_tree), CLASSES, "own.data")
    split = assign_split(frame, CLASSES, 0.1, 0.3, 7, "x")
    for subject, rows in frame.groupby("subject").groups.items():
        assert len(set(split[rows])) == 1, subject  # each subject holds both classes, 3 images each
    assert {int(v) for v in split} == set(SPLITS.values())
    np.testing.assert_array_equal(split, assign_split(frame, CLASSES, 0.1, 0.3, 7, "x"))
    assert not np.array_equal(split, assign_split(frame, CLASSES, 0.1, 0.3, 8, "x"))


def test_csv_split_column_is_kept(tmp_path, csv_tree):
    table = pd.read_csv(csv_tree / "real.csv")
    table["split"] = np.where(table["subject"].isin(["s000", "s001"]), "test", "train")
    table.to_csv(tmp_path / "real.csv", index=False)
    frame = list_images(csv_data(csv_tree, csv=str(tmp_path / "real.csv"), root=str(csv_tree)), CLASSES, "own.data")
    split = assign_split(frame, CLASSES, 0.1, 0.2, 0, "x")
    np.testing.assert_array_equal(split == SPLITS["test"], table["split"].to_numpy() == "test")
    assert (split == SPLITS["val"]).any()  # validation subjects are carved out of the train rows


@pytest.mark.parametrize("layout", ["folder", "csv"])
def test_own_real_and_import_synthetic_write_image_sets(tmp_path, folder_tree, csv_tree, layout):
    root, data = (folder_tree, folder_data(folder_tree)) if layout == "folder" else (csv_tree, csv_data(csv_tree))
    jobs.own_real(str(tmp_path / "real.h5"), "own", data, 0, threads=2, progress=False)
    real = read_imageset(tmp_path / "real.h5")
    assert real.images.shape == (60, 16, 16) and real.class_names == CLASSES
    assert (real.source == SOURCES["real"]).all() and set(real.split.tolist()) == set(SPLITS.values())
    assert_patient_disjoint(real)
    jobs.import_synthetic(str(tmp_path / "real.h5"), str(tmp_path / "synthetic.h5"), "own", pool_spec(root, layout),
                          data, ASSEMBLY, 0, threads=2, progress=False)
    pool = read_imageset(tmp_path / "synthetic.h5")
    assert pool.images.shape == (60, 16, 16) and pool.class_names == CLASSES
    assert (pool.source == SOURCES["synthetic"]).all()
    assert set(pool.split.tolist()) == {SPLITS["train"], SPLITS["test"]}
    # the fixture's generator lifts the black background: its images are brighter at the border
    assert pool.images[:, 0].mean() > real.images[:, 0].mean() + 5


def test_rgb_dataset_is_n_c_h_w(tmp_path):
    root = write_own_tree(tmp_path / "t", per_class=12, channels="rgb")
    data = folder_data(root, channels="rgb")
    jobs.own_real(str(tmp_path / "real.h5"), "own", data, 0, progress=False)
    real = read_imageset(tmp_path / "real.h5")
    assert real.images.shape == (24, 3, 16, 16)
    # the warm tint survives: the red channel reaches white, the blue one stops near 0.6 * 255 + 25
    assert real.images[:, 0].max() > 240 > 200 > real.images[:, 2].max()


def test_dicom_dataset_reads_like_its_png_twin(tmp_path):
    png = write_own_tree(tmp_path / "png", per_class=12)
    dcm = write_own_tree(tmp_path / "dcm", per_class=12, dicom=True)
    assert any(p.suffix == "" for p in (dcm / "real" / "three").iterdir())  # suffix-less DICOM listed too
    for name, root in (("png", png), ("dcm", dcm)):
        jobs.own_real(str(tmp_path / f"{name}.h5"), "own", folder_data(root), 0, progress=False)
    a, b = read_imageset(tmp_path / "png.h5"), read_imageset(tmp_path / "dcm.h5")
    order_a, order_b = np.argsort(a.key), np.argsort([k.removesuffix(".dcm") + ".png" for k in b.key])
    diff = np.abs(a.images[order_a].astype(int) - b.images[order_b].astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.5  # rounding in the rescale, min-max scaling and the resize


def test_mixed_sizes_are_fine(folder_tree):
    sizes = {Image.open(p).size for p in (folder_tree / "real" / "three").glob("*.png")}
    assert len(sizes) == 3  # 28, 34 and 40 px images in one class folder: listed and resized alike


# ---------------------------------------------------------------- malformed input

def test_missing_class_folder(tmp_path, folder_tree):
    with pytest.raises(OwnDataError, match=r"real/seven: class folder missing .*set own\.data\.classes"):
        list_images(folder_data(folder_tree), ["three", "seven"], "own.data")


def test_empty_class_folder(tmp_path):
    (tmp_path / "real" / "three").mkdir(parents=True)
    (tmp_path / "real" / "eight").mkdir()
    (tmp_path / "real" / "eight" / "notes.txt").write_text("x")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "real" / "three" / "s000_0.png")
    with pytest.raises(OwnDataError, match=r"real/eight: no images \(PNG, JPEG, TIFF, NIfTI or DICOM\)"):
        list_images(folder_data(tmp_path), CLASSES, "own.data")


def test_root_not_a_folder(tmp_path):
    with pytest.raises(OwnDataError, match=r"nowhere: not found or not a folder; set own\.data\.root"):
        list_images(folder_data(tmp_path, root=str(tmp_path / "nowhere")), CLASSES, "own.data")


def test_subject_regex_that_does_not_match(folder_tree):
    with pytest.raises(OwnDataError, match=r"subject_regex 'patient-\(\\\\d\+\)' does not match 's000_0\.png'"):
        list_images(folder_data(folder_tree, subject_regex=r"patient-(\d+)"), CLASSES, "own.data")


def write_table(tmp_path, rows, columns=("path", "label", "subject")) -> dict:
    pd.DataFrame(rows, columns=list(columns)).to_csv(tmp_path / "t.csv", index=False)
    return {"format": "csv", "csv": str(tmp_path / "t.csv"), "root": None}


def test_unknown_label_names_lines(tmp_path, csv_tree):
    table = pd.read_csv(csv_tree / "real.csv")
    table.loc[[3, 9], "label"] = "nine"
    table.to_csv(tmp_path / "t.csv", index=False)
    spec = {"format": "csv", "csv": str(tmp_path / "t.csv"), "root": str(csv_tree)}
    with pytest.raises(OwnDataError, match=r"t\.csv: label 'nine' on line\(s\) 5, 11 is not one of the classes"):
        list_images(spec, CLASSES, "own.data")


def test_duplicate_paths_name_both_lines(tmp_path, csv_tree):
    table = pd.read_csv(csv_tree / "real.csv")
    table = pd.concat([table, table.iloc[[4]]], ignore_index=True)
    table.to_csv(tmp_path / "t.csv", index=False)
    spec = {"format": "csv", "csv": str(tmp_path / "t.csv"), "root": str(csv_tree)}
    with pytest.raises(OwnDataError, match=rf"s001_1\.png is listed on lines 6 and {len(table) + 1}; list every image once"):
        list_images(spec, CLASSES, "own.data")


def test_missing_csv_columns_and_files(tmp_path, csv_tree):
    spec = write_table(tmp_path, [["a.png", "three"]], ("file", "label"))
    with pytest.raises(OwnDataError, match=r"no column\(s\) \['path'\] .*needs path and label"):
        list_images(spec, CLASSES, "own.data")
    spec = write_table(tmp_path, [["gone.png", "three", "s1"], ["gone2.png", "eight", "s1"]])
    with pytest.raises(OwnDataError, match=r"2 listed image\(s\) not found, first .*gone\.png \(line\(s\) 2, 3\)"):
        list_images(spec, CLASSES, "own.data")


def test_bad_split_value_in_a_pool(tmp_path, csv_tree):
    table = pd.read_csv(csv_tree / "synthetic.csv").assign(split="train")
    table.loc[0, "split"] = "val"
    table.to_csv(tmp_path / "s.csv", index=False)
    spec = {"source": "csv", "csv": str(tmp_path / "s.csv"), "root": str(csv_tree)}
    with pytest.raises(OwnDataError, match=r"split 'val' on line\(s\) 2 is not one of \['train', 'test'\]; "
                                           r"a synthetic pool's validation images are held out"):
        list_images(spec, CLASSES, "own.synthetic", pool=True)


def test_class_without_test_images_after_split(tmp_path, csv_tree):
    table = pd.read_csv(csv_tree / "real.csv")
    table["split"] = np.where(table["label"] == "three", "train", "test")
    table.to_csv(tmp_path / "t.csv", index=False)
    spec = {"format": "csv", "csv": str(tmp_path / "t.csv"), "root": str(csv_tree)}
    # each subject holds both classes, so this split puts every subject in two splits
    with pytest.raises(OwnDataError, match=r"t\.csv: patient s000 has images hinted both 'train' and 'test'"):
        assign_split(list_images(spec, CLASSES, "x"), CLASSES, 0.0, 0.2, 0, "t.csv")
    table.drop(columns="subject").to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(OwnDataError, match=r"class 'three' has no test images after the split \(30 images in all\)"):
        assign_split(list_images(spec, CLASSES, "x"), CLASSES, 0.0, 0.2, 0, "t.csv")


def test_pool_too_small_names_the_numbers(tmp_path, folder_tree):
    data = folder_data(folder_tree)
    jobs.own_real(str(tmp_path / "real.h5"), "own", data, 0, progress=False)
    with pytest.raises(OwnDataError, match=r"every alpha takes 500 training images per class from each pool.*"
                                           r"real 21/21 and synthetic \d+/\d+; add synthetic images or lower "
                                           r"assembly\.per_class"):
        jobs.import_synthetic(str(tmp_path / "real.h5"), str(tmp_path / "s.h5"), "own", pool_spec(folder_tree), data,
                              {"per_class": 500, "val_fraction": 0.1}, 0, progress=False)
    assert not (tmp_path / "s.h5").exists()  # checked before anything is written


def test_unreadable_image_leaves_no_image_set(tmp_path):
    root = write_own_tree(tmp_path / "t", per_class=12)
    (root / "real" / "eight" / "s002_1.png").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match=r"s002_1\.png: unreadable image"):
        jobs.own_real(str(tmp_path / "real.h5"), "own", folder_data(root), 0, progress=False)
    assert not (tmp_path / "real.h5").exists()
