"""Chest X-ray sites: CheXpert (both releases), MIMIC-CXR-JPG and generic CSV reading, split files, patient
splits, Study B's conditioning vector, uncertain-label policies, image loading and errors."""

import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthetic_simplicity.data.cxr import (
    COND_NAMES,
    FINDINGS,
    RACES,
    CxrError,
    assign_splits,
    condition_vectors,
    label_matrix,
    load_image,
    read_site,
    training_targets,
)
from synthetic_simplicity.data.fixtures import write_chexpert_tree, write_mimic_tree
from synthetic_simplicity.core.imageset import SPLITS

N_PATIENTS, N_SUBJECTS = 20, 24


@pytest.fixture(scope="module")
def chx(tmp_path_factory):
    return write_chexpert_tree(tmp_path_factory.mktemp("chexpert"), N_PATIENTS)


@pytest.fixture(scope="module")
def mimic(tmp_path_factory):
    return write_mimic_tree(tmp_path_factory.mktemp("mimic"), N_SUBJECTS)


def chexpert_site(root, **kw):
    return {"format": "chexpert", "root": str(root), "csv": None, "demographics": None, "views": "frontal",
            "split_files": {}, "race_map": None, **kw}


def mimic_site(root, **kw):
    return {"format": "mimic", "root": str(root), "demographics": str(root / "hosp" / "patients.csv.gz"), **kw}


def chexpert_csv(root) -> pd.DataFrame:
    base = root / "CheXpert-v1.0-small"
    return pd.concat([pd.read_csv(base / "train.csv"), pd.read_csv(base / "valid.csv")], ignore_index=True)


def same(a, b):
    np.testing.assert_array_equal(np.asarray(a, float), np.asarray(b, float))  # NaN == NaN here


# ---------------------------------------------------------------- CheXpert

def test_both_chexpert_releases_and_root_spellings(tmp_path):
    small = write_chexpert_tree(tmp_path / "s", 4, small=True)
    full = write_chexpert_tree(tmp_path / "f", 4, small=False)
    for root, release in ((small, "CheXpert-v1.0-small"), (full, "CheXpert-v1.0"),
                          (full / "CheXpert-v1.0", "CheXpert-v1.0")):
        frame = read_site(chexpert_site(root))
        assert frame.attrs["release"] == release
        assert all(p.startswith(f"{tmp_path}/") and f"/{release}/" in p for p in frame.path)
        assert {p.split(f"/{release}/")[1].split("/")[0] for p in frame.path} == {"train", "valid"}
    renamed = (full / "CheXpert-v1.0").rename(tmp_path / "chexpertchestxrays-u20210408")
    assert read_site(chexpert_site(renamed)).attrs["release"] == "CheXpert-v1.0"  # from the Path column


def test_frontal_filter_labels_round_trip_and_sorting(chx):
    raw = chexpert_csv(chx)
    frame = read_site(chexpert_site(chx))
    frontal = raw[raw["Frontal/Lateral"] == "Frontal"]
    assert len(frame) == len(frontal) and all(p.endswith("_frontal.jpg") for p in frame.path)
    assert list(frame.path) == sorted(frame.path)
    assert len(read_site(chexpert_site(chx, views="all"))) == len(raw) > len(frontal)
    by_path = frontal.assign(path=[str(chx / p) for p in frontal.Path]).set_index("path").loc[frame.path]
    for f in FINDINGS:
        same(frame[f], by_path[f])
    labels = label_matrix(frame)
    assert labels.dtype == np.float32 and labels.shape == (len(frame), 14)
    assert {-1.0, 0.0, 1.0} <= set(np.unique(labels[~np.isnan(labels)])) and np.isnan(labels).any()
    assert frame.subject.iloc[0] == "patient00001" and frame.split_hint.isna().all()
    same(frame.age, by_path.Age)
    assert frame.race.isna().all()  # no demographics table


def test_demographics_join_race_map_and_sex_fallback(chx, caplog):
    demo = pd.read_csv(chx / "CHEXPERT DEMO.csv").set_index("PATIENT")
    frame = read_site(chexpert_site(chx, demographics=str(chx / "CHEXPERT DEMO.csv")))
    race = frame.groupby("subject").race.first()
    expect = {"White": "White", "White, non-Hispanic": "White", "Black or African American": "African American",
              "Asian, non-Hispanic": "Asian", "Native Hawaiian or Other Pacific Islander": "Pacific Islander",
              "American Indian or Alaska Native": "American Indian/Alaskan Native", "Other": None, "Unknown": None}
    for pid, r in race.items():
        if demo.PRIMARY_RACE[pid] in expect:
            assert r == expect[demo.PRIMARY_RACE[pid]], pid
    assert set(race.dropna()) == set(RACES)
    # patient00017's label rows say Sex "Unknown": the table's GENDER fills in.
    p17 = frame[frame.subject == "patient00017"]
    assert len(p17) and (p17.sex == demo.GENDER["patient00017"]).all()
    assert read_site(chexpert_site(chx)).query("subject == 'patient00017'").sex.isna().all()
    with caplog.at_level(logging.WARNING, logger="synthetic_simplicity.data.cxr"):
        custom = read_site(chexpert_site(chx, demographics=str(chx / "CHEXPERT DEMO.csv"),
                                         race_map={"white": "White", "Other": None}))
    assert list(custom.race == "White") == list(frame.subject.map(demo.PRIMARY_RACE) == "White")
    assert "race values are not in race_map" in caplog.text and "'Asian'" in caplog.text
    with pytest.raises(CxrError, match="race_map maps to 'Caucasian'"):
        read_site(chexpert_site(chx, race_map={"White": "Caucasian"}))


def test_demographics_xlsx(chx, tmp_path):
    pytest.importorskip("openpyxl")
    xlsx = tmp_path / "CHEXPERT DEMO.xlsx"
    pd.read_csv(chx / "CHEXPERT DEMO.csv").to_excel(xlsx, index=False)
    a = read_site(chexpert_site(chx, demographics=str(xlsx)))
    b = read_site(chexpert_site(chx, demographics=str(chx / "CHEXPERT DEMO.csv")))
    pd.testing.assert_frame_equal(a, b)


# ---------------------------------------------------------------- MIMIC-CXR-JPG

def test_mimic_joins_metadata_labels_split_and_demographics(mimic, tmp_path):
    meta = pd.read_csv(mimic / "mimic-cxr-2.0.0-metadata.csv.gz")
    labels = pd.read_csv(mimic / "mimic-cxr-2.0.0-chexpert.csv.gz")
    split = pd.read_csv(mimic / "mimic-cxr-2.0.0-split.csv.gz").set_index("dicom_id").split
    patients = pd.read_csv(mimic / "hosp" / "patients.csv.gz").set_index("subject_id")
    frame = read_site(mimic_site(mimic))
    frontal = meta[meta.ViewPosition.isin(["PA", "AP"])].merge(labels, on=["subject_id", "study_id"])
    assert len(frame) == len(frontal) < len(meta)
    dicom = frame.path.str.rsplit("/", n=1).str[1].str.removesuffix(".jpg")
    ref = frontal.set_index("dicom_id").loc[dicom]
    for f in FINDINGS:
        same(frame[f], ref[f])
    row = frame.iloc[0]
    sid, study = ref.subject_id.iloc[0], ref.study_id.iloc[0]
    assert row.path == str(mimic / "files" / f"p{str(sid)[:2]}" / f"p{sid}" / f"s{study}" / f"{dicom[0]}.jpg")
    assert row.subject == str(sid)
    assert list(frame.split_hint) == [{"validate": "val"}.get(s, s) for s in split.loc[dicom]]
    assert set(frame.split_hint) == {"train", "val", "test"}
    # age at the study = anchor_age + (study year - anchor_year); F/M -> Female/Male
    same(frame.age, patients.anchor_age.loc[ref.subject_id].to_numpy() + ref.StudyDate.to_numpy() // 10000
         - patients.anchor_year.loc[ref.subject_id].to_numpy())
    assert list(frame.sex) == [{"F": "Female", "M": "Male"}[g] for g in patients.gender.loc[ref.subject_id]]
    race = frame.groupby("subject").race.first()
    subject_ids = [10_000_000 + (i * 7_654_321) % 9_000_000 for i in range(1, N_SUBJECTS + 1)]
    assert race.get(str(subject_ids[10])) is None  # every 11th subject has no admission
    assert race[str(subject_ids[1])] == "African American"  # BLACK/AFRICAN AMERICAN once, UNKNOWN twice
    assert race[str(subject_ids[2])] == "Asian"  # ASIAN - CHINESE
    assert race[str(subject_ids[4])] is None  # HISPANIC OR LATINO carries no race
    adm = pd.read_csv(mimic / "hosp" / "admissions.csv.gz")
    adm = pd.concat([adm, pd.DataFrame({"subject_id": [subject_ids[2]], "race": ["WHITE"]})])
    adm.to_csv(tmp_path / "admissions.csv", index=False)  # subject 3 now has ASIAN - CHINESE and WHITE
    (tmp_path / "patients.csv.gz").write_bytes((mimic / "hosp" / "patients.csv.gz").read_bytes())
    conflict = read_site(mimic_site(mimic, demographics=str(tmp_path / "patients.csv.gz")))
    assert conflict.groupby("subject").race.first().get(str(subject_ids[2])) is None
    assert (conflict.race == "Asian").sum() < (frame.race == "Asian").sum()
    no_demo = read_site({**mimic_site(mimic), "demographics": None})
    assert no_demo.age.isna().all() and no_demo.sex.isna().all() and no_demo.race.isna().all()


# ---------------------------------------------------------------- generic CSV and split files

def test_generic_csv(chx, tmp_path):
    raw = chexpert_csv(chx).head(12)
    table = pd.DataFrame({"Path": raw.Path, "PID": raw.Path.str.split("/").str[2].str[7:].astype(int),
                          "Sex": raw.Sex, "Age": raw.Age, "Race": "White", "Frontal/Lateral": raw["Frontal/Lateral"],
                          "Atelectasis": raw.Atelectasis.fillna(0), "Cardiomegaly": raw.Cardiomegaly})
    table.to_csv(tmp_path / "eval.csv", index=False)
    frame = read_site({"format": "csv", "root": str(chx), "csv": str(tmp_path / "eval.csv"), "views": "all"})
    assert len(frame) == 12 and frame.path.iloc[0] == str(chx / raw.Path.iloc[0])
    assert frame.subject.iloc[0] == "1" and (frame.race == "White").all()
    same(frame.Cardiomegaly, raw.Cardiomegaly)
    assert frame["Edema"].isna().all()  # absent column
    assert len(read_site({"format": "csv", "root": str(chx), "csv": str(tmp_path / "eval.csv")})) == \
        (raw["Frontal/Lateral"] == "Frontal").sum()
    table.drop(columns=["Atelectasis", "Cardiomegaly"]).to_csv(tmp_path / "bare.csv", index=False)
    with pytest.raises(CxrError, match=r"bare\.csv: none of the 14 finding columns"):
        read_site({"format": "csv", "root": str(chx), "csv": str(tmp_path / "bare.csv")})


def test_split_files_drop_unlisted_and_set_hints(chx, mimic, tmp_path, caplog):
    train = read_site(chexpert_site(chx)).query("path.str.contains('/train/')")
    rel = train.path.str.split("CheXpert-v1.0-small/").str[1]
    pids = train.subject
    # Study B's lists name the full-resolution release; ours is -small: they still match.
    tr, ts = pids.isin(["patient00001", "patient00002", "patient00003"]), pids.isin(["patient00004", "patient00005"])
    pd.DataFrame({"Path": "CheXpert-v1.0/" + rel[tr], "PID": pids[tr]}).to_csv(tmp_path / "cxp_tr.csv.gz", index=False)
    pd.DataFrame({"Path": "CheXpert-v1.0/" + rel[ts], "PID": pids[ts]}).to_csv(tmp_path / "cxp_ts.csv.gz", index=False)
    with caplog.at_level(logging.INFO, logger="synthetic_simplicity.data.cxr"):
        frame = read_site(chexpert_site(chx, split_files={"train": str(tmp_path / "cxp_tr.csv.gz"),
                                                          "test": str(tmp_path / "cxp_ts.csv.gz")}))
    assert len(frame) == tr.sum() + ts.sum() and frame.attrs["n_dropped_unlisted"] > 0
    assert "listed in no split file dropped" in caplog.text
    assert set(frame[frame.split_hint == "train"].subject) == {"patient00001", "patient00002", "patient00003"}
    assert set(frame[frame.split_hint == "test"].subject) == {"patient00004", "patient00005"}
    # MIMIC: Study B's mimic_ts paths omit files/ and override the official split.
    m = read_site(mimic_site(mimic))
    pick = m.iloc[:5]
    pd.DataFrame({"Path": pick.path.str.split("/files/").str[1], "dicom_id": 0, "subject_id": 0,
                  "study_id": 0}).to_csv(tmp_path / "mimic_ts.csv", index=False)
    mts = read_site(mimic_site(mimic, split_files={"test": str(tmp_path / "mimic_ts.csv")}))
    assert list(mts.path) == list(pick.path) and (mts.split_hint == "test").all()
    with pytest.raises(CxrError, match=r"cxp_tr\.csv\.gz.*also listed in"):
        read_site(chexpert_site(chx, split_files={"train": str(tmp_path / "cxp_tr.csv.gz"),
                                                  "val": str(tmp_path / "cxp_tr.csv.gz")}))
    with pytest.raises(CxrError, match="split_files has key 'validate'"):
        read_site(chexpert_site(chx, split_files={"validate": str(tmp_path / "cxp_tr.csv.gz")}))


# ---------------------------------------------------------------- splits

def assert_patient_disjoint(frame, split):
    for subject in frame.subject.unique():
        assert len(set(split[frame.subject.to_numpy() == subject])) == 1, subject


def test_assign_splits_seeded_patient_disjoint_and_deterministic(chx):
    frame = read_site(chexpert_site(chx, views="all"))
    split = assign_splits(frame, 0.2, 0.3, seed=3)
    assert split.dtype == np.uint8 and set(split) == set(SPLITS.values())
    assert_patient_disjoint(frame, split)
    n_test = len(set(frame.subject[split == SPLITS["test"]]))
    assert n_test == round(0.3 * N_PATIENTS) and len(set(frame.subject[split == SPLITS["val"]])) == 4
    np.testing.assert_array_equal(split, assign_splits(frame, 0.2, 0.3, seed=3))
    assert any((assign_splits(frame, 0.2, 0.3, seed=s) != split).any() for s in (4, 5))
    with pytest.raises(CxrError, match="val_fraction and test_fraction"):
        assign_splits(frame, 0.5, 0.5, seed=0)


def test_assign_splits_keeps_hints_and_carves_val_from_train(chx, mimic):
    m = read_site(mimic_site(mimic))
    split = assign_splits(m, 0.1, 0.1, seed=0)  # official split has val: hints kept as they are
    assert list(split) == [SPLITS[h] for h in m.split_hint]
    frame = read_site(chexpert_site(chx))
    frame["split_hint"] = np.where(frame.subject <= "patient00014", "train", "test").astype(object)
    frame.loc[frame.subject == "patient00020", "split_hint"] = None  # unhinted: random split by fractions
    split = assign_splits(frame, 0.25, 0.0, seed=1)
    assert_patient_disjoint(frame, split)
    hinted_test = (frame.split_hint == "test").to_numpy()
    assert (split[hinted_test] == SPLITS["test"]).all()
    val = set(frame.subject[split == SPLITS["val"]])
    assert len(val) == 4 and val <= {f"patient{i:05d}" for i in range(1, 15)}  # 25 % of the 14 train patients
    np.testing.assert_array_equal(split, assign_splits(frame, 0.25, 0.0, seed=1))
    frame.loc[frame.index[:2], "split_hint"] = ["train", "test"]
    frame.loc[frame.index[:2], "subject"] = "patient00001"
    with pytest.raises(CxrError, match="patient patient00001 has images hinted both 'train' and 'test'"):
        assign_splits(frame, 0.1, 0.1, seed=0)


# ---------------------------------------------------------------- conditioning and targets

def test_condition_vector_layout():
    assert len(COND_NAMES) == 22 and COND_NAMES[:4] == ["age_decade", "sex:Female", "sex:Male",
                                                         "race:American Indian/Alaskan Native"]
    assert COND_NAMES[8:] == [f"finding:{f}" for f in FINDINGS]
    labels = {f: np.nan for f in FINDINGS}
    labels.update({"Pleural Other": 1.0, "Fracture": -1.0, "Support Devices": 0.0, "No Finding": 1.0})
    frame = pd.DataFrame([{"age": 67.0, "sex": "Female", "race": "Asian", **labels},
                          {"age": np.nan, "sex": None, "race": None, **labels}])
    v = condition_vectors(frame, uncertain=0.5)
    assert v.dtype == np.float32 and v.shape == (2, 22)
    expected = np.zeros(22, np.float32)
    expected[[0, 1, 7, 8, 9, 21]] = [6, 1, 1, 1, 0.5, 1]  # age 67 -> 6, Female, Asian, findings
    np.testing.assert_array_equal(v[0], expected)
    expected[[0, 1, 7]] = [np.nan, 0, 0]  # unknown age is its own value, not decade 0; sex and race all-zero
    np.testing.assert_array_equal(v[1], expected)
    child = condition_vectors(pd.DataFrame([{"age": 5.0, "sex": None, "race": None, **labels}]), uncertain=0.5)
    assert child[0, 0] == 0 and not np.isnan(child[0, 0])
    assert condition_vectors(frame, uncertain=0.0)[0, 9] == 0


def test_training_targets_policies():
    labels = np.array([[1.0, 0.0, -1.0, np.nan]], np.float32)
    same(training_targets(labels, "ignore"), [[1, 0, np.nan, 0]])
    same(training_targets(labels, "zeros"), [[1, 0, 0, 0]])
    same(training_targets(labels, "ones"), [[1, 0, 1, 0]])
    assert np.isnan(labels[0, 3])  # input untouched
    with pytest.raises(CxrError, match=r"'classifier\.uncertain' must be one of \['ignore', 'zeros', 'ones'\]"):
        training_targets(labels, "u-ones")


# ---------------------------------------------------------------- images

def test_load_image_keeps_aspect_and_pads_centred(tmp_path):
    img = np.full((20, 40), 200, np.uint8)  # landscape: 40 wide, 20 high
    img[:, :20] = 100  # left half darker, to check nothing is flipped
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = load_image(tmp_path / "wide.png", 32)
    assert out.shape == (32, 32) and out.dtype == np.uint8
    assert (out[:8] == 0).all() and (out[24:] == 0).all()  # 40x20 -> 32x16, centred: rows 8..23
    assert (out[8:24, :15] == 100).all() and (out[8:24, 17:] == 200).all()
    Image.fromarray(img.T.copy()).save(tmp_path / "tall.jpg", quality=100)
    tall = load_image(tmp_path / "tall.jpg", 32)
    assert (tall[:, :8] == 0).all() and (tall[:, 24:] == 0).all() and tall[:, 8:24].min() > 80
    rgb = np.stack([img] * 3, -1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png", 32), out)
    Image.fromarray((img.astype(np.uint16) * 20)).save(tmp_path / "deep.png")  # 16-bit: 2000 / 4000
    deep = load_image(tmp_path / "deep.png", 32)
    assert deep[8:24, :15].max() == 0 and deep[8:24, 17:].min() == 255  # min-max scaled
    (tmp_path / "bad.jpg").write_bytes((tmp_path / "tall.jpg").read_bytes()[:60])
    with pytest.raises(CxrError, match=r"bad\.jpg: unreadable image"):
        load_image(tmp_path / "bad.jpg", 32)


# ---------------------------------------------------------------- errors

def test_clear_errors(tmp_path):
    with pytest.raises(CxrError, match=r"config key 'x\.root' = '.*nowhere' does not exist; download CheXpert"):
        read_site(chexpert_site(tmp_path / "nowhere"), "x")
    with pytest.raises(CxrError, match=r"config key 'site\.root' is not set \(credentialed data is never"):
        read_site(chexpert_site(""))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CxrError, match=r"config key 'chexpert\.sites\.mimic\.root' = .*: expected "
                                       r"mimic-cxr-2\.0\.0-metadata\.csv\.gz \(or \.csv\) in it, found 1 entry: "
                                       r"notes\.txt; MIMIC-CXR-JPG needs PhysioNet"):
        read_site(mimic_site(tmp_path), "chexpert.sites.mimic")
    with pytest.raises(CxrError, match="'site.format' must be one of"):
        read_site({"format": "dicom", "root": str(tmp_path)})
    with pytest.raises(CxrError, match="'site.views' must be one of"):
        read_site(chexpert_site(tmp_path, views="lateral"))

    root = write_chexpert_tree(tmp_path / "c", 3)
    train = root / "CheXpert-v1.0-small" / "train.csv"
    first = pd.read_csv(train).Path.iloc[0]
    (root / first).unlink()
    (root / pd.read_csv(train).Path.iloc[1]).unlink()
    with pytest.raises(CxrError, match=rf"{first}: image listed in .*train\.csv or valid\.csv is missing "
                                       r"\(2 of \d+ missing\)"):
        read_site(chexpert_site(root, views="all"))
    table = pd.read_csv(train)
    table.drop(columns=["Frontal/Lateral"]).to_csv(train, index=False)
    with pytest.raises(CxrError, match=r"train\.csv: column 'Frontal/Lateral' is missing"):
        read_site(chexpert_site(root))
    table.assign(Edema="yes").to_csv(train, index=False)
    with pytest.raises(CxrError, match=r"train\.csv: column 'Edema' holds 'yes'; labels must be"):
        read_site(chexpert_site(root))
    with pytest.raises(CxrError, match=r"expected train\.csv in it or in CheXpert-v1\.0-small/ or CheXpert-v1\.0/, "
                                       r"found 2 entries: c/, notes\.txt"):
        read_site(chexpert_site(tmp_path))
    table.to_csv(train, index=False)
    with pytest.raises(CxrError, match=r"missing\.csv: file not found; give CheXpert's CHEXPERT DEMO table"):
        read_site(chexpert_site(root, views="all", demographics=str(tmp_path / "missing.csv")))
