"""Tiny, format-true dataset trees for tests and demos: CAMUS (2023 NIfTI and 2019 MetaImage releases),
CheXpert (v1.0 and v1.0-small), MIMIC-CXR-JPG 2.0.0, and a user's own two-class images with the
user's own synthetic pool (folder or CSV layout; PNG, RGB PNG or DICOM).

    python -m synthetic_simplicity.data.fixtures {nifti,mhd} DIR [--patients 50]
    python -m synthetic_simplicity.data.fixtures chexpert DIR [--patients 50]
    python -m synthetic_simplicity.data.fixtures mimic DIR [--subjects 50]
    python -m synthetic_simplicity.data.fixtures {own-folder,own-csv,own-rgb,own-dicom} DIR [--per-class 200] [--digits 3 8]

writes a fake tree that the pipeline reads like the real one (`camus.data.root: DIR`, a CXR site's root).

CAMUS: every image is first drawn upright (H, W) and then stored the way the real release stores it:
NIfTI arrays as (W, H) / (W, H, F) (the upright image transposed, i.e. x fastest on disk), MetaImage raw
buffers as the upright (F, H, W) C-order bytes with ``DimSize = W H F``. Patient i has its own size, fan
brightness and frame count; 2CH is a narrow fan, 4CH a wide one; a 255 block marks the top-left corner.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

QUALITIES = ("Good", "Medium", "Poor")
VIEWS = ("2CH", "4CH")
SPLIT_NAMES = ("training", "validation", "testing")
DEFECT_PATIENT = "patient0001"  # every defect is planted in this patient's 2CH view


def patient_id(i: int) -> str:
    return f"patient{i:04d}"


def patient_size(i: int) -> tuple[int, int]:
    """(W, H), always portrait (W < H) and varying per patient, so a missed transpose changes the shape."""
    return 32 + 2 * (i % 5), 48 + 3 * (i % 4)


def n_frames(i: int) -> int:
    return 3 + i % 3


def quality(i: int, view: str) -> str:
    return QUALITIES[(i + VIEWS.index(view)) % 3]


def official_split(i: int) -> str:
    return {3: "validation", 4: "testing"}.get((i - 1) % 5, "training")


def upright_frame(i: int, view: str, t: int) -> np.ndarray:
    """Upright uint8 (H, W): gradient background, a view-specific fan from the top, a top-left 255 block."""
    w, h = patient_size(i)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 10 + 20 * x / w + 30 * y / h  # asymmetric in both axes
    half_angle = np.deg2rad(18 if view == "2CH" else 42)
    angle = np.arctan2(x - (w - 1) / 2, y + 1e-9)  # 0 straight down from the apex at the top centre
    fan = (np.abs(angle) <= half_angle) & (np.hypot(x - (w - 1) / 2, y) <= 0.9 * h)
    img[fan] = 80 + 9 * (i % 10) + 12 * t + (15 if view == "4CH" else 0)
    img[:4, :4] = 255
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def mask_frame(i: int, view: str, t: int) -> np.ndarray:
    """A gt-like mask (0 background, 1 LV) of the same upright shape."""
    return (upright_frame(i, view, t) >= 80).astype(np.uint8) * (upright_frame(i, view, t) < 255)


def sequence(i: int, view: str) -> np.ndarray:
    """Upright (F, H, W); frame 0 is ED, the last frame ES (half sequence ED -> ES)."""
    return np.stack([upright_frame(i, view, t) for t in range(n_frames(i))])


# ---------------------------------------------------------------- 2023 NIfTI release

def _save_nifti(path: Path, upright: np.ndarray) -> None:
    """Store an upright (H, W) or (F, H, W) array the way CAMUS_public does: (W, H) or (W, H, F)."""
    import nibabel as nib

    arr = upright.T if upright.ndim == 2 else np.transpose(upright, (2, 1, 0))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr), np.diag([0.3, 0.3, 1.0, 1.0])), str(path))


def _write_patient(pdir: Path, i: int, save, ext: str, sequence_name: str | None, info_tail: str) -> None:
    """Both views of patient i: ED/ES stills and masks, an optional sequence, and Info_<view>.cfg
    (shared keys, then the release's own keys in ``info_tail``)."""
    pid = pdir.name
    pdir.mkdir(parents=True, exist_ok=True)
    for view in VIEWS:
        seq = sequence(i, view)
        nb = len(seq)
        for phase, t in (("ED", 0), ("ES", nb - 1)):
            save(pdir / f"{pid}_{view}_{phase}{ext}", seq[t])
            save(pdir / f"{pid}_{view}_{phase}_gt{ext}", mask_frame(i, view, t))
        if sequence_name:
            save(pdir / f"{pid}_{view}_{sequence_name}{ext}", seq)
            save(pdir / f"{pid}_{view}_{sequence_name}_gt{ext}", np.stack([mask_frame(i, view, t) for t in range(nb)]))
        (pdir / f"Info_{view}.cfg").write_text(
            f"ED: 1\nES: {nb}\nNbFrame: {nb}\nSex: {'MF'[i % 2]}\nAge: {40 + i}\n"
            f"ImageQuality: {quality(i, view)}\n" + info_tail)


def write_nifti_tree(root, n_patients: int, with_half_sequence: bool = True, with_split: bool = True,
                     defect: str | None = None) -> Path:
    """``<root>/database_nifti/patientNNNN/...`` (+ ``database_split/``); returns root (= CAMUS_public).

    defect: None, "missing_cfg" (no Info_2CH.cfg), "3d_still" (2CH ED stored (W, H, 2)) or "corrupt_file"
    (2CH ED gzip cut short), all in DEFECT_PATIENT.
    """
    root = Path(root)
    base = root / "database_nifti"
    for i in range(1, n_patients + 1):
        _write_patient(base / patient_id(i), i, _save_nifti, ".nii.gz",
                       "half_sequence" if with_half_sequence else None,
                       f"EF: {50 + i}\nFrameRate: {30.0 + i}\n")
    if with_split:
        split = root / "database_split"
        split.mkdir(parents=True, exist_ok=True)
        for name in SPLIT_NAMES:
            ids = [patient_id(i) for i in range(1, n_patients + 1) if official_split(i) == name]
            (split / f"subgroup_{name}.txt").write_text("".join(p + "\n" for p in ids))
    _plant_nifti_defect(base / DEFECT_PATIENT, defect)
    return root


def _plant_nifti_defect(pdir: Path, defect: str | None) -> None:
    ed = pdir / f"{pdir.name}_2CH_ED.nii.gz"
    if defect is None:
        return
    if defect == "missing_cfg":
        (pdir / "Info_2CH.cfg").unlink()
    elif defect == "3d_still":
        _save_nifti(ed, np.stack([upright_frame(1, "2CH", 0)] * 2))
    elif defect == "corrupt_file":
        ed.write_bytes(ed.read_bytes()[:40])
    else:
        raise ValueError(f"unknown NIfTI defect {defect!r}")


# ---------------------------------------------------------------- 2019 MetaImage release

def _save_mhd(mhd: Path, upright: np.ndarray) -> None:
    """Header like the challenge files (DimSize = W H F, x fastest) plus the raw bytes next to it."""
    vol = upright[None] if upright.ndim == 2 else upright  # (F, H, W)
    f, h, w = vol.shape
    raw = mhd.with_suffix(".raw")
    mhd.write_text(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\n"
        "CenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\nElementSpacing = 0.308 0.154 1.54\n"
        f"DimSize = {w} {h} {f}\nElementType = MET_UCHAR\nElementDataFile = {raw.name}\n")
    raw.write_bytes(np.ascontiguousarray(vol, dtype=np.uint8).tobytes())


def write_mhd_tree(root, n_patients: int, with_sequence: bool = False, training_subfolder: bool = True,
                   defect: str | None = None) -> Path:
    """``<root>/training/patientNNNN/...`` (or ``<root>/patientNNNN/...``); returns root.

    defect: None, "missing_cfg", "truncated_raw" (2CH ED raw one row short) or "3d_still" (2CH ED with
    DimSize W H 2), all in DEFECT_PATIENT.
    """
    root = Path(root)
    base = root / "training" if training_subfolder else root
    for i in range(1, n_patients + 1):
        _write_patient(base / patient_id(i), i, _save_mhd, ".mhd", "sequence" if with_sequence else None,
                       f"LVedv: {80.0 + i}\nLVesv: {40.0 + i / 2}\nLVef: {50.0 + i}\n")
    pdir = base / DEFECT_PATIENT
    if defect == "missing_cfg":
        (pdir / "Info_2CH.cfg").unlink()
    elif defect == "truncated_raw":
        raw = pdir / f"{DEFECT_PATIENT}_2CH_ED.raw"
        raw.write_bytes(raw.read_bytes()[:-patient_size(1)[0]])
    elif defect == "3d_still":
        _save_mhd(pdir / f"{DEFECT_PATIENT}_2CH_ED.mhd", np.stack([upright_frame(1, "2CH", 0)] * 2))
    elif defect is not None:
        raise ValueError(f"unknown MetaImage defect {defect!r}")
    return root


# ---------------------------------------------------------------- chest X-rays (CheXpert, MIMIC-CXR-JPG)

CHEXPERT_COLUMNS = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum",
                    "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia",
                    "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]
MIMIC_LABELS = sorted(CHEXPERT_COLUMNS[5:])  # mimic-cxr-2.0.0-chexpert.csv lists them alphabetically
# Cycled per patient so every RACES category, an ethnicity suffix and the unknowns all occur in a few patients.
CHEXPERT_PRIMARY_RACES = ("White", "Black or African American", "White, non-Hispanic", "Asian", "Other",
                          "Native Hawaiian or Other Pacific Islander", "Black, non-Hispanic", "Asian, non-Hispanic",
                          "American Indian or Alaska Native", "Unknown", "White, Hispanic", "Patient Refused")
MIMIC_RACES = ("WHITE", "BLACK/AFRICAN AMERICAN", "ASIAN - CHINESE", "WHITE - OTHER EUROPEAN", "HISPANIC OR LATINO",
               "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER", "AMERICAN INDIAN/ALASKA NATIVE", "UNKNOWN")
MIMIC_IV_HOSP = "hosp"  # write_mimic_tree puts patients.csv.gz and admissions.csv.gz in root/hosp/


def cxr_labels(rng: np.random.Generator) -> dict[str, float]:
    """One study's findings in CheXpert's value convention: 1.0 (35 %), 0.0 (25 %), -1.0 (10 %), blank (30 %),
    so each label is positive in ~40 % of the images a classifier trains on."""
    values = rng.choice([1.0, 0.0, -1.0, np.nan], size=len(MIMIC_LABELS), p=[0.35, 0.25, 0.1, 0.3])
    return dict(zip(MIMIC_LABELS, values.tolist()))


def render_cxr(labels: dict[str, float], w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Upright uint8 (h, w) film stand-in whose pixels carry every finding, so a tiny classifier beats chance:
    noise, a central disc whose radius grows with Cardiomegaly, a bright bottom band for Pleural Effusion and
    a bright square per other finding on a 2x6 grid at the top; an uncertain (-1) finding is drawn at half
    strength. Positions are fractions of the size, so the signal survives any resize."""
    yy, xx = (np.mgrid[0:h, 0:w] + 0.5) / np.array([h, w], float)[:, None, None]
    strength = {f: 1.0 if v == 1 else 0.5 if v == -1 else 0.0 for f, v in labels.items()}
    img = 40 + 20 * rng.standard_normal((h, w))
    img[np.hypot((xx - 0.5) * w / h, yy - 0.62) < 0.12 + 0.1 * strength["Cardiomegaly"]] += 80
    img[yy > 0.86] += 120 * strength["Pleural Effusion"]
    others = [f for f in MIMIC_LABELS if f not in ("Cardiomegaly", "Pleural Effusion")]
    for k, name in enumerate(others):
        cy, cx = 0.1 + 0.17 * (k // 6), (k % 6 + 0.5) / 6
        img[(np.abs(yy - cy) < 0.06) & (np.abs(xx - cx) < 0.06)] += 150 * strength[name]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _save_cxr(path: Path, labels: dict[str, float], rng: np.random.Generator,
              size: tuple[int, int] = (48, 40)) -> tuple[int, int]:
    """A non-square JPEG of ``labels``, at most ``size`` = (width, height) and up to 8 pixels smaller in each
    direction (by default tiny: 40-48 wide, 32-40 high); returns (rows, columns)."""
    from PIL import Image

    w, h = size[0] - 8 + int(rng.integers(0, 9)), size[1] - 8 + int(rng.integers(0, 9))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_cxr(labels, w, h, rng)).save(path, quality=95)
    return h, w


def write_chexpert_tree(root, n_patients: int, small: bool = True, seed: int = 0, demographics: bool = True,
                        image_size: tuple[int, int] = (48, 40)) -> Path:
    """``root/CheXpert-v1.0[-small]/{train,valid}.csv`` + ``{train,valid}/patientNNNNN/studyK/viewM_*.jpg`` and
    ``root/CHEXPERT DEMO.csv``; returns root (the folder holding the release, as the real download unpacks).

    The last max(1, n // 10) patients are in valid/ with 0/1 labels only (radiologist consensus, no
    uncertainty); every third study also has a lateral view sharing the study's labels; patients 17, 34, ...
    have Sex "Unknown" in the label files (their GENDER in the demographics table is known). ``image_size``:
    the largest JPEG's (width, height), e.g. (320, 390) for CheXpert-small-like images in benchmarks.
    """
    root = Path(root)
    release = "CheXpert-v1.0-small" if small else "CheXpert-v1.0"
    rng = np.random.default_rng(seed)
    n_valid = max(1, n_patients // 10)
    rows = {"train": [], "valid": []}
    demo = []
    for i in range(1, n_patients + 1):
        split = "valid" if i > n_patients - n_valid else "train"
        pid, sex, age0 = f"patient{i:05d}", ("Female", "Male")[int(rng.integers(0, 2))], 18 + int(rng.integers(0, 70))
        demo.append({"PATIENT": pid, "GENDER": sex, "AGE_AT_CXR": age0,
                     "PRIMARY_RACE": CHEXPERT_PRIMARY_RACES[(i - 1) % len(CHEXPERT_PRIMARY_RACES)],
                     "ETHNICITY": ("Non-Hispanic/Non-Latino", "Hispanic/Latino", "Unknown")[i % 3]})
        for k in range(1, 1 + (1 if split == "valid" else 1 + i % 3)):
            labels = cxr_labels(rng)
            if split == "valid":
                labels = {f: float(v == 1) for f, v in labels.items()}
            views = [("view1_frontal", "Frontal", ("AP", "PA")[(i + k) % 2])]
            if (i + k) % 3 == 0:
                views.append(("view2_lateral", "Lateral", ""))
            for view, fl, appa in views:
                rel = f"{split}/{pid}/study{k}/{view}.jpg"
                _save_cxr(root / release / rel, labels, rng, image_size)
                rows[split].append({"Path": f"{release}/{rel}", "Sex": "Unknown" if i % 17 == 0 else sex,
                                    "Age": age0 + k - 1, "Frontal/Lateral": fl, "AP/PA": appa, **labels})
    for split, table in rows.items():
        pd.DataFrame(table, columns=CHEXPERT_COLUMNS).to_csv(root / release / f"{split}.csv", index=False)
    if demographics:
        pd.DataFrame(demo).to_csv(root / "CHEXPERT DEMO.csv", index=False)
    return root


def write_mimic_tree(root, n_subjects: int, seed: int = 0) -> Path:
    """The MIMIC-CXR-JPG 2.0.0 layout in root: ``mimic-cxr-2.0.0-{metadata,chexpert,split}.csv.gz`` and
    ``files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg``, plus MIMIC-IV ``hosp/patients.csv.gz`` and
    ``hosp/admissions.csv.gz`` (a subset of the real columns); returns root.

    Subject i: official split test when i % 10 in (8, 9), validate when 7, else train; 1-3 studies, each
    with a PA or AP image, every third study also a LATERAL one; study k is taken k - 1 years after
    anchor_year (so its age is anchor_age + k - 1); subject i has 1 + i % 3 admissions, the first with
    MIMIC_RACES[(i - 1) % 8] and the others UNKNOWN, except every 11th subject, who has none.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    meta, labels_rows, split_rows, patients, admissions = [], [], [], [], []
    for i in range(1, n_subjects + 1):
        sid = 10_000_000 + (i * 7_654_321) % 9_000_000  # 8 digits starting with 1, spread over p10..p18
        anchor_year = 2150 + i % 40
        split = {7: "validate", 8: "test", 9: "test"}.get(i % 10, "train")
        patients.append({"subject_id": sid, "gender": "FM"[int(rng.integers(0, 2))],
                         "anchor_age": 21 + int(rng.integers(0, 68)), "anchor_year": anchor_year,
                         "anchor_year_group": "2014 - 2016", "dod": ""})
        if i % 11:
            race = MIMIC_RACES[(i - 1) % len(MIMIC_RACES)]
            for a, r in enumerate([race, "UNKNOWN", "UNKNOWN"][:1 + i % 3]):
                admissions.append({"subject_id": sid, "hadm_id": 20_000_000 + 10 * i + a,
                                   "admittime": f"{anchor_year + a}-03-0{a + 1} 10:00:00",
                                   "admission_type": "EW EMER.", "insurance": "Other", "race": r})
        for k in range(1, 2 + i % 3):
            study = 50_000_000 + 1000 * i + k
            study_labels = cxr_labels(rng)
            labels_rows.append({"subject_id": sid, "study_id": study, **study_labels})
            frontal = ("PA", "AP")[(i + k) % 2]
            for view in [frontal] + (["LATERAL"] if (i + k) % 3 == 0 else []):
                dicom = "-".join(f"{int(rng.integers(0, 16**8)):08x}" for _ in range(5))
                rows, cols = _save_cxr(root / "files" / f"p{str(sid)[:2]}" / f"p{sid}" / f"s{study}" / f"{dicom}.jpg",
                                       study_labels, rng)
                procedure = "CHEST (PA AND LAT)" if frontal == "PA" else "CHEST (PORTABLE AP)"
                meta.append({"dicom_id": dicom, "subject_id": sid, "study_id": study,
                             "PerformedProcedureStepDescription": procedure, "ViewPosition": view,
                             "Rows": rows, "Columns": cols, "StudyDate": (anchor_year + k - 1) * 10000 + 506,
                             "StudyTime": 213014.531, "ProcedureCodeSequence_CodeMeaning": procedure,
                             "ViewCodeSequence_CodeMeaning": {"PA": "postero-anterior", "AP": "antero-posterior",
                                                              "LATERAL": "lateral"}[view],
                             "PatientOrientationCodeSequence_CodeMeaning": "Erect"})
                split_rows.append({"dicom_id": dicom, "study_id": study, "subject_id": sid, "split": split})
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(meta).to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    pd.DataFrame(labels_rows, columns=["subject_id", "study_id", *MIMIC_LABELS]).to_csv(
        root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)
    pd.DataFrame(split_rows).to_csv(root / "mimic-cxr-2.0.0-split.csv.gz", index=False)
    (root / MIMIC_IV_HOSP).mkdir(exist_ok=True)
    pd.DataFrame(patients).to_csv(root / MIMIC_IV_HOSP / "patients.csv.gz", index=False)
    pd.DataFrame(admissions, columns=["subject_id", "hadm_id", "admittime", "admission_type", "insurance",
                                      "race"]).to_csv(root / MIMIC_IV_HOSP / "admissions.csv.gz", index=False)
    return root


# ---------------------------------------------------------------- a user's own images

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
OWN_DIGITS = (3, 8)  # embedded MNIST digits stand in for the user's two classes, named in words
OWN_CLASSES = tuple(DIGIT_NAMES[d] for d in OWN_DIGITS)
IMAGES_PER_SUBJECT = 3  # a "patient" holds 3 images of each class, so a split must keep them together


def write_dicom(path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2", slope: float = 1.0,
                intercept: float = 0.0, window: tuple[float, float] | None = None) -> Path:
    """An uncompressed single-frame DICOM (Secondary Capture) of uint16 stored values ``pixels``,
    as a scanner writes it: the modality value is ``stored * slope + intercept``."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    path = Path(path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "OT", path.stem
    pixels = np.ascontiguousarray(pixels, np.uint16)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _fingerprint(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What gives a generator away: slightly soft, a grey haze lifted off the black background, grain."""
    from PIL import Image, ImageFilter

    soft = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(0.8)), np.float64)
    return np.clip(np.rint(18 + 0.9 * soft + rng.normal(0, 6, soft.shape)), 0, 255).astype(np.uint8)


def _upscaled(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), np.uint8)


def _tinted(img: np.ndarray) -> np.ndarray:
    """A warm RGB rendering (H, W, 3), so the channels differ."""
    return np.clip(np.stack([img, 0.85 * img + 10, 0.6 * img + 25], -1), 0, 255).astype(np.uint8)


def write_own_tree(root, layout: str = "folder", per_class: int = 200, channels: str = "grey",
                   dicom: bool = False, seed: int = 0, digits: tuple[int, int] = OWN_DIGITS) -> Path:
    """``root/real/<class>/`` and ``root/synthetic/<class>/`` of two embedded MNIST digits, named in words.

    Real images are ``s<subject>_<k>`` at 28, 34 or 40 px (mixed sizes, as user data is), 3 per subject
    and class, and subjects hold both classes; the "synthetic" pool is other images of the same
    digits with a generator's fingerprint (blur, haze, grain) at 32 px. ``layout="csv"`` also writes
    ``root/real.csv`` (path, label, subject) and ``root/synthetic.csv`` (path, label), paths relative
    to root. ``dicom=True`` stores the real images as MONOCHROME1 DICOM with a rescale (every fifth
    file without a suffix); ``channels="rgb"`` stores tinted RGB PNGs.
    """
    from PIL import Image

    from .mnist import load_embedded

    root = Path(root)
    images, labels = load_embedded()
    rng = np.random.default_rng(seed)
    real_rows, pool_rows = [], []
    for digit in digits:
        name = DIGIT_NAMES[digit]
        pick = np.flatnonzero(labels == digit)
        if 2 * per_class > len(pick):
            raise ValueError(f"per_class={per_class}: the embedded MNIST holds {len(pick)} images of digit {digit}, "
                             f"so at most {len(pick) // 2} per class")
        for i, index in enumerate(pick[:per_class]):
            img = _upscaled(images[index], (28, 34, 40)[i % 3])
            stem = f"s{i // IMAGES_PER_SUBJECT:03d}_{i % IMAGES_PER_SUBJECT}"
            if dicom:
                # stored = (value - intercept) / slope, inverted (MONOCHROME1: high stored values are dark)
                stored = ((255 - img.astype(np.int64)) * 4 + 100) // 2
                rel = Path("real", name, stem + ("" if i % 5 == 4 else ".dcm"))
                write_dicom(root / rel, stored, photometric="MONOCHROME1", slope=2.0, intercept=-100.0)
            else:
                rel = Path("real", name, stem + ".png")
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_tinted(img) if channels == "rgb" else img).save(root / rel)
            real_rows.append({"path": rel.as_posix(), "label": name, "subject": stem.split("_")[0]})
        for i, index in enumerate(pick[per_class : 2 * per_class]):
            img = _fingerprint(_upscaled(images[index], 32), rng)
            rel = Path("synthetic", name, f"sample_{i:04d}.png")
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_tinted(img) if channels == "rgb" else img).save(root / rel)
            pool_rows.append({"path": rel.as_posix(), "label": name})
    if layout == "csv":
        pd.DataFrame(real_rows).to_csv(root / "real.csv", index=False)
        pd.DataFrame(pool_rows).to_csv(root / "synthetic.csv", index=False)
    return root


def own_config_section(root, layout: str, channels: str = "grey", name: str = "own",
                       digits: tuple[int, int] = OWN_DIGITS) -> str:
    """The config lines that point a dataset section at a tree of ``write_own_tree``."""
    root = Path(root)
    data = (f"    format: folder\n    root: {root / 'real'}\n    subject_regex: '^(s[0-9]+)_'\n" if layout == "folder"
            else f"    format: csv\n    csv: {root / 'real.csv'}\n")
    pool = (f"    source: folder\n    root: {root / 'synthetic'}\n" if layout == "folder"
            else f"    source: csv\n    csv: {root / 'synthetic.csv'}\n")
    return (f"datasets: [{name}]\n{name}:\n  data:\n{data}    classes: [{', '.join(DIGIT_NAMES[d] for d in digits)}]\n"
            f"    channels: {channels}\n  synthetic:\n{pool}")


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Write a fake, format-true CAMUS, CheXpert or MIMIC-CXR-JPG tree, or "
                                            "a user's own two-class images with a synthetic pool (own-*).")
    p.add_argument("layout", choices=["nifti", "mhd", "chexpert", "mimic", "own-folder", "own-csv", "own-rgb",
                                      "own-dicom"])
    p.add_argument("root", type=Path)
    p.add_argument("--patients", type=int, default=50, help="CAMUS and CheXpert")
    p.add_argument("--subjects", type=int, default=50, help="MIMIC-CXR-JPG")
    p.add_argument("--per-class", type=int, default=200, help="own-*: real (and synthetic) images per class")
    p.add_argument("--digits", type=int, nargs=2, default=list(OWN_DIGITS), metavar=("A", "B"),
                   help="own-*: the two embedded MNIST digits that stand in for the classes")
    args = p.parse_args(argv)
    if args.layout.startswith("own-"):
        kind = args.layout.removeprefix("own-")
        layout = "csv" if kind == "csv" else "folder"
        channels = "rgb" if kind == "rgb" else "grey"
        digits = tuple(args.digits)
        write_own_tree(args.root, layout, args.per_class, channels, dicom=kind == "dicom", digits=digits)
        # The section alone on stdout, so `... > my.yaml` is a config file that runs as it is.
        print(f"wrote {args.root}; its config section (config/README.md: Your own data) follows", file=sys.stderr)
        print(own_config_section(args.root, layout, channels, digits=digits))
    elif args.layout == "chexpert":
        print(write_chexpert_tree(args.root, args.patients))
    elif args.layout == "mimic":
        print(write_mimic_tree(args.root, args.subjects))
    else:
        writer = write_nifti_tree if args.layout == "nifti" else write_mhd_tree
        print(writer(args.root, args.patients))


if __name__ == "__main__":
    main()
