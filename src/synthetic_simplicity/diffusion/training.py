"""Training the conditional DDPM, with EMA, classifier-free guidance training and checkpoints that make
a killed run resume where it stopped.

Every step draws its batch, timesteps, noise and label dropout from a generator seeded by
(seed, step), so a run resumed from step k is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..core.config import config_hash, resume_settings
from ..core.errors import TrainingDivergedError
from ..core.imageset import array_digest, data_key
from ..core.optim import build_optimizer
from ..core.runtime import atomic_torch_save, autocast, images_to_tensor, load_torch
from ..core.seeds import derive_seed
from .model import (
    build_unet,
    condition_tensor,
    diffusion_target,
    drop_conditions,
    make_train_scheduler,
    pad_to,
    padded_size,
)

log = logging.getLogger(__name__)

# Keys that may change without invalidating checkpoints: the budget can be extended and a
# resumed run continues with the same schedule (constant LR after warm-up).
RESUMABLE_KEYS = ("steps", "checkpoint_every", "keep_checkpoints", "grid_per_class")
# Keys added with Study B's recipe (issue 16), with the value that trains as before. At that value a
# key stays out of the resume key, so earlier checkpoints of a config without it stay valid.
ADDED_KEYS = {"prediction_type": "epsilon", "rescale_betas_zero_snr": False, "optimizer": "adamw",
              "no_decay_1d": False, "grad_clip": None, "ema_warmup": True}


def _latest_checkpoint(ckpt_dir: Path, run_hash: str, steps: int, snapshots: list[int]) -> dict | None:
    """This run's newest checkpoint within ``steps`` that holds every snapshot before its step;
    others are removed as stale.

    Pruning keeps the newest ``keep_checkpoints`` files by step number, so a stale step_00000500
    left by another config, other training images or a longer budget would otherwise outrank (and
    delete) every checkpoint this run writes.
    """
    for path in sorted(ckpt_dir.glob("step_*.pt"), reverse=True):
        state = load_torch(path)
        missing = [s for s in snapshots if s < state["step"] and str(s) not in state.get("snapshots", {})]
        if state.get("hash") == run_hash and state["step"] <= steps and not missing:
            log.info("resuming from %s (step %d)", path, state["step"])
            return state
        log.warning("removing %s: written by a different diffusion config, other training images, a longer "
                    "budget, or before snapshot(s) %s were asked for", path, missing)
        path.unlink()
    return None


def _ema_weights(ema, model) -> dict:
    """The EMA weights as a CPU state dict of ``model``, leaving the training weights in place."""
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ema.restore(model.parameters())
    return weights


def train_diffusion(
    images,
    conditions: np.ndarray,
    num_classes: int | None,
    cfg: dict,
    seed: int,
    device: torch.device,
    precision: str,
    ckpt_dir: str | Path,
    section: str = "diffusion",
    progress: bool = True,
    snapshots: list[int] = (),
) -> dict:
    """Train on the given (training-split) images and return a bundle for ``load_generator``.

    ``images`` is anything indexable by an index array (an array, or ``H5Images`` for sets larger
    than memory); ``conditions`` holds class indices (N,) or, with ``num_classes`` None, vectors (N, K).
    ``snapshots``: earlier steps whose EMA weights the bundle keeps too, so generator variants that
    differ only in budget share this run (the learning rate is constant after warm-up, so the step-s
    snapshot is the model a step-s run would have given).
    """
    cfg = ADDED_KEYS | cfg
    snapshots = sorted(int(s) for s in snapshots if s < cfg["steps"])
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    y_all = condition_tensor(conditions)
    cond_dim = None if y_all.ndim == 1 else y_all.shape[1]
    # Everything that shapes the model: the section, the seed and exactly which images and conditions.
    run_hash = config_hash(resume_settings(cfg, RESUMABLE_KEYS, ADDED_KEYS)
                           | {"seed": seed, "images": data_key(images), "conditions": array_digest(conditions),
                              "num_classes": num_classes, "cond_dim": cond_dim})
    channels, h, w = images_to_tensor(images[np.arange(1)]).shape[1:]
    size = padded_size(max(h, w), len(cfg["block_out_channels"]))

    torch.manual_seed(derive_seed(seed, "init"))
    model = build_unet(max(h, w), channels, num_classes, cfg, cond_dim).to(device)
    from diffusers.training_utils import EMAModel

    # Without warm-up the decay is constant from the second step on, as Study B's EMA (which started
    # from the initial weights where this one starts from those after the first step).
    ema = EMAModel(model.parameters(), decay=cfg["ema_decay"], use_ema_warmup=cfg["ema_warmup"],
                   min_decay=0.0 if cfg["ema_warmup"] else cfg["ema_decay"])
    opt = build_optimizer(cfg["optimizer"], model.parameters(), cfg["learning_rate"], cfg["weight_decay"],
                          cfg["no_decay_1d"], fused=True)
    sched = make_train_scheduler(cfg)
    step, kept = 0, {}
    state = _latest_checkpoint(ckpt_dir, run_hash, cfg["steps"], snapshots)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        step, kept = state["step"], dict(state.get("snapshots", {}))
        if step in snapshots and str(step) not in kept:  # a checkpoint's EMA is that step's EMA
            kept[str(step)] = _ema_weights(ema, model)
    ema.to(device)
    alphas_cumprod = sched.alphas_cumprod.to(device)

    def checkpoint(step: int) -> None:
        atomic_torch_save({"step": step, "hash": run_hash, "model": model.state_dict(),
                           "optimizer": opt.state_dict(), "ema": ema.state_dict(), "snapshots": kept},
                          ckpt_dir / f"step_{step:08d}.pt")
        for old in sorted(ckpt_dir.glob("step_*.pt"))[: -cfg["keep_checkpoints"]]:
            old.unlink()

    model.train()
    bar = tqdm(total=cfg["steps"], initial=step, desc="diffusion", disable=not progress, mininterval=10)
    t0, losses = time.perf_counter(), []
    start = step
    while step < cfg["steps"]:
        g = torch.Generator().manual_seed(derive_seed(seed, "step", step))
        idx = torch.randint(len(y_all), (cfg["batch_size"],), generator=g)
        x0 = pad_to(images_to_tensor(images[idx.numpy()], device), size)
        y = drop_conditions(y_all[idx], torch.rand(len(idx), generator=g) < cfg["label_dropout"], num_classes)
        t = torch.randint(sched.config.num_train_timesteps, (len(y),), generator=g).to(device)
        noise = torch.randn(x0.shape, generator=g).to(device)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        for group in opt.param_groups:
            group["lr"] = cfg["learning_rate"] * min(1.0, (step + 1) / max(1, cfg["warmup_steps"]))
        with autocast(device, precision):
            pred = model(xt, t, class_labels=y.to(device)).sample
        loss = F.mse_loss(pred.float(), diffusion_target(sched.config.prediction_type, x0, noise, a))
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"the {section} loss became {loss.item()} at step {step + 1}: training diverged; lower config "
                f"key '{section}.learning_rate' (now {cfg['learning_rate']:g}), e.g. by a factor of 10")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["grad_clip"] is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        ema.step(model.parameters())
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
        if step in snapshots:
            kept[str(step)] = _ema_weights(ema, model)
        if step % cfg["checkpoint_every"] == 0 or step == cfg["steps"] or step in snapshots:
            checkpoint(step)
    bar.close()
    elapsed = time.perf_counter() - t0
    ema.copy_to(model.parameters())
    return {
        "unet_config": dict(model.config),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "scheduler_config": dict(sched.config),
        "image_shape": [int(channels), int(h), int(w)],
        "num_classes": num_classes,
        "cond_dim": cond_dim,
        "hash": run_hash,
        "snapshots": {s: w for s, w in kept.items() if int(s) in snapshots},
        "stats": {"steps": step, "resumed_from": start, "seconds": elapsed,
                  "steps_per_s": (step - start) / elapsed if step > start else None,
                  "final_loss": float(np.mean(losses[-100:])) if losses else None},
    }
