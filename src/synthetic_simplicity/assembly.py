"""Training and test sets for Study A as manifests (which rows of which pool), never image copies.

For a binary task with n images per class, α sets the mix (DESIGN.md §1):
class 1 takes α·n real and (1−α)·n synthetic images, class 2 the reverse.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from .atomic import atomic_output
from .imageset import SOURCES, SPLITS, ImageSet
from .seeds import derive_seed

POOLS = ("real", "synthetic")


class AssemblyError(ValueError):
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


def alpha_counts(alpha: float, n_per_class: int) -> dict[tuple[int, str], int]:
    """Exact counts per (class, source); class 2's real count equals class 1's synthetic count."""
    if not 0.0 <= alpha <= 1.0:
        raise AssemblyError(f"alpha {alpha} is outside [0, 1] (config key assembly.alphas)")
    k = int(np.floor(alpha * n_per_class + 0.5))  # round half up, the same on every platform
    return {(0, "real"): k, (0, "synthetic"): n_per_class - k,
            (1, "real"): n_per_class - k, (1, "synthetic"): k}


def _pool_rows(s: ImageSet, split: str, label: int) -> np.ndarray:
    return np.flatnonzero((s.split == SPLITS[split]) & (s.label == label))


def max_per_class(real: ImageSet, synthetic: ImageSet) -> int:
    """The largest n every α allows: each class may need n images from either pool."""
    return int(min(len(_pool_rows(p, "train", c)) for p in (real, synthetic) for c in (0, 1)))


def assemble_alpha(real: ImageSet, synthetic: ImageSet, alpha: float, n_per_class: int | None,
                   base_seed: int, run_seed: int) -> Manifest:
    """The training manifest for one α and one run seed.

    Rows come from a fixed per-(seed, pool, class) permutation and each α takes its first k, so the
    α grid varies only the mix, not which images are drawn.
    """
    if len(real.class_names) != 2:
        raise AssemblyError(f"Study A needs exactly 2 classes, got {real.class_names}")
    available = max_per_class(real, synthetic)
    n = available if n_per_class is None else n_per_class
    if n < 1 or n > available:
        raise AssemblyError(
            f"assembly.per_class={n_per_class} needs {n} training images per class from each pool, "
            f"but the smallest pool has {available}; lower assembly.per_class or sample more "
            f"(synthesis.train_per_class)")
    pool, index, label = [], [], []
    for (c, src), k in alpha_counts(alpha, n).items():
        s = real if src == "real" else synthetic
        rows = _pool_rows(s, "train", c)
        rng = np.random.default_rng(derive_seed(base_seed, "assembly", run_seed, src, c))
        chosen = np.sort(rng.permutation(rows)[:k])
        pool.append(np.full(k, SOURCES[src], np.uint8))
        index.append(chosen)
        label.append(np.full(k, c, np.int64))
    m = Manifest(np.concatenate(pool), np.concatenate(index), np.concatenate(label),
                 {"alpha": alpha, "run_seed": run_seed, "n_per_class": n})
    m.attrs["counts"] = m.counts(real.class_names)
    return m


def assemble_test(real: ImageSet, synthetic: ImageSet) -> Manifest:
    """Every real and synthetic test row: four cells, source uncorrelated with class."""
    pool, index, label = [], [], []
    for src, s in (("real", real), ("synthetic", synthetic)):
        rows = np.flatnonzero(s.split == SPLITS["test"])
        pool.append(np.full(len(rows), SOURCES[src], np.uint8))
        index.append(rows)
        label.append(s.label[rows])
    m = Manifest(np.concatenate(pool), np.concatenate(index), np.concatenate(label).astype(np.int64), {})
    m.attrs["counts"] = m.counts(real.class_names)
    if min(m.attrs["counts"].values()) == 0:
        raise AssemblyError(f"the test set has an empty cell: {m.attrs['counts']}")
    return m


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
