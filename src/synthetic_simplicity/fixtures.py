"""Tiny, format-true CAMUS trees for tests and demos: the 2023 NIfTI and 2019 MetaImage releases.

    python -m synthetic_simplicity.fixtures {nifti,mhd} DIR [--patients 50]

writes a fake CAMUS tree that the pipeline reads like the real one (`camus.data.root: DIR`).

Every image is first drawn upright (H, W) and then stored the way the real release stores it:
NIfTI arrays as (W, H) / (W, H, F) (the upright image transposed, i.e. x fastest on disk), MetaImage raw
buffers as the upright (F, H, W) C-order bytes with ``DimSize = W H F``. Patient i has its own size, fan
brightness and frame count; 2CH is a narrow fan, 4CH a wide one; a 255 block marks the top-left corner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Write a fake, format-true CAMUS tree.")
    p.add_argument("layout", choices=["nifti", "mhd"])
    p.add_argument("root", type=Path)
    p.add_argument("--patients", type=int, default=50)
    args = p.parse_args(argv)
    writer = write_nifti_tree if args.layout == "nifti" else write_mhd_tree
    print(writer(args.root, args.patients))


if __name__ == "__main__":
    main()
