"""One image file of a user's own dataset into a uint8 array: PNG, JPEG, TIFF, NIfTI or DICOM.

Intensities: 8-bit files keep their grey levels; 16-bit and float files are min-max scaled per image.
DICOM applies the rescale slope/intercept, then a window (``data.window`` first, else the file's
Window Center/Width, else the image's min-max), and inverts MONOCHROME1 so bright is dense everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import PipelineError

PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = PILLOW_SUFFIXES + NIFTI_SUFFIXES + DICOM_SUFFIXES
CHANNELS = ("grey", "rgb")


class ImageReadError(PipelineError, ValueError):
    """An image file cannot be read as the dataset's config says; the message names the file and fix."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _is_dicom(path: Path) -> bool:
    """DICOM files often have no suffix; the standard puts "DICM" at byte 128."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def is_image_file(path: str | Path) -> bool:
    path = Path(path)
    return _suffix(path) in IMAGE_SUFFIXES or (path.suffix == "" and _is_dicom(path))


def _scaled(a: np.ndarray) -> np.ndarray:
    """uint8 as is; anything else min-max scaled to 0..255 (a constant image becomes 0)."""
    if a.dtype == np.uint8:
        return a
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if hi == lo:
        return np.zeros(a.shape, np.uint8)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _windowed(a: np.ndarray, window) -> np.ndarray:
    center, width = float(window[0]), max(float(window[1]), 1e-6)
    lo = center - width / 2
    return np.rint(np.clip((a - lo) / width, 0, 1) * 255).astype(np.uint8)


def _first(value):
    """Window Center/Width may hold several values (one per preset); the first is the default."""
    if value is None:
        return None
    return float(value[0] if hasattr(value, "__len__") and not isinstance(value, (str, bytes)) else value)


def _read_dicom(path: Path, window) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
    except Exception as e:  # noqa: BLE001 - pydicom raises many types for one bad file
        raise ImageReadError(f"{path}: not a readable DICOM file ({type(e).__name__}: {e}); export it again "
                             f"or remove it from the dataset") from e
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        raise ImageReadError(f"{path}: a multi-frame DICOM ({ds.NumberOfFrames} frames); Study A takes one image "
                             f"per file, so export the frame you want as its own file")
    try:
        a = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - missing pixel data or a transfer syntax without a decoder
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise ImageReadError(f"{path}: pixel data cannot be decoded (transfer syntax {syntax}: {e}); save it "
                             f"uncompressed (e.g. dcmdjpeg/gdcmconv --raw) or install pylibjpeg") from e
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric.startswith("MONOCHROME"):
        a = a.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1) or 1) + float(
            getattr(ds, "RescaleIntercept", 0) or 0)
        header = (_first(getattr(ds, "WindowCenter", None)), _first(getattr(ds, "WindowWidth", None)))
        window = window if window is not None else (header if None not in header else None)
        out = _windowed(a, window) if window is not None else _scaled(a)
        return 255 - out if photometric == "MONOCHROME1" else out
    if a.ndim == 3 and a.shape[-1] == 3:  # RGB / YBR decoded to RGB by pydicom
        return _scaled(a)
    raise ImageReadError(f"{path}: photometric interpretation {photometric} with pixel shape {a.shape} is not "
                         f"supported; export the image as MONOCHROME2 or RGB")


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return np.asarray(img)
            if img.mode in ("L", "RGB"):
                return np.asarray(img, np.uint8)
            return np.asarray(img.convert("RGBA" if "A" in img.mode else "RGB"), np.uint8)[..., :3]
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ImageReadError(f"{path}: unreadable image ({type(e).__name__}: {e}); re-save it as PNG or remove "
                             f"it from the dataset") from e


def _read_nifti(path: Path) -> np.ndarray:
    import nibabel as nib

    try:
        a = np.asanyarray(nib.load(str(path)).dataobj)
    except Exception as e:  # noqa: BLE001 - nibabel, gzip and zlib raise many types for one bad file
        raise ImageReadError(f"{path}: unreadable NIfTI file ({type(e).__name__}: {e}); save it again") from e
    a = np.squeeze(a)
    if a.ndim != 2:
        raise ImageReadError(f"{path}: NIfTI of shape {a.shape}; Study A takes one 2-D image per file, so save "
                             f"the slice or frame you want as its own file")
    return a.T  # NIfTI stores (x, y); images are (rows, columns)


def read_image(path: str | Path, channels: str = "grey", window=None) -> np.ndarray:
    """uint8 (H, W) for ``grey`` or (3, H, W) for ``rgb``; colour images become grey by luminance."""
    path = Path(path)
    if channels not in CHANNELS:
        raise ImageReadError(f"channels must be one of {list(CHANNELS)}, got {channels!r}")
    if not path.is_file():
        raise ImageReadError(f"{path}: file is missing; restore it or remove it from the dataset")
    suffix = _suffix(path)
    if suffix in DICOM_SUFFIXES or (suffix not in IMAGE_SUFFIXES and _is_dicom(path)):
        a = _read_dicom(path, window)
    elif suffix in NIFTI_SUFFIXES:
        a = _scaled(_read_nifti(path))
    else:
        a = _scaled(_read_pillow(path))
    if a.ndim == 3 and a.shape[-1] == 3:
        if channels == "grey":
            grey = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.moveaxis(a, -1, 0))
    if a.ndim != 2 or a.size == 0:
        raise ImageReadError(f"{path}: image of shape {a.shape}; expected one 2-D grey or RGB image")
    return np.repeat(a[None], 3, axis=0) if channels == "rgb" else a


def to_square(image: np.ndarray, size: int) -> np.ndarray:
    """(size, size) or (3, size, size) uint8: aspect kept, longer side -> size, zero-padded."""
    from .camus import to_square_uint8

    if image.ndim == 2:
        return to_square_uint8(image, size)
    return np.stack([to_square_uint8(c, size) for c in image])
