"""The classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017) of a synthetic pool against the real
images, and the class task on the same footing.

C2ST: a classifier learns "is this image synthetic?" on the training pools (real training split vs
the synthetic training pool, class-balanced), and is scored on the disjoint test pools: AUROC 0.5 means
the pools are indistinguishable, 1 that every synthetic image is recognised. The task reference trains
the same architecture with the same budget on the class task, on real training images, and is scored
on real test images: the shortcut is expected where the first is at least as easy as the second.
"""

from __future__ import annotations

import numpy as np

from ..core.seeds import derive_seed
from ..evaluation.auroc import auroc_ci


def balanced_rows(label: np.ndarray, real: np.ndarray, seed: int) -> np.ndarray:
    """Row indices with as many real as synthetic rows in every class (the smaller side decides);
    ``real`` marks the real rows. Drawn with a seeded permutation, returned sorted."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(label):
        sides = [rng.permutation(np.flatnonzero((label == c) & (real == r))) for r in (True, False)]
        n = min(len(s) for s in sides)
        keep += [s[:n] for s in sides]
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def scored(y: np.ndarray, score: np.ndarray, label: np.ndarray, subject: np.ndarray, class_names: list[str],
           n_boot: int, ci: float, seed: int) -> dict:
    """AUROC with its bootstrap CI, pooled and per class: {"pooled": {...}, "<class>": {...}}."""
    out = {}
    for name, rows in [("pooled", np.arange(len(y)))] + [(c, np.flatnonzero(label == k))
                                                         for k, c in enumerate(class_names)]:
        if len(np.unique(y[rows])) < 2:
            continue
        value, lo, hi = auroc_ci(y[rows], score[rows], subject[rows], n_boot, ci, derive_seed(seed, name))
        out[name] = {"auroc": value, "ci_low": lo, "ci_high": hi, "n": int(len(rows)),
                     "accuracy": float(((score[rows] > 0.5) == (y[rows] == 1)).mean())}
    return out


def two_sample_test(train_images: np.ndarray, train_label: np.ndarray, train_real: np.ndarray,
                    test_images: np.ndarray, test_label: np.ndarray, test_real: np.ndarray,
                    test_subject: np.ndarray, class_names: list[str], cfg: dict, seed: int, device, precision: str,
                    checkpoint) -> dict:
    """C2ST AUROC (synthetic = positive), pooled and per class, with CIs over test subjects."""
    from ..classifier.training import predict, train_classifier

    train = balanced_rows(train_label, train_real, derive_seed(seed, "train rows"))
    test = balanced_rows(test_label, test_real, derive_seed(seed, "test rows"))
    source = (~train_real[train]).astype(np.int64)
    model, _ = train_classifier(train_images[train], source, 2, cfg["architecture"], cfg, seed, device, precision,
                                checkpoint, section="detectability", progress=False)
    score = predict(model, test_images[test], 4 * cfg["batch_size"], device, precision)[:, 1]
    result = scored((~test_real[test]).astype(float), score, test_label[test], test_subject[test], class_names,
                    cfg["bootstrap"], cfg["ci"], seed)
    result["n_train"], result["n_test"] = int(len(train)), int(len(test))
    return result
