"""Study B's classifier recipe for a training batch: its augmentation (flips, Gaussian noise, random
affine), Mixup/CutMix and label smoothing, on float tensors on the training device.

Random numbers come from the epoch's seeded generator on the CPU (``classifier.training``), so a run is
the same on every device and a run resumed at an epoch draws what an uninterrupted one drew. Study B
ran MONAI transforms per image and bkh_pytorch_utils' Mixup (timm's) per batch; the distributions
below are theirs (config/README.md, docs/decisions.md).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _uniform(n: int, generator: torch.Generator, half_width: float) -> torch.Tensor:
    """n draws from U(-half_width, half_width)."""
    return (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * half_width


def random_affine(x: torch.Tensor, generator: torch.Generator, rotate: float, scale: float,
                  translate: float) -> torch.Tensor:
    """MONAI's RandAffine per image: a rotation in U(-rotate, rotate) radians, a scale factor
    1 + U(-scale, scale) per axis and a shift U(-translate, translate) x the side per axis, about the
    centre; bilinear, the border pixels repeated outside the image."""
    n, _, h, w = x.shape
    angle = _uniform(n, generator, rotate)
    sx, sy = 1 + _uniform(n, generator, scale), 1 + _uniform(n, generator, scale)
    tx, ty = 2 * _uniform(n, generator, translate), 2 * _uniform(n, generator, translate)
    cos, sin = angle.cos(), angle.sin()
    # In pixel units [[cos sx, -sin sy], [sin sx, cos sy]]; affine_grid's coordinates run -1..1 along
    # each side, so the off-diagonal terms carry the aspect ratio.
    theta = torch.stack([torch.stack([cos * sx, -sin * sy * h / w, tx], 1),
                         torch.stack([sin * sx * w / h, cos * sy, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment(x: torch.Tensor, generator: torch.Generator, cfg: dict) -> torch.Tensor:
    """Study B's train-time transforms in its order: left-right flip, up-down flip, additive
    Gaussian noise (its std drawn from U(0, noise_std) per image, as MONAI's RandGaussianNoise), random
    affine; each applied to an image with its own probability. Labels are unchanged by all of them."""
    n = len(x)

    def chosen(p: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) < p).view(n, 1, 1, 1).to(x.device)

    if cfg["hflip"] > 0:
        x = torch.where(chosen(cfg["hflip"]), x.flip(-1), x)
    if cfg["vflip"] > 0:
        x = torch.where(chosen(cfg["vflip"]), x.flip(-2), x)
    if cfg["noise_p"] > 0:
        std = torch.rand(n, generator=generator).view(n, 1, 1, 1) * cfg["noise_std"]
        noise = (torch.randn(x.shape, generator=generator) * std).to(x.device)
        x = torch.where(chosen(cfg["noise_p"]), x + noise, x)
    if cfg["affine_p"] > 0:
        warped = random_affine(x, generator, cfg["rotate"], cfg["scale"], cfg["translate"])
        x = torch.where(chosen(cfg["affine_p"]), warped, x)
    return x


def mix(x: torch.Tensor, targets: torch.Tensor, generator: torch.Generator,
        cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's Mixup in batch mode, as Study B called it: with probability ``prob`` the batch is mixed
    with itself reversed, by CutMix (with probability ``switch_prob`` when both alphas are above 0) or
    Mixup, with lam ~ Beta(alpha, alpha). Mixup blends images and targets with the same lam; CutMix
    pastes a box of the partner image and weighs the partner's targets by the box's share of the image.
    A mixed target is NaN (left out of the loss) where either image's label is unknown."""
    if targets.ndim != 2:
        raise ValueError("Mixup/CutMix mixes multi-label targets (Study B); this run has class indices")
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
    if rng.random() >= cfg["prob"]:
        return x, targets
    mixup, cutmix = cfg["mixup_alpha"] > 0, cfg["cutmix_alpha"] > 0
    use_cutmix = cutmix and (not mixup or rng.random() < cfg["switch_prob"])
    lam = float(rng.beta(*[cfg["cutmix_alpha" if use_cutmix else "mixup_alpha"]] * 2))
    partner = x.flip(0)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut_h, cut_w = int(h * np.sqrt(1 - lam)), int(w * np.sqrt(1 - lam))
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, h)
        left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, w)
        x = x.clone()
        x[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (h * w)  # the box as clipped at the border
    else:
        x = lam * x + (1 - lam) * partner
    if lam == 1:
        return x, targets
    return x, lam * targets + (1 - lam) * targets.flip(0)


def smooth_labels(targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Study B's label smoothing of multi-label targets (bkh_pytorch_utils' ``mixup_target_one_hot``,
    timm's one-hot rule applied to the label vector): off = smoothing / L for L labels, and
    y -> y (1 - smoothing + off) + off. With 14 labels and 0.1: 1 -> 0.914, 0 -> 0.0071."""
    off = smoothing / targets.shape[1]
    return targets * (1 - smoothing + off) + off


def recipe_batch(x: torch.Tensor, targets: torch.Tensor, generator: torch.Generator,
                 cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The parts of the recipe that ``cfg`` turns on, in Study B's order: augmentation (per image, in its
    data pipeline), Mixup/CutMix, then label smoothing (both in its training step)."""
    if cfg["augment"] is not None:
        x = augment(x, generator, cfg["augment"])
    if cfg["mix"] is not None:
        x, targets = mix(x, targets, generator, cfg["mix"])
    if cfg["label_smoothing"]:
        targets = smooth_labels(targets, cfg["label_smoothing"])
    return x, targets
