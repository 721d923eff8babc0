"""Real CAMUS echocardiography (2CH vs 4CH apical view) from either public layout, into an ImageSet.

Layouts (detected from ``camus.data.root``, see /work/shared/reference/papers.md §3.1-3.2):

* 2023 NIfTI release ``CAMUS_public``: ``database_nifti/patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES}.nii.gz``,
  ``..._half_sequence.nii.gz``, YAML ``Info_{2CH,4CH}.cfg`` and ``database_split/subgroup_*.txt``.
* 2019 challenge release: ``[training/]patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES}.mhd`` + ``.raw``,
  optional ``..._sequence.mhd``, ``key: value`` ``Info_{2CH,4CH}.cfg``.

Orientation: both layouts store the same voxel order (x fastest). nibabel indexes it as (W, H[, F]), so
NIfTI frames are transposed; numpy reads a MetaImage raw buffer naturally as (F, H, W), so MHD frames are
used as they are. Both give the (H, W) view SimpleITK's GetArrayFromImage shows (fan apex at the top).
Affines / TransformMatrix are ignored (the releases store identity directions).
"""

from __future__ import annotations

import logging
import re
import zlib
from pathlib import Path

import numpy as np

from ..core.errors import PipelineError
from ..core.imageset import SOURCES, SPLITS, ImageSet
from .folders import describe

log = logging.getLogger(__name__)

CLASS_NAMES = ["2CH", "4CH"]  # label = index
VIEWS = ("2CH", "4CH")
FRAMES = ("ed_es", "half_sequence")
QUALITY_ORDER = {"Poor": 0, "Medium": 1, "Good": 2}
SPLIT_FILES = {"train": "subgroup_training.txt", "val": "subgroup_validation.txt",
               "test": "subgroup_testing.txt"}
PATIENT_RE = re.compile(r"^patient(\d+)$")
REGISTRATION_HINT = (
    "CAMUS needs a free registration: download the 2019 challenge release (MetaImage .mhd/.raw) from "
    "https://www.creatis.insa-lyon.fr/Challenge/camus/ or the 2023 NIfTI release (CAMUS_public) from "
    "https://humanheart-project.creatis.insa-lyon.fr/database/, then set camus.data.root to the folder "
    "holding database_nifti/patientNNNN/patientNNNN_2CH_ED.nii.gz (2023; database_nifti itself also works) "
    "or patientNNNN/patientNNNN_2CH_ED.mhd (2019; that folder or its parent holding training/)"
)
# numpy dtypes of the MetaImage element types (byte order applied from the header).
MET_TYPES = {"MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_INT": "i4",
             "MET_UINT": "u4", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}


class CamusError(PipelineError, RuntimeError):
    """A one-line, user-facing problem with CAMUS input or configuration."""


# ---------------------------------------------------------------- layout detection

def _patient_dirs(folder: Path) -> list[Path]:
    """patientNNNN sub-folders, in patient-number order."""
    try:
        dirs = [p for p in folder.iterdir() if p.is_dir() and PATIENT_RE.match(p.name)]
    except OSError:
        return []
    return sorted(dirs, key=lambda p: (int(PATIENT_RE.match(p.name).group(1)), p.name))


def _kind_of(folder: Path) -> str | None:
    """'nifti' / 'mhd' when the first patient folder holding a recognisable still says so."""
    for p in _patient_dirs(folder)[:5]:  # a few, in case the first one is an empty stub
        if any(p.glob(f"{p.name}_*_E[DS].nii.gz")):
            return "nifti"
        if any(p.glob(f"{p.name}_*_E[DS].mhd")):
            return "mhd"
    return None


def detect_layout(root) -> tuple[str, Path]:
    """("nifti" | "mhd", folder holding the patientNNNN folders) for the folder ``camus.data.root`` names."""
    if root is None or str(root).strip() == "":
        raise CamusError(f"camus.data.root is not set. {REGISTRATION_HINT}")
    path = Path(str(root)).expanduser()
    if not path.exists():
        raise CamusError(f"camus.data.root='{root}' does not exist. {REGISTRATION_HINT}")
    if not path.is_dir():
        raise CamusError(f"camus.data.root='{root}' is a file, not a folder. {REGISTRATION_HINT}")
    # Candidates in preference order: the NIfTI release, then the folder itself, then a 2019 training/.
    for cand, want in ((path / "database_nifti", "nifti"), (path, None), (path / "training", "mhd")):
        if cand.is_dir():
            kind = _kind_of(cand)
            if kind is not None and want in (None, kind):
                return kind, cand
    n_pat = len(_patient_dirs(path))
    if n_pat:
        found = (f"it holds {n_pat} patient folders but {_patient_dirs(path)[0].name} has no "
                 f"{_patient_dirs(path)[0].name}_2CH_ED.nii.gz or .mhd (incomplete download?)")
    else:
        found = f"it contains {describe(path)}, none like patientNNNN/patientNNNN_2CH_ED.{{nii.gz,mhd}}"
    raise CamusError(f"camus.data.root='{root}': {found}. {REGISTRATION_HINT}")


# ---------------------------------------------------------------- readers

def _scalar(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_info(path) -> dict:
    """An Info_{2CH,4CH}.cfg as a dict: YAML (2023) first, else ``key: value`` lines (2019)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise CamusError(f"{path}: view info file is missing; the patient folder is incomplete, "
                         "download CAMUS again") from None
    except OSError as e:
        raise CamusError(f"{path}: cannot read view info file ({e.strerror or e})") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and data:
        return {str(k).strip(): v for k, v in data.items()}
    info = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise CamusError(f"{path}: line {n} {line[:40]!r} is not 'key: value'; "
                             "the file is corrupt, download CAMUS again")
        info[key.strip()] = _scalar(value.strip())
    if not info:
        raise CamusError(f"{path}: view info file is empty (expected ED, ES, NbFrame, ImageQuality, ...)")
    return info


def _flag(value: str | None) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def read_mhd(path) -> np.ndarray:
    """A MetaImage (.mhd + raw file, or LOCAL data) as an array shaped reversed(DimSize), e.g. (F, H, W)."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise CamusError(f"{path}: cannot read MetaImage header ({e.strerror or e})") from e
    header, pos, data_at = {}, 0, None
    while pos < len(blob):  # "Key = Value" lines; ElementDataFile is the last key by the format's rule
        end = blob.find(b"\n", pos)
        end = len(blob) if end < 0 else end
        line, pos = blob[pos:end].decode("latin-1").strip(), end + 1
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise CamusError(f"{path}: not a MetaImage header (line {line[:40]!r} is not 'Key = Value')")
        header[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            data_at = pos
            break

    def need(key: str) -> str:
        if key not in header:
            raise CamusError(f"{path}: MetaImage header lacks {key}; the file is corrupt, download it again")
        return header[key]

    if header.get("ObjectType", "Image") != "Image":
        raise CamusError(f"{path}: ObjectType {header['ObjectType']!r} is not Image")
    try:
        ndims = int(need("NDims"))
        dims = [int(v) for v in need("DimSize").split()]
        channels = int(header.get("ElementNumberOfChannels", 1))
        header_size = int(header.get("HeaderSize", 0))
    except ValueError as e:
        raise CamusError(f"{path}: malformed MetaImage header ({e})") from e
    if len(dims) != ndims or min(dims, default=0) < 1:
        raise CamusError(f"{path}: DimSize {dims} does not match NDims {ndims}")
    if channels != 1:
        raise CamusError(f"{path}: {channels}-channel images are not supported (CAMUS is greyscale)")
    etype = need("ElementType")
    if etype not in MET_TYPES:
        raise CamusError(f"{path}: ElementType {etype} unsupported (supported: {', '.join(MET_TYPES)})")
    msb = _flag(header.get("ElementByteOrderMSB", header.get("BinaryDataByteOrderMSB", "False")))
    dtype = np.dtype(MET_TYPES[etype]).newbyteorder(">" if msb else "<")
    source = need("ElementDataFile")
    if source == "LOCAL":
        raw_path, raw = path, blob[data_at:]
    elif source.startswith("LIST") or "%" in source:
        raise CamusError(f"{path}: multi-file ElementDataFile {source!r} is not supported")
    else:
        raw_path = path.parent / source
        try:
            raw = raw_path.read_bytes()
        except OSError as e:
            raise CamusError(f"{raw_path}: cannot read the raw data of {path.name} ({e.strerror or e}); "
                             "download CAMUS again") from e
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if _flag(header.get("CompressedData")):
        try:
            raw = zlib.decompress(raw[max(header_size, 0):])
        except zlib.error as e:
            raise CamusError(f"{raw_path}: corrupt compressed data ({e}); download it again") from e
    elif header_size == -1:  # -1 = the data are the last bytes of the file
        raw = raw[-expected:] if len(raw) >= expected else raw
    else:
        raw = raw[header_size:]
    if len(raw) != expected:
        raise CamusError(f"{raw_path}: holds {len(raw)} data bytes but {path.name} (DimSize {dims}, {etype}) "
                         f"needs exactly {expected}; the file is truncated or corrupt, download it again")
    return np.frombuffer(raw, dtype=dtype).reshape(dims[::-1]).astype(dtype.newbyteorder("="))


def _read_nifti(path: Path) -> np.ndarray:
    import nibabel as nib

    if not path.is_file():
        raise CamusError(f"{path}: file is missing; the patient folder is incomplete, download CAMUS again")
    try:
        # dataobj keeps the stored dtype (uint8 in CAMUS) and applies any scl_slope; same axes as get_fdata().
        return np.asanyarray(nib.load(str(path)).dataobj)
    except Exception as e:  # noqa: BLE001 - nibabel, gzip and zlib raise many types for one bad file
        raise CamusError(f"{path}: unreadable NIfTI file ({type(e).__name__}: {e}); download it again") from e


def _squeeze_from(a: np.ndarray, keep: int, trailing: bool) -> np.ndarray:
    """Drop singleton axes beyond the first (trailing) / before the last (leading) ``keep`` axes."""
    while a.ndim > keep and a.shape[-1 if trailing else 0] == 1:
        a = a[..., 0] if trailing else a[0]
    return a


def read_view(layout: str, patient_dir, patient: str, view: str, frames: str) -> list[np.ndarray]:
    """Upright (H, W) frames of one view: [ED, ES] stills or every frame of the (half) sequence."""
    patient_dir = Path(patient_dir)
    if view not in VIEWS:
        raise CamusError(f"view must be one of {list(VIEWS)}, got {view!r}")
    if frames not in FRAMES:
        raise CamusError(f"camus.data.frames must be one of {list(FRAMES)}, got {frames!r}")
    stem = patient_dir / f"{patient}_{view}"
    if layout == "nifti":
        if frames == "ed_es":
            out = []
            for phase in ("ED", "ES"):
                path = Path(f"{stem}_{phase}.nii.gz")
                a = _squeeze_from(_read_nifti(path), 2, trailing=True)
                if a.ndim != 2:
                    raise CamusError(f"{path}: a still must be 2-D (W, H), got shape {a.shape}; "
                                     "the file is not a CAMUS ED/ES image")
                out.append(a.T)  # (W, H) -> (H, W)
            return out
        path = Path(f"{stem}_half_sequence.nii.gz")
        a = _read_nifti(path)
        a = a[..., None] if a.ndim == 2 else _squeeze_from(a, 3, trailing=True)
        if a.ndim != 3:
            raise CamusError(f"{path}: a half sequence must be 3-D (W, H, F), got shape {a.shape}")
        return [a[:, :, f].T for f in range(a.shape[2])]
    if layout == "mhd":
        if frames == "ed_es":
            out = []
            for phase in ("ED", "ES"):
                path = Path(f"{stem}_{phase}.mhd")
                if not path.is_file():
                    raise CamusError(f"{path}: file is missing; the patient folder is incomplete, "
                                     "download CAMUS again")
                a = _squeeze_from(read_mhd(path), 2, trailing=False)
                if a.ndim != 2:
                    raise CamusError(f"{path}: a still must be 2-D (DimSize W H 1), got array shape {a.shape}; "
                                     "the file is not a CAMUS ED/ES image")
                out.append(a)  # (1, H, W) -> (H, W): already upright
            return out
        # The 2019 zip has no half sequences; some copies carry the full cycle as _sequence.mhd.
        path = Path(f"{stem}_sequence.mhd")
        if not path.is_file():
            raise CamusError(f"{path}: not found; the 2019 MetaImage release has no half sequences, "
                             "set camus.data.frames: ed_es (or use the 2023 NIfTI release)")
        a = read_mhd(path)
        a = a[None] if a.ndim == 2 else _squeeze_from(a, 3, trailing=False)
        if a.ndim != 3:
            raise CamusError(f"{path}: a sequence must be 3-D (DimSize W H F), got array shape {a.shape}")
        return list(a)
    raise CamusError(f"unknown CAMUS layout {layout!r} (expected 'nifti' or 'mhd')")


def to_square_uint8(frame: np.ndarray, size: int) -> np.ndarray:
    """A (size, size) uint8 image: aspect kept, longer side -> size (bilinear), shorter side zero-padded.

    Intensities: CAMUS stores 0..255 grey levels, so a frame whose values all lie in 0..255 is rounded and
    clipped (absolute brightness stays comparable across frames and patients); any other range is min-max
    scaled per frame to 0..255 (a constant frame becomes 0). NaNs count as 0.
    """
    from PIL import Image

    a = np.nan_to_num(np.asarray(frame, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if a.ndim != 2 or a.size == 0:
        raise CamusError(f"expected a non-empty 2-D frame, got shape {a.shape}")
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0 and hi <= 255:
        img = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    else:
        img = np.zeros(a.shape, np.uint8) if hi == lo else np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    h, w = img.shape
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    if (nh, nw) != (h, w):
        img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((nw, nh), Image.BILINEAR), np.uint8)
    out = np.zeros((size, size), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = img
    return out


# ---------------------------------------------------------------- splits

def _read_official_split(split_dir: Path) -> dict[str, str] | None:
    """patient -> split name from database_split/, or None when the folder is absent."""
    if not split_dir.is_dir():
        return None
    files = {name: split_dir / fname for name, fname in SPLIT_FILES.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise CamusError(f"{missing[0]}: official split list is missing (the others are in {split_dir}); "
                         f"restore it, or remove {split_dir} to use the seeded split (camus.data.split_seed)")
    where: dict[str, str] = {}
    for name, path in files.items():
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            pid = line.strip()
            if not pid or pid.startswith("#"):
                continue
            if not PATIENT_RE.match(pid):
                raise CamusError(f"{path}: line {n} {pid[:40]!r} is not a patient id like patient0001")
            if pid in where and where[pid] != name:
                raise CamusError(f"{path}: {pid} is also listed in {files[where[pid]]}; "
                                 "a patient must be in one split list only")
            where[pid] = name
    return where


def _seeded_split(patients: list[str], seed: int, val_fraction: float, test_fraction: float) -> dict[str, str]:
    n = len(patients)
    n_test = min(max(1, round(test_fraction * n)), n - 1)
    n_val = min(round(val_fraction * n), n - 1 - n_test)
    order = np.random.default_rng(seed).permutation(n)
    names = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    return {patients[i]: names[k] for k, i in enumerate(order)}


# ---------------------------------------------------------------- ImageSet

def _quality(info: dict, cfg: Path) -> str:
    q = str(info.get("ImageQuality", "")).strip().capitalize()
    if q not in QUALITY_ORDER:
        raise CamusError(f"{cfg}: ImageQuality {info.get('ImageQuality')!r} is not one of "
                         f"{list(QUALITY_ORDER)}; fix the file or set camus.data.min_quality: null")
    return q


def build_real(root, frames: str = "ed_es", image_size: int = 64, min_quality: str | None = None,
               split_seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1,
               max_patients: int | None = None, provenance: dict | None = None) -> ImageSet:
    """All CAMUS views as 2CH (0) / 4CH (1) square uint8 frames, split by patient."""
    if frames not in FRAMES:
        raise CamusError(f"camus.data.frames must be one of {list(FRAMES)}, got {frames!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise CamusError(f"camus.data.image_size must be a positive integer, got {image_size!r}")
    if min_quality is not None and min_quality not in QUALITY_ORDER:
        raise CamusError(f"camus.data.min_quality must be null or one of {list(QUALITY_ORDER)}, "
                         f"got {min_quality!r}")
    if not 0 < test_fraction < 1:
        raise CamusError(f"camus.data.test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if not 0 <= val_fraction < 1 or val_fraction + test_fraction >= 1:
        raise CamusError(f"camus.data.val_fraction must lie in [0, 1) with val_fraction + test_fraction "
                         f"< 1, got {val_fraction} + {test_fraction}")
    bad_max = isinstance(max_patients, bool) or not isinstance(max_patients, (int, np.integer)) \
        or max_patients < 2
    if max_patients is not None and bad_max:
        raise CamusError(f"camus.data.max_patients must be an integer of at least 2 (or null), "
                         f"got {max_patients!r}")

    layout, patients_dir = detect_layout(root)
    pdirs = _patient_dirs(patients_dir)
    if max_patients is not None:
        pdirs = pdirs[:max_patients]  # the first patients by number: deterministic and cheap
    patients = [p.name for p in pdirs]

    official = _read_official_split(patients_dir.parent / "database_split") if layout == "nifti" else None
    if official is not None:
        where = {p: official.get(p, "train") for p in patients}
        unlisted = [p for p in patients if p not in official]
        if unlisted:
            log.warning("CAMUS: %d patients are in no database_split list and go to train: %s%s",
                        len(unlisted), ", ".join(unlisted[:5]), " ..." if len(unlisted) > 5 else "")
    else:
        if len(patients) < 2:
            raise CamusError(f"{patients_dir}: {len(patients)} patient folder(s); a patient split needs "
                             "at least 2 (raise camus.data.max_patients)")
        # Split before the quality filter, so test patients do not move when camus.data.min_quality changes.
        where = _seeded_split(patients, int(split_seed), float(val_fraction), float(test_fraction))

    images, labels, subjects, splits = [], [], [], []
    dropped = 0
    for pdir in pdirs:
        pid = pdir.name
        for label, view in enumerate(VIEWS):
            cfg = pdir / f"Info_{view}.cfg"
            info = read_info(cfg)
            if min_quality is not None and QUALITY_ORDER[_quality(info, cfg)] < QUALITY_ORDER[min_quality]:
                dropped += 1
                continue
            view_frames = read_view(layout, pdir, pid, view, frames)
            if frames == "half_sequence" and str(info.get("NbFrame", len(view_frames))) != str(len(view_frames)):
                log.warning("CAMUS: %s/%s_%s sequence has %d frames but %s says NbFrame %s", pid, pid, view,
                            len(view_frames), cfg.name, info.get("NbFrame"))
            for fr in view_frames:
                images.append(to_square_uint8(fr, int(image_size)))
                labels.append(label)
                subjects.append(pid)
                splits.append(SPLITS[where[pid]])

    split = np.asarray(splits, np.uint8)
    counts = {name: int((split == code).sum()) for name, code in SPLITS.items()}
    for name in ("train", "test"):
        if counts[name] == 0:
            raise CamusError(f"the CAMUS {name} split is empty ({len(patients)} patients, "
                             f"{dropped} views dropped by camus.data.min_quality={min_quality!r}); "
                             "raise camus.data.max_patients or lower camus.data.min_quality")
    if counts["val"] == 0:
        log.warning("CAMUS: the val split is empty")
    subject = np.asarray(subjects, dtype=str)
    prov = {**(provenance or {}), "layout": layout, "patients_dir": str(patients_dir), "frames": frames,
            "image_size": int(image_size), "min_quality": min_quality,
            "split": "official" if official is not None else "seeded", "split_seed": int(split_seed),
            "val_fraction": float(val_fraction), "test_fraction": float(test_fraction),
            "max_patients": max_patients, "n_patients": len(patients), "n_views_dropped_quality": dropped,
            "intensity": "clip 0..255 when in range, else per-frame min-max",
            **{f"n_{k}": v for k, v in counts.items()},
            **{f"n_patients_{k}": len(set(subject[split == c])) for k, c in SPLITS.items()}}
    label_arr = np.asarray(labels, np.int64)
    x = np.stack(images) if images else np.zeros((0, int(image_size), int(image_size)), np.uint8)
    return ImageSet(images=x, label=label_arr, source=np.full(len(label_arr), SOURCES["real"], np.uint8),
                    split=split, dataset="camus", class_names=list(CLASS_NAMES), subject=subject,
                    provenance=prov)
