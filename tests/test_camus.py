"""CAMUS loading from both public layouts: detection, orientation, frames, quality, padding, splits, errors."""

import logging

import numpy as np
import pytest

from synthetic_simplicity.data.fixtures import (
    DEFECT_PATIENT,
    n_frames,
    official_split,
    patient_id,
    patient_size,
    quality,
    upright_frame,
    write_mhd_tree,
    write_nifti_tree,
)
from synthetic_simplicity.data.camus import (
    REGISTRATION_HINT,
    CamusError,
    build_real,
    detect_layout,
    read_info,
    read_mhd,
    read_view,
    to_square_uint8,
)
from synthetic_simplicity.core.imageset import SOURCES, SPLITS

N = 6
URL = "https://www.creatis.insa-lyon.fr/Challenge/camus/"


@pytest.fixture(scope="module")
def nifti_root(tmp_path_factory):
    return write_nifti_tree(tmp_path_factory.mktemp("nifti"), N)


@pytest.fixture(scope="module")
def mhd_root(tmp_path_factory):
    return write_mhd_tree(tmp_path_factory.mktemp("mhd"), N, with_sequence=True)


def assert_patient_disjoint(s):
    for pid in np.unique(s.subject):
        assert len(set(s.split[s.subject == pid].tolist())) == 1, pid


# ---------------------------------------------------------------- layout detection

def test_detect_both_layouts_and_root_spellings(nifti_root, mhd_root):
    assert detect_layout(nifti_root) == ("nifti", nifti_root / "database_nifti")
    assert detect_layout(str(nifti_root / "database_nifti")) == ("nifti", nifti_root / "database_nifti")
    assert detect_layout(mhd_root) == ("mhd", mhd_root / "training")
    assert detect_layout(mhd_root / "training") == ("mhd", mhd_root / "training")


@pytest.mark.parametrize("make, found", [
    (lambda tmp: None, "camus.data.root is not set"),
    (lambda tmp: "", "camus.data.root is not set"),
    (lambda tmp: tmp / "nowhere", "does not exist"),
    (lambda tmp: tmp, "contains 3 entries: a.txt, b/, c/, none like patientNNNN/"),
])
def test_root_errors_are_one_line_with_hint_and_finding(tmp_path, make, found):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    with pytest.raises(CamusError) as e:
        detect_layout(make(tmp_path))
    msg = str(e.value)
    assert "camus.data.root" in msg and URL in msg and REGISTRATION_HINT in msg and found in msg
    assert "\n" not in msg
    if found.startswith("contains"):
        assert "a.txt, b/, c/" in msg


# ---------------------------------------------------------------- orientation and frames

def test_both_layouts_give_the_same_upright_image(nifti_root, mhd_root):
    for i in (1, 2):
        pid = patient_id(i)
        w, h = patient_size(i)
        for view in ("2CH", "4CH"):
            a = read_view("nifti", nifti_root / "database_nifti" / pid, pid, view, "ed_es")
            b = read_view("mhd", mhd_root / "training" / pid, pid, view, "ed_es")
            assert len(a) == len(b) == 2
            for fa, fb in zip(a, b):
                assert fa.shape == fb.shape == (h, w)  # portrait: a missed transpose would be (w, h)
                assert np.array_equal(fa, fb)
                assert (fa[:4, :4] == 255).all()  # the block is top-left, not mirrored or rotated
                assert (fa[-4:, :4] != 255).all() and (fa[:4, -4:] != 255).all() and (fa[-4:, -4:] != 255).all()
            assert np.array_equal(a[0], upright_frame(i, view, 0))
            assert np.array_equal(a[1], upright_frame(i, view, n_frames(i) - 1))
    # The raw MetaImage array is (F, H, W) = reversed DimSize.
    raw = read_mhd(mhd_root / "training" / "patient0001" / "patient0001_2CH_ED.mhd")
    assert raw.shape == (1, patient_size(1)[1], patient_size(1)[0]) and raw.dtype == np.uint8


def test_build_real_same_images_from_both_layouts(nifti_root, mhd_root):
    a, b = build_real(nifti_root, image_size=16), build_real(mhd_root, image_size=16)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.label, b.label)
    assert np.array_equal(a.subject, b.subject)
    assert a.provenance["layout"] == "nifti" and b.provenance["layout"] == "mhd"


def test_ed_es_two_frames_per_view_per_patient(nifti_root):
    s = build_real(nifti_root, image_size=24)
    assert s.images.shape == (N * 2 * 2, 24, 24) and s.images.dtype == np.uint8
    assert s.dataset == "camus" and s.class_names == ["2CH", "4CH"]
    assert (s.source == SOURCES["real"]).all()
    for i in range(1, N + 1):
        rows = s.subject == patient_id(i)
        assert s.label[rows].tolist() == [0, 0, 1, 1]
    # 2CH (narrow fan) and 4CH (wide fan) differ.
    assert not np.array_equal(s.images[0], s.images[2])


@pytest.mark.parametrize("which", ["nifti", "mhd"])
def test_half_sequence_gives_nbframe_frames(nifti_root, mhd_root, which):
    root = nifti_root if which == "nifti" else mhd_root
    s = build_real(root, frames="half_sequence", image_size=16)
    for i in range(1, N + 1):
        rows = s.subject == patient_id(i)
        assert (s.label[rows] == 0).sum() == (s.label[rows] == 1).sum() == n_frames(i)
        info = read_info(root / ("database_nifti" if which == "nifti" else "training") / patient_id(i)
                         / "Info_4CH.cfg")
        assert info["NbFrame"] == n_frames(i)
    assert s.provenance["frames"] == "half_sequence"


def test_mhd_without_sequence_names_frames_key(tmp_path):
    root = write_mhd_tree(tmp_path, 2, with_sequence=False, training_subfolder=False)
    with pytest.raises(CamusError, match=r"_2CH_sequence\.mhd.*camus\.data\.frames"):
        build_real(root, frames="half_sequence")


# ---------------------------------------------------------------- info, quality, padding

def test_read_info_both_styles(nifti_root, mhd_root, tmp_path):
    a = read_info(nifti_root / "database_nifti" / "patient0002" / "Info_2CH.cfg")
    assert a["ED"] == 1 and a["NbFrame"] == n_frames(2) and a["ImageQuality"] == quality(2, "2CH")
    assert "EF" in a and "FrameRate" in a
    b = read_info(mhd_root / "training" / "patient0002" / "Info_4CH.cfg")
    assert b["ES"] == n_frames(2) and "LVef" in b
    odd = tmp_path / "Info_2CH.cfg"
    odd.write_text("ED: 3\nImageQuality: Poor\nNote: not: yaml\n")  # YAML fails; key: value lines do not
    assert read_info(odd) == {"ED": 3, "ImageQuality": "Poor", "Note": "not: yaml"}


def test_quality_filter(nifti_root):
    order = {"Poor": 0, "Medium": 1, "Good": 2}
    for mq in ("Poor", "Medium", "Good"):
        s = build_real(nifti_root, image_size=8, min_quality=mq, split_seed=0)
        for i in range(1, N + 1):
            rows = s.subject == patient_id(i)
            kept = sorted({int(v) for v in s.label[rows]})
            want = [k for k, v in enumerate(("2CH", "4CH")) if order[quality(i, v)] >= order[mq]]
            assert kept == want, (mq, i)
    assert len(build_real(nifti_root, image_size=8, min_quality="Poor")) == N * 4
    with pytest.raises(CamusError, match="camus.data.min_quality"):
        build_real(nifti_root, min_quality="good")


def test_square_padding_keeps_aspect():
    wide = np.full((10, 40), 200.0)
    out = to_square_uint8(wide, 20)
    assert out.shape == (20, 20) and out.dtype == np.uint8
    nonzero_rows = np.flatnonzero(out.any(axis=1))
    assert nonzero_rows.tolist() == list(range(7, 12))  # 40x10 -> 20x5, padded 7 above and 8 below
    assert (out[:7] == 0).all() and (out[12:] == 0).all()
    assert (out[7:12] == 200).all()  # in-range intensities are kept, not stretched
    tall = to_square_uint8(np.full((40, 10), 100, np.uint8), 20)
    assert (tall[:, :7] == 0).all() and (tall[:, 12:] == 0).all() and (tall[:, 7:12] == 100).all()
    # Out-of-range input is min-max scaled per frame.
    scaled = to_square_uint8(np.array([[-1.0, 1.0], [3.0, 3.0]]), 2)
    assert scaled.tolist() == [[0, 128], [255, 255]]


def test_image_size_and_frames_keys(nifti_root):
    with pytest.raises(CamusError, match="camus.data.image_size"):
        build_real(nifti_root, image_size=0)
    with pytest.raises(CamusError, match="camus.data.frames"):
        build_real(nifti_root, frames="all")


# ---------------------------------------------------------------- splits

def test_official_split_respected(nifti_root):
    s = build_real(nifti_root, image_size=8)
    assert s.provenance["split"] == "official"
    names = {"training": "train", "validation": "val", "testing": "test"}
    for i in range(1, N + 1):
        rows = s.subject == patient_id(i)
        assert set(s.split[rows].tolist()) == {SPLITS[names[official_split(i)]]}
    assert_patient_disjoint(s)
    assert s.provenance["n_train"] + s.provenance["n_val"] + s.provenance["n_test"] == len(s)


def test_unlisted_patient_goes_to_train_with_warning(tmp_path, caplog):
    root = write_nifti_tree(tmp_path, N, with_half_sequence=False)
    lst = root / "database_split" / "subgroup_testing.txt"
    assert lst.read_text().split() == ["patient0005"]
    lst.write_text("patient0005\n")
    val = root / "database_split" / "subgroup_validation.txt"
    val.write_text("")  # patient0004 now unlisted
    with caplog.at_level(logging.WARNING, logger="synthetic_simplicity.data.camus"):
        s = build_real(root, image_size=8)
    assert set(s.split[s.subject == "patient0004"].tolist()) == {SPLITS["train"]}
    assert "patient0004" in caplog.text


def test_seeded_split_without_lists(tmp_path):
    root = write_mhd_tree(tmp_path, 10)
    kw = dict(image_size=8, val_fraction=0.2, test_fraction=0.2)
    a, a2 = build_real(root, split_seed=0, **kw), build_real(root, split_seed=0, **kw)
    b = build_real(root, split_seed=1, **kw)
    assert a.provenance["split"] == "seeded"
    assert np.array_equal(a.split, a2.split)
    assert not np.array_equal(a.split, b.split)
    for s in (a, b):
        assert_patient_disjoint(s)
        per_patient = {p: int(s.split[s.subject == p][0]) for p in np.unique(s.subject)}
        counts = np.bincount(list(per_patient.values()), minlength=3)
        assert counts.tolist() == [6, 2, 2]
    # nifti without split lists also uses the seeded split; at least 1 test patient.
    nroot = write_nifti_tree(tmp_path / "n", 3, with_half_sequence=False, with_split=False)
    s = build_real(nroot, image_size=8, val_fraction=0.0, test_fraction=0.01)
    assert s.provenance["split"] == "seeded" and s.provenance["n_patients_test"] == 1


# ---------------------------------------------------------------- broken trees

@pytest.mark.parametrize("writer, defect, needle", [
    (write_nifti_tree, "missing_cfg", "Info_2CH.cfg"),
    (write_mhd_tree, "missing_cfg", "Info_2CH.cfg"),
    (write_mhd_tree, "truncated_raw", f"{DEFECT_PATIENT}_2CH_ED.raw"),
    (write_nifti_tree, "3d_still", f"{DEFECT_PATIENT}_2CH_ED.nii.gz"),
    (write_mhd_tree, "3d_still", f"{DEFECT_PATIENT}_2CH_ED.mhd"),
    (write_nifti_tree, "corrupt_file", f"{DEFECT_PATIENT}_2CH_ED.nii.gz"),
])
def test_broken_trees_name_the_file(tmp_path, writer, defect, needle):
    kw = {"with_half_sequence": False} if writer is write_nifti_tree else {}
    root = writer(tmp_path, 2, defect=defect, **kw)
    with pytest.raises(CamusError) as e:
        build_real(root, image_size=8)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    assert str(tmp_path) in msg  # the full path, so the user can find it
