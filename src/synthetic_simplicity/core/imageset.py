"""The HDF5 image-set contract shared by real and synthetic data (DESIGN.md §3).

Datasets: ``images`` uint8 (N, H, W) or (N, C, H, W); ``label`` int64 (N,) for single-label sets or
``labels`` float32 (N, L) for multi-label sets (1 positive, 0 negative, -1 uncertain, NaN not
mentioned, as in CheXpert); ``source`` uint8 (0 real, 1 synthetic); ``split`` uint8 (see SPLITS);
optional ``subject`` (strings), ``key`` (a stable row id such as the image path), ``seed`` (int64,
synthetic rows), ``cond`` (N, K), and for synthetic replicas ``origin`` (the real row they copy the
conditioning of) and ``replica``. File attributes: ``schema_version``, ``dataset``, ``class_names``
(the label names of a multi-label set), ``provenance`` (JSON) and ``fingerprint``: a digest of every
image and row array, so a resume key can name exactly which images a model was trained on.

Images are written in batches (``ImageSetWriter``) and read on demand (``H5Images``), so a
200,000-image chest X-ray set never has to fit in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .errors import PipelineError


# 2: files carry a content fingerprint; version-1 files are rebuilt, never resumed from.
SCHEMA_VERSION = 2
SPLITS = {"train": 0, "val": 1, "test": 2}
SOURCES = {"real": 0, "synthetic": 1}
# ~256 MNIST images (~200 kB) per chunk measured 4.4x smaller than raw at ~0.1 s per 10k images
# (DESIGN.md §6). Larger images get fewer per chunk, so reading one random image decompresses
# ~200 kB, never a 16 MB block of 256 chest X-rays.
CHUNK_BYTES = 256 * 28 * 28
MAX_CHUNK_IMAGES = 256
GZIP_LEVEL = 4
# Training reads random rows; below this size the whole image array is read once into memory,
# above it rows are read on demand (a 200,000-image 256x256 set is 13 GB).
IN_MEMORY_BYTES = 2 * 2**30
# Per-row arrays besides ``images``, in the order they are written.
ROW_ARRAYS = {"label": np.int64, "labels": np.float32, "source": np.uint8, "split": np.uint8,
              "subject": str, "key": str, "seed": np.int64, "cond": np.float32, "origin": np.int64,
              "replica": np.int64}


class ImageSetError(PipelineError, ValueError):
    """An image-set file does not follow the contract."""


@dataclass
class ImageSet:
    images: np.ndarray | None  # None when read with ``images=False``
    label: np.ndarray | None
    source: np.ndarray
    split: np.ndarray
    dataset: str
    class_names: list[str]
    subject: np.ndarray | None = None
    seed: np.ndarray | None = None
    cond: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)
    labels: np.ndarray | None = None
    key: np.ndarray | None = None
    origin: np.ndarray | None = None
    replica: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.source)

    def rows(self, mask: np.ndarray) -> "ImageSet":
        """The subset of rows selected by a boolean mask or an index array."""
        picked = {name: None if getattr(self, name) is None else getattr(self, name)[mask]
                  for name in ("images", *ROW_ARRAYS)}
        return ImageSet(**picked, dataset=self.dataset, class_names=list(self.class_names),
                        provenance=dict(self.provenance))


def library_versions() -> dict:
    """Versions of the libraries that shape the numbers, for provenance attributes."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("numpy", "h5py", "torch", "torchvision", "diffusers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _check(s: ImageSet) -> None:
    n = len(s.source)
    if s.images is not None and (s.images.dtype != np.uint8 or s.images.ndim not in (3, 4)):
        raise ImageSetError(f"images must be uint8 (N,H,W) or (N,C,H,W), got {s.images.dtype} {s.images.shape}")
    for name in ("images", *ROW_ARRAYS):
        a = getattr(s, name)
        if a is not None and len(a) != n:
            raise ImageSetError(f"'{name}' has {len(a)} rows, 'source' has {n}")
    if (s.label is None) == (s.labels is None):
        raise ImageSetError("an image set has exactly one of 'label' (single-label) or 'labels' (multi-label)")
    if s.label is not None and n and (s.label.min() < 0 or s.label.max() >= len(s.class_names)):
        raise ImageSetError(f"labels must lie in 0..{len(s.class_names) - 1} (class_names {s.class_names})")
    if s.labels is not None and s.labels.shape[1:] != (len(s.class_names),):
        raise ImageSetError(f"'labels' has shape {s.labels.shape}, expected (N, {len(s.class_names)}) for {s.class_names}")


def array_digest(*arrays) -> str:
    """A digest of arrays' shapes, dtypes and bytes (strings joined), the same on every platform."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind in "OUS":
            h.update(b"str" + "\0".join(map(str, a.ravel().tolist())).encode())
        else:
            h.update(f"{a.dtype.str}{a.shape}".encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def data_key(images) -> str:
    """The identity of exactly these images, for resume keys: an image set's fingerprint and the rows
    read from it (``H5Images``, ``PooledImages``), or the bytes of an in-memory array."""
    own = getattr(images, "data_key", None)
    return own() if own is not None else array_digest(images)


def chunk_images(image_shape: tuple[int, ...]) -> int:
    return int(np.clip(CHUNK_BYTES // int(np.prod(image_shape)), 1, MAX_CHUNK_IMAGES))


class ImageSetWriter:
    """Streams images into an image set batch by batch; a killed job resumes where it stopped.

    Images go into ``<path>.partial`` with a ``done`` counter flushed after every batch; the
    per-row arrays and attributes are written by ``finish``, which renames the file into place. A
    partial file written under a different ``key`` (another config) is discarded, never resumed.
    A digest chained over the batches (kept with ``done``) becomes the file's ``fingerprint``.
    """

    def __init__(self, path: str | os.PathLike, n: int, image_shape: tuple[int, ...], key: str = ""):
        self.path, self.n = Path(path), n
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.file = None
        if self.partial.is_file() and key:
            try:
                f = h5py.File(self.partial, "r+")
                if f.attrs.get("key") == key and f["images"].shape == (n, *image_shape):
                    self.file = f
                else:
                    f.close()
            except OSError:  # torn by a kill while the header was written: start again
                pass
        if self.file is None:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self.file = h5py.File(self.partial, "w")
            chunk = (max(1, min(chunk_images(image_shape), n)), *image_shape)
            # An empty set needs a resizable first axis: h5py refuses a chunk larger than the data.
            self.file.create_dataset("images", shape=(n, *image_shape), dtype=np.uint8, chunks=chunk,
                                     maxshape=(None, *image_shape) if n == 0 else None,
                                     compression="gzip", compression_opts=GZIP_LEVEL)
            self.file.attrs["key"] = key
            self.file.attrs["done"] = 0
            self.file.attrs["chain"] = ""
        self.done = int(self.file.attrs["done"])
        self.chain = str(self.file.attrs["chain"])

    def append(self, batch: np.ndarray) -> None:
        if self.done + len(batch) > self.n:
            raise ImageSetError(f"{self.path}: {self.done + len(batch)} images written, {self.n} expected")
        self.file["images"][self.done : self.done + len(batch)] = batch
        self.done += len(batch)
        self.chain = array_digest(np.frombuffer(self.chain.encode(), np.uint8), batch)
        self.file.attrs["done"] = self.done
        self.file.attrs["chain"] = self.chain
        self.file.flush()

    def finish(self, s: ImageSet) -> None:
        """Write the per-row arrays and attributes of ``s`` (its ``images`` are ignored) and commit."""
        if self.done != self.n:
            raise ImageSetError(f"{self.path}: only {self.done} of {self.n} images were written")
        _check(s)
        if len(s) != self.n:
            raise ImageSetError(f"{self.path}: {len(s)} rows of metadata for {self.n} images")
        f = self.file
        rows = []
        for name, dtype in ROW_ARRAYS.items():
            a = getattr(s, name)
            if a is None:
                continue
            if dtype is str:  # h5py refuses anything but strings here, so a bad row fails the write
                f.create_dataset(name, data=np.asarray(a, dtype=object), dtype=h5py.string_dtype())
                a = np.asarray(a).astype(str)
            else:
                a = np.asarray(a).astype(dtype)
                f.create_dataset(name, data=a)
            rows += [np.array(name), a]
        del f.attrs["key"], f.attrs["done"], f.attrs["chain"]
        f.attrs["fingerprint"] = array_digest(np.array(self.chain), np.array(f["images"].shape), *rows,
                                              np.array(s.dataset), np.array(s.class_names))
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["dataset"] = s.dataset
        f.attrs["class_names"] = json.dumps(list(s.class_names))
        f.attrs["provenance"] = json.dumps({"libraries": library_versions(), **s.provenance}, sort_keys=True)
        f.close()
        os.replace(self.partial, self.path)

    def close(self, discard: bool = False) -> None:
        """Keep an unfinished partial file for a resume, or ``discard`` it (nothing to resume)."""
        if self.file.id.valid:
            self.file.close()
        if discard:
            self.partial.unlink(missing_ok=True)


def write_imageset(path: str | os.PathLike, s: ImageSet) -> None:
    """Write an in-memory set; the rename at the end means a kill never leaves half a file."""
    _check(s)
    writer = ImageSetWriter(path, len(s), s.images.shape[1:])
    try:
        writer.append(s.images)
        writer.finish(s)
    finally:
        writer.close(discard=True)


def read_header(path: str | os.PathLike) -> tuple[str, list[str]]:
    """Dataset name and class names without reading any images (cheap for per-run jobs)."""
    with h5py.File(path, "r") as f:
        return str(f.attrs["dataset"]), json.loads(f.attrs["class_names"])


def read_imageset(path: str | os.PathLike, images: bool = True) -> ImageSet:
    """The whole set, or with ``images=False`` only the per-row arrays (see ``H5Images`` for those)."""
    path = Path(path)
    if not path.is_file():
        raise ImageSetError(f"{path}: no such image-set file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ImageSetError(f"{path}: not an HDF5 file ({e}); rebuild it") from e
    with f:
        missing = [k for k in ("images", "source", "split") if k not in f]
        if missing or f.attrs.get("schema_version") != SCHEMA_VERSION:
            raise ImageSetError(
                f"{path}: not an image set of schema version {SCHEMA_VERSION} "
                f"(missing {missing or 'none'}, version {f.attrs.get('schema_version')}); rebuild it"
            )
        # h5py returns variable-length strings as UTF-8 bytes; decode them (not numpy's ASCII astype).
        rows = {name: None if name not in f else (f[name].asstr()[()].astype(str) if dtype is str else f[name][()])
                for name, dtype in ROW_ARRAYS.items()}
        s = ImageSet(images=f["images"][()] if images else None, **rows, dataset=str(f.attrs["dataset"]),
                     class_names=json.loads(f.attrs["class_names"]), provenance=json.loads(f.attrs["provenance"]))
    _check(s)
    return s


class H5Images:
    """The ``images`` of an image-set file, read on demand: ``images[index_array]`` -> uint8 array.

    The file is opened lazily in the process that reads, so a DataLoader worker forked after
    construction gets its own handle (h5py handles must not cross a fork).
    """

    def __init__(self, path: str | os.PathLike, rows: np.ndarray | None = None):
        self.path = Path(path)
        with h5py.File(self.path, "r") as f:
            self.shape = f["images"].shape
            self.fingerprint = str(f.attrs.get("fingerprint", ""))
        self.rows = np.arange(self.shape[0]) if rows is None else np.asarray(rows)
        self._file, self._pid = None, None

    def __len__(self) -> int:
        return len(self.rows)

    def data_key(self) -> str:
        return array_digest(np.array(self.fingerprint), self.rows)

    def view(self, rows: np.ndarray) -> "H5Images":
        """A view of some rows (e.g. the training split), indexed from 0."""
        return H5Images(self.path, self.rows[rows])

    def __getitem__(self, index) -> np.ndarray:
        if self._pid != os.getpid():
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        rows = self.rows[np.atleast_1d(index)]
        unique, inverse = np.unique(rows, return_inverse=True)
        # One slice per run of consecutive rows: h5py's point selection (dset[unique]) read a shuffled
        # batch of 32 rows of 256x256 3-10x slower (docs/decisions.md, "Streaming").
        dset = self._file["images"]
        out = np.empty((len(unique), *dset.shape[1:]), dtype=dset.dtype)
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(unique)]):
            dset.read_direct(out, np.s_[unique[start] : unique[stop - 1] + 1], np.s_[start:stop])
        return out[inverse]


def open_images(path: str | os.PathLike, rows: np.ndarray | None = None):
    """The images of ``rows`` for training or prediction: an array when the file's images fit in
    ``IN_MEMORY_BYTES``, else an ``H5Images`` view that reads them on demand."""
    stream = H5Images(path, rows)
    if int(np.prod(stream.shape, dtype=np.int64)) > IN_MEMORY_BYTES:
        return stream
    with h5py.File(path, "r") as f:
        return f["images"][()][stream.rows]
