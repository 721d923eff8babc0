"""Sampling the synthetic pools: one seed per image, so image i never depends on the batch it ran in."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.runtime import autocast, tensor_to_images, to_device
from ..core.seeds import derive_seed
from ..diffusion.model import condition_tensor, crop_to, drop_conditions

log = logging.getLogger(__name__)

SAMPLERS = ("ddim", "dpmsolver++", "ddpm")


# What the sampler takes from the training scheduler: the noise schedule and the meaning of the UNet's
# output. The rest (timestep spacing, clipping) stays each sampler's own, as before these were shared.
SHARED_KEYS = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "trained_betas",
               "prediction_type", "rescale_betas_zero_snr")


def make_sampler(name: str, scheduler_config: dict, clip_sample: bool):
    """A diffusers scheduler sharing the training scheduler's noise schedule and prediction type.

    x0 clipping matters on briefly trained models: without it DPM-Solver++ saturated ~88 % of
    samples (DESIGN.md §6), so ``clip_sample`` maps to each scheduler's own form of it. DDIM keeps
    diffusers' "leading" spacing: at 200 steps that is t = 995, 990, ..., 0, the stride Study B's
    Mediffusion DDIM200 takes.
    """
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    base = {k: scheduler_config[k] for k in SHARED_KEYS}
    if name == "ddim":
        return DDIMScheduler(**base, clip_sample=clip_sample)
    if name == "ddpm":
        return DDPMScheduler(**base, clip_sample=clip_sample)
    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler(**base, algorithm_type="dpmsolver++", thresholding=clip_sample)
    raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLERS}")


def sample_seeds(base_seed: int, pool: str, label: int, n: int) -> np.ndarray:
    """Per-image seeds; the pool name ('train'/'test') keeps the two pools' seeds disjoint."""
    return np.array([derive_seed(base_seed, "synthesis", pool, label, i) for i in range(n)], dtype=np.int64)


@torch.no_grad()
def iter_samples(
    model,
    scheduler,
    conditions: np.ndarray,
    seeds: np.ndarray,
    image_shape: tuple[int, int, int],
    num_classes: int | None,
    steps: int,
    guidance_scale: float,
    batch_size: int,
    device: torch.device,
    precision: str,
    start: int = 0,
    progress: bool = True,
) -> Iterator[np.ndarray]:
    """Yield uint8 batches (B,H,W) or (B,C,H,W), one image per (condition, seed), from row ``start`` on.

    ``conditions`` are class indices (N,) or condition vectors (N, K) (``num_classes`` None).
    ``guidance_scale`` 1 is plain conditional sampling; above 1, classifier-free guidance mixes in
    the null-condition prediction. Because every image has its own seed, a job resumed at ``start``
    produces exactly the images an uninterrupted one would have.
    """
    channels, h, w = image_shape
    size = model.config.sample_size
    cond_all = condition_tensor(conditions)
    bar = tqdm(total=len(seeds), initial=start, desc="sampling", disable=not progress, mininterval=10)
    for first in range(start, len(seeds), batch_size):
        y = to_device(cond_all[first : first + batch_size], device)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[first : first + batch_size]]
        x = to_device(torch.stack([torch.randn((channels, size, size), generator=g) for g in gens]), device)
        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            x_in, y_in = x, y
            if guidance_scale != 1.0:
                x_in = torch.cat([x, x])
                y_in = torch.cat([y, drop_conditions(y, torch.ones(len(y), dtype=torch.bool), num_classes)])
            with autocast(device, precision):
                pred = model(x_in, t, class_labels=y_in).sample.float()
            if guidance_scale != 1.0:
                # Mixing the raw outputs is guidance on epsilon whatever the prediction type: epsilon
                # and x0 are affine in v at a fixed x_t, and the weights (1 - s, s) sum to one.
                cond, uncond = pred.chunk(2)
                pred = uncond + guidance_scale * (cond - uncond)
            # A list of generators gives each image its own noise in stochastic samplers.
            x = scheduler.step(pred, t, x, generator=gens).prev_sample
        bar.update(len(y))
        yield tensor_to_images(crop_to(x, h, w))
    bar.close()


def sample_images(*args, **kwargs) -> np.ndarray:
    """All of ``iter_samples`` as one array (previews, tests, benchmarks)."""
    batches = list(iter_samples(*args, **kwargs))
    return np.concatenate(batches) if batches else np.zeros((0, *args[4][1:]), np.uint8)


def degenerate_mask(images: np.ndarray, saturated_fraction: float, blank_std: float) -> np.ndarray:
    """Saturated (most pixels at the top grey level) or blank (almost flat) samples."""
    flat = images.reshape(len(images), -1)
    saturated = (flat >= 250).mean(axis=1) > saturated_fraction
    blank = flat.std(axis=1) < blank_std
    return saturated | blank

