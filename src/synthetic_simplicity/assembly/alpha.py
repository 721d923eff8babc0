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


def _has_val_split(real: ImageSet) -> bool:
    return all(len(_pool_rows(real, "val", c)) for c in (0, 1))


def pool_sizes(real: ImageSet, synthetic: ImageSet, val_fraction: float) -> tuple[int, int]:
    """(largest training n every α allows, validation images per class).

    Validation images are held out of the training pools: the real set's own validation split when
    it has one (CAMUS: other patients), else ``val_fraction`` of the smallest training pool, reserved
    from every pool; the synthetic pool always gives a reserve of the same size.
    """
    smallest = min(len(_pool_rows(p, "train", c)) for p in (real, synthetic) for c in (0, 1))
    if _has_val_split(real):
        v = min(len(_pool_rows(real, "val", c)) for c in (0, 1))
        synthetic_smallest = min(len(_pool_rows(synthetic, "train", c)) for c in (0, 1))
        real_smallest = min(len(_pool_rows(real, "train", c)) for c in (0, 1))
        return min(real_smallest, synthetic_smallest - v), v
    v = int(np.floor(val_fraction * smallest + 0.5))
    return smallest - v, v


def max_per_class(real: ImageSet, synthetic: ImageSet, val_fraction: float = 0.0) -> int:
    """The largest n every α allows: each class may need n images from either pool."""
    return pool_sizes(real, synthetic, val_fraction)[0]


def _mix(counts: dict, candidates: dict, run_seed: int, **attrs) -> Manifest:
    pool, index, label = [], [], []
    for (c, src), k in counts.items():
        pool.append(np.full(k, SOURCES[src], np.uint8))
        index.append(np.sort(candidates[(c, src)][:k]))
        label.append(np.full(k, c, np.int64))
    return Manifest(np.concatenate(pool), np.concatenate(index), np.concatenate(label),
                    {"run_seed": run_seed, **attrs})


def _candidates(real: ImageSet, synthetic: ImageSet, v: int, base_seed: int, run_seed: int) -> tuple[dict, dict]:
    """Per (class, source): the training rows in drawing order, and the held-out rows (see ``pool_sizes``)."""
    own_val = _has_val_split(real)
    train, val = {}, {}
    for src, s in (("real", real), ("synthetic", synthetic)):
        for c in (0, 1):
            rng = np.random.default_rng(derive_seed(base_seed, "assembly", run_seed, src, c))
            rows = rng.permutation(_pool_rows(s, "train", c))
            held = 0 if (src == "real" and own_val) else v
            train[(c, src)] = rows[: len(rows) - held]
            if src == "real" and own_val:
                val_rng = np.random.default_rng(derive_seed(base_seed, "assembly", run_seed, "real-val", c))
                val[(c, src)] = val_rng.permutation(_pool_rows(real, "val", c))
            else:
                val[(c, src)] = rows[len(rows) - held:]
    return train, val


def assemble_alpha(real: ImageSet, synthetic: ImageSet, alpha: float, n_per_class: int | None,
                   base_seed: int, run_seed: int, val_fraction: float = 0.0) -> tuple[Manifest, Manifest]:
    """The training and validation manifests for one α and one run seed, both with the α mix.

    Rows come from a fixed per-(seed, pool, class) permutation and each α takes its first k, so the
    α grid varies only the mix, not which images are drawn. Reserved validation rows are the last
    ones of the same permutations (see ``pool_sizes``), so they never meet the training rows.
    """
    if len(real.class_names) != 2:
        raise AssemblyError(f"Study A needs exactly 2 classes, got {real.class_names}")
    available, v = pool_sizes(real, synthetic, val_fraction)
    n = available if n_per_class is None else n_per_class
    if n < 1 or n > available:
        raise AssemblyError(
            f"assembly.per_class={n_per_class} needs {n} training images per class from each pool, "
            f"but the smallest pool has {available} (after holding out {v} validation images per class); "
            f"lower assembly.per_class or assembly.val_fraction, or sample more (synthesis.train_per_class)")
    own_val = _has_val_split(real)
    train, val = _candidates(real, synthetic, v, base_seed, run_seed)
    m = _mix(alpha_counts(alpha, n), train, run_seed, alpha=alpha, n_per_class=n)
    m.attrs["counts"] = m.counts(real.class_names)
    mv = _mix(alpha_counts(alpha, v), val, run_seed, alpha=alpha, n_per_class=v,
              source="real validation split + synthetic reserve" if own_val else "reserve of the training pools")
    mv.attrs["counts"] = mv.counts(real.class_names)
    return m, mv


def assemble_balanced(real: ImageSet, synthetic: ImageSet, per_cell: int, base_seed: int, run_seed: int,
                      val_fraction: float = 0.0) -> Manifest:
    """A held-out set with ``per_cell`` images in each class x source cell, for last-layer retraining.

    It is drawn from the rows ``assemble_alpha`` holds out of training for the same run seed (the
    validation reserve), never from the test images, so it meets no training image at any alpha.
    """
    _, v = pool_sizes(real, synthetic, val_fraction)
    _, val = _candidates(real, synthetic, v, base_seed, run_seed)
    smallest = min(len(rows) for rows in val.values())
    if not 1 <= per_cell <= smallest:
        raise AssemblyError(
            f"mitigation.dfr.per_cell={per_cell} asks for {per_cell} held-out images per class x source cell, "
            f"but the smallest cell of the held-out reserve has {smallest}; lower mitigation.dfr.per_cell, or "
            f"raise assembly.val_fraction (a real set with its own validation split, such as CAMUS, gives "
            f"its real cells from that split)")
    m = _mix({cell: per_cell for cell in val}, val, run_seed, per_cell=per_cell,
             source="the validation reserve, balanced over class x source")
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
