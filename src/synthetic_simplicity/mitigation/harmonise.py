"""Harmonisation of a synthetic pool towards the real one: the mean amplitude spectrum and the intensity
histogram of the synthetic images are matched to the real images', with both maps fitted on the
training splits of the two pools only and then applied to every synthetic image as the generator made it
(training and test pools alike, as a post-processing step of the generator would be).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import PipelineError

MATCHES = ("spectrum", "histogram")
CHUNK = 1024


def _channels(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, C, H, W) uint8 -> (N, C, H, W)."""
    return images[:, None] if images.ndim == 3 else images


def _mean_amplitude(images: np.ndarray) -> np.ndarray:
    """Mean |FFT| per channel and frequency, (C, H, W // 2 + 1)."""
    x = _channels(images)
    total = np.zeros((x.shape[1], x.shape[2], x.shape[3] // 2 + 1))
    for i in range(0, len(x), CHUNK):
        total += np.abs(np.fft.rfft2(x[i : i + CHUNK].astype(np.float64))).sum(0)
    return total / len(x)


def _apply_gain(images: np.ndarray, gain: np.ndarray) -> np.ndarray:
    x = _channels(images)
    out = np.empty(x.shape, np.uint8)
    for i in range(0, len(x), CHUNK):
        f = np.fft.rfft2(x[i : i + CHUNK].astype(np.float64)) * gain
        out[i : i + CHUNK] = np.clip(np.fft.irfft2(f, s=x.shape[2:]).round(), 0, 255)
    return out


def _histogram_lut(real: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """(C, 256) uint8: the grey value whose real quantile equals each synthetic value's quantile."""
    r, s = _channels(real), _channels(synthetic)
    lut = np.empty((r.shape[1], 256), np.uint8)
    for c in range(r.shape[1]):
        real_cdf = np.cumsum(np.bincount(r[:, c].ravel(), minlength=256)) / r[:, c].size
        synthetic_cdf = np.cumsum(np.bincount(s[:, c].ravel(), minlength=256)) / s[:, c].size
        lut[c] = np.clip(np.searchsorted(real_cdf, synthetic_cdf - 1e-12), 0, 255)
    return lut


def fit_harmonisation(real: np.ndarray, synthetic: np.ndarray, match: list[str]) -> dict:
    """The maps that bring ``synthetic`` to ``real`` (both uint8 training images): a per-frequency gain
    (real / synthetic mean amplitude) and then a per-channel grey-value lookup table."""
    unknown = sorted(set(match) - set(MATCHES))
    if unknown or not match:
        raise PipelineError(f"config key 'mitigation.harmonise.match' is {match}; list one or both of {MATCHES}")
    if real.shape[1:] != synthetic.shape[1:]:
        raise PipelineError(f"real images {real.shape[1:]} and synthetic images {synthetic.shape[1:]} differ in "
                            "shape; the pools must share one image size to be harmonised")
    fit = {}
    if "spectrum" in match:
        real_amplitude = _mean_amplitude(real)
        eps = 1e-6 * real_amplitude.max()
        fit["gain"] = (real_amplitude + eps) / (_mean_amplitude(synthetic) + eps)
        synthetic = _apply_gain(synthetic, fit["gain"]).reshape(synthetic.shape)
    if "histogram" in match:
        fit["lut"] = _histogram_lut(real, synthetic)
    return fit


def harmonise(images: np.ndarray, fit: dict) -> np.ndarray:
    """``images`` (uint8, the synthetic pool) with the fitted maps applied, same shape and dtype."""
    out = images
    if "gain" in fit:
        out = _apply_gain(out, fit["gain"]).reshape(images.shape)
    if "lut" in fit:
        x = _channels(out)
        out = np.stack([fit["lut"][c][x[:, c]] for c in range(x.shape[1])], axis=1).reshape(images.shape)
    return out
