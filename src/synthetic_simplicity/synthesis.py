"""Sampling the synthetic pools: one seed per image, so image i never depends on the batch it ran in."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .atomic import atomic_output
from .diffusion import crop_to
from .runtime import autocast, tensor_to_images
from .seeds import derive_seed

log = logging.getLogger(__name__)

SAMPLERS = ("ddim", "dpmsolver++", "ddpm")


def make_sampler(name: str, scheduler_config: dict, clip_sample: bool):
    """A diffusers scheduler sharing the training noise schedule.

    x0 clipping matters on briefly trained models: without it DPM-Solver++ saturated ~88 % of
    samples (DESIGN.md §6), so ``clip_sample`` maps to each scheduler's own form of it.
    """
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    base = {k: scheduler_config[k] for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")}
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
def sample_images(
    model,
    scheduler,
    labels: np.ndarray,
    seeds: np.ndarray,
    image_shape: tuple[int, int, int],
    num_classes: int,
    steps: int,
    guidance_scale: float,
    batch_size: int,
    device: torch.device,
    precision: str,
    progress: bool = True,
    parts_dir: Path | None = None,
) -> np.ndarray:
    """Generate one image per (label, seed) as uint8 (N,H,W) or (N,C,H,W).

    ``guidance_scale`` 1 is plain conditional sampling; above 1, classifier-free guidance mixes in
    the null-class prediction (index ``num_classes``). With ``parts_dir`` every finished batch is
    kept there, and a rerun after a kill loads those batches instead of sampling them again.
    """
    channels, h, w = image_shape
    size = model.config.sample_size
    out = []
    bar = tqdm(total=len(labels), desc="sampling", disable=not progress, mininterval=10)
    for start in range(0, len(labels), batch_size):
        part = None if parts_dir is None else Path(parts_dir) / f"batch_{start:09d}.npy"
        if part is not None and part.is_file():
            out.append(np.load(part))
            bar.update(len(out[-1]))
            continue
        y = torch.as_tensor(labels[start : start + batch_size], dtype=torch.long, device=device)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[start : start + batch_size]]
        x = torch.stack([torch.randn((channels, size, size), generator=g) for g in gens]).to(device)
        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            x_in, y_in = x, y
            if guidance_scale != 1.0:
                x_in, y_in = torch.cat([x, x]), torch.cat([y, torch.full_like(y, num_classes)])
            with autocast(device, precision):
                eps = model(x_in, t, class_labels=y_in).sample.float()
            if guidance_scale != 1.0:
                cond, uncond = eps.chunk(2)
                eps = uncond + guidance_scale * (cond - uncond)
            # A list of generators gives each image its own noise in stochastic samplers.
            x = scheduler.step(eps, t, x, generator=gens).prev_sample
        out.append(tensor_to_images(crop_to(x, h, w)))
        if part is not None:
            with atomic_output(part) as tmp:
                np.save(tmp, out[-1])
        bar.update(len(y))
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, *image_shape[1:]), np.uint8)


def degenerate_mask(images: np.ndarray, saturated_fraction: float, blank_std: float) -> np.ndarray:
    """Saturated (most pixels at the top grey level) or blank (almost flat) samples."""
    flat = images.reshape(len(images), -1)
    saturated = (flat >= 250).mean(axis=1) > saturated_fraction
    blank = flat.std(axis=1) < blank_std
    return saturated | blank

