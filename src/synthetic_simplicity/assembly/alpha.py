"""Study A's training and test sets.

For a binary task with n images per class, α sets the mix (DESIGN.md §1):
class 1 takes α·n real and (1−α)·n synthetic images, class 2 the reverse.
"""

from __future__ import annotations

import numpy as np

from ..core.imageset import SOURCES, SPLITS, ImageSet
from ..core.seeds import derive_seed
from .manifest import AssemblyError, Manifest

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
