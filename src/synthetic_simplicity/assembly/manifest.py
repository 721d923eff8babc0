"""Training and test sets as manifests (which rows of which pool), never image copies."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from ..core.atomic import atomic_output
from ..core.errors import PipelineError
from ..core.imageset import SOURCES, ImageSet, array_digest, data_key

POOLS = ("real", "synthetic")


class AssemblyError(PipelineError, ValueError):
    """The requested set cannot be built from the pools; the message says which key to change."""


@dataclass
class Manifest:
    pool: np.ndarray  # 0 real, 1 synthetic: which pool file a row comes from
    index: np.ndarray  # row in that pool file
    label: np.ndarray | None  # Study A's class; multi-label targets are read from the pools
    attrs: dict

    @property
    def source(self) -> np.ndarray:
        return self.pool

    def counts(self, class_names: list[str]) -> dict[str, int]:
        return {f"{c}·{s}": int(((self.label == k) & (self.pool == SOURCES[s])).sum())
                for k, c in enumerate(class_names) for s in POOLS}


def write_manifest(path: str | os.PathLike, m: Manifest) -> None:
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("pool", data=m.pool)
        f.create_dataset("index", data=m.index)
        if m.label is not None:
            f.create_dataset("label", data=m.label)
        f.attrs["attrs"] = json.dumps(m.attrs, sort_keys=True)


def read_manifest(path: str | os.PathLike) -> Manifest:
    with h5py.File(path, "r") as f:
        label = f["label"][()] if "label" in f else None
        return Manifest(f["pool"][()], f["index"][()], label, json.loads(f.attrs["attrs"]))


class PooledImages:
    """The images a manifest names, in manifest order, read by index from the two pools (arrays
    or ``imageset.H5Images``): ``pooled[index_array]`` -> uint8 array."""

    def __init__(self, m: Manifest, real, synthetic):
        self.m, self.pools = m, {SOURCES["real"]: real, SOURCES["synthetic"]: synthetic}
        first = real if len(real) else synthetic
        self.shape = (len(m.index), *first[np.arange(1)].shape[1:])

    def __len__(self) -> int:
        return len(self.m.index)

    def data_key(self) -> str:
        return array_digest(self.m.pool, self.m.index, np.array([data_key(p) for p in self.pools.values()]))

    def __getitem__(self, idx) -> np.ndarray:
        idx = np.atleast_1d(idx)
        out = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        for code, images in self.pools.items():
            rows = self.m.pool[idx] == code
            if rows.any():
                out[rows] = images[self.m.index[idx][rows]]
        return out


def gather(m: Manifest, real: ImageSet, synthetic: ImageSet) -> np.ndarray:
    """All images a manifest names, in manifest order, as one array."""
    return PooledImages(m, real.images, synthetic.images)[np.arange(len(m.index))]
