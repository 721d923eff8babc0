"""Augmentation that destroys pixel-level fingerprints of a generator: additive Gaussian noise, Gaussian
blur, contrast jitter and re-quantisation, each applied to an image with probability ``p``.

Images are float tensors in [-1, 1] (``core.runtime.images_to_tensor``); labels are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel, reflecting at the borders."""
    k = _gaussian_kernel(sigma).to(x.device)
    c, r = x.shape[1], len(k) // 2
    x = nn.functional.pad(x, (r, r, r, r), mode="reflect" if min(x.shape[-2:]) > r else "replicate")
    x = nn.functional.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return nn.functional.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def fingerprint_augment(x: torch.Tensor, generator: torch.Generator, cfg: dict) -> torch.Tensor:
    """``cfg``: p, noise_std, blur_sigma, contrast, levels (config/README.md: mitigation.augment).

    Random numbers come from ``generator`` on the CPU, so a run is reproducible on every device.
    """
    n = len(x)

    def chosen() -> torch.Tensor:
        return (torch.rand(n, generator=generator) < cfg["p"]).to(x.device).view(n, 1, 1, 1)

    out = x
    if cfg["noise_std"] > 0:
        std = torch.rand(n, generator=generator).to(x.device).view(n, 1, 1, 1) * cfg["noise_std"]
        noise = torch.randn(x.shape, generator=generator).to(x.device) * std
        out = torch.where(chosen(), out + noise, out)
    if cfg["blur_sigma"] > 0:
        # One sigma per batch in [blur_sigma / 2, blur_sigma]: always strong enough to damp the
        # highest frequencies, where generator fingerprints sit.
        sigma = cfg["blur_sigma"] * (0.5 + 0.5 * float(torch.rand(1, generator=generator)))
        out = torch.where(chosen(), blur(out, sigma), out)
    if cfg["contrast"] > 0:
        factor = 1 + (2 * torch.rand(n, generator=generator) - 1).to(x.device).view(n, 1, 1, 1) * cfg["contrast"]
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = torch.where(chosen(), (out - mean) * factor + mean, out)
    if cfg["levels"]:
        step = 2.0 / (cfg["levels"] - 1)
        out = torch.where(chosen(), torch.round((out.clamp(-1, 1) + 1) / step) * step - 1, out)
    return out.clamp(-1, 1)
