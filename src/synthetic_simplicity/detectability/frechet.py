"""The Fréchet distance between two sets of feature vectors, each summarised by a Gaussian (FID's formula).

The features come from a classifier trained on this dataset's real training images (Inception
weights cannot be downloaded offline and describe 28x28 grey digits badly), so the number is a
domain Fréchet distance: comparable across pools of one dataset, not with published FIDs.
"""

from __future__ import annotations

import numpy as np


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_gaussians(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """|mu1 - mu2|² + Tr(S1 + S2 - 2 (S1 S2)^½): the 2-Wasserstein distance² between two Gaussians."""
    # Tr((S1 S2)^½) is the sum of the square roots of the eigenvalues of S1 S2, which are real and >= 0 for
    # two covariance matrices; unlike a matrix square root this stays finite for the singular covariances of
    # small samples.
    eig = np.linalg.eigvals(np.atleast_2d(s1) @ np.atleast_2d(s2)).real
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig, 0, None)).sum())
    return max(value, 0.0)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_gaussians(*gaussian(a), *gaussian(b))
