"""What sets synthetic images apart, in image statistics: the radially averaged power spectrum, the
intensity histogram, the mean image, the background level and the share of high-frequency energy.

Images are uint8 (N, H, W) or (N, C, H, W); channels are averaged to one grey image first.
"""

from __future__ import annotations

import numpy as np


def grey(images: np.ndarray) -> np.ndarray:
    """(N, H, W) float64 grey levels 0..255."""
    a = np.asarray(images, dtype=np.float64)
    return a.mean(axis=1) if a.ndim == 4 else a


def _mean_power(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) mean power of the mean-removed images over the set, normalised by the pixel count (white noise
    of variance s² is flat at s²), and (H, W) each frequency's radius as a fraction of Nyquist."""
    x = grey(images)
    h, w = x.shape[1:]
    power = (np.abs(np.fft.fft2(x - x.mean(axis=(1, 2), keepdims=True))) ** 2).mean(axis=0) / (h * w)
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    return power, np.hypot(fy, fx) / 0.5  # radius 1 = Nyquist along an axis


def radial_power_spectrum(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(radius as a fraction of Nyquist (R,), mean power per radius (R,)) over the images.

    Each image's mean is removed first, so the spectrum describes structure, not brightness.
    """
    power, radius = _mean_power(images)
    h, w = power.shape
    bins = np.minimum((radius * (min(h, w) // 2)).round().astype(int), min(h, w) // 2)
    counts = np.bincount(bins.ravel())
    profile = np.bincount(bins.ravel(), weights=power.ravel()) / np.maximum(counts, 1)
    keep = np.arange(len(profile)) > 0  # the DC term is zero after removing the mean
    return np.arange(len(profile))[keep] / (min(h, w) // 2), profile[keep]


def high_frequency_share(images: np.ndarray, cutoff: float) -> float:
    """Share of the (mean-removed) spectral energy above ``cutoff`` x Nyquist."""
    power, radius = _mean_power(images)
    total = power.sum()
    return float(power[radius > cutoff].sum() / total) if total > 0 else 0.0


def intensity_histogram(images: np.ndarray, bins: int = 64) -> np.ndarray:
    """Share of pixels per grey-level bin over 0..255 (sums to 1)."""
    counts, _ = np.histogram(grey(images), bins=bins, range=(0, 256))
    return counts / max(counts.sum(), 1)


def background_mask(real: np.ndarray, level: float) -> np.ndarray:
    """(H, W) pixels whose mean over the real images is below ``level``: the background of this class
    (MNIST's black border, the dark outside of an echo fan)."""
    return grey(real).mean(axis=0) < level


def summary(images: np.ndarray, mask: np.ndarray, cutoff: float) -> dict:
    """The one-number statistics of a pool: mean intensity, background level and high-frequency share."""
    x = grey(images)
    return {"mean_intensity": float(x.mean()) if x.size else None,
            "background_level": float(x[:, mask].mean()) if x.size and mask.any() else None,
            "high_frequency_share": high_frequency_share(images, cutoff) if len(x) else None}
