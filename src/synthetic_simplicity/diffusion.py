"""Conditional DDPM built from diffusers parts, with EMA, classifier-free guidance training and
checkpoints that make a killed run resume where it stopped.

Two kinds of condition: a class index (Study A; the null class is index ``num_classes``) or a
continuous vector (Study B's 22 numbers; the null is a learned embedding, asked for with a row of
NaN). Both are dropped with probability ``label_dropout`` during training, so guidance can mix in
the unconditional prediction at sampling time.

Every step draws its batch, timesteps, noise and label dropout from a generator seeded by
(seed, step), so a run resumed from step k is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import config_hash
from .runtime import atomic_torch_save, autocast, images_to_tensor
from .seeds import derive_seed

log = logging.getLogger(__name__)

# Keys that may change without invalidating checkpoints: the budget can be extended and a
# resumed run continues with the same schedule (constant LR after warm-up).
RESUMABLE_KEYS = ("steps", "checkpoint_every", "keep_checkpoints", "grid_per_class")


def padded_size(size: int, n_blocks: int) -> int:
    """UNet down-sampling needs a multiple of 2**(n_blocks-1): 28 stays 28 with 3 blocks, 28 -> 32 with 4."""
    m = 2 ** (n_blocks - 1)
    return int(math.ceil(size / m) * m)


class ConditionProjection(torch.nn.Module):
    """Continuous condition -> time-embedding slot, as in Study B's Mediffusion UNet (linear, SiLU,
    linear), with a learned null embedding for rows that are all NaN (dropped conditions)."""

    def __init__(self, cond_dim: int, embed_dim: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(cond_dim, embed_dim), torch.nn.SiLU(),
                                       torch.nn.Linear(embed_dim, embed_dim))
        self.null = torch.nn.Parameter(torch.zeros(embed_dim))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        dropped = torch.isnan(cond).all(dim=1, keepdim=True)
        emb = self.net(torch.nan_to_num(cond.to(self.null.dtype)))
        return torch.where(dropped, self.null.to(emb.dtype), emb)


def _install_projection(model, cond_dim: int):
    model.class_embedding = ConditionProjection(cond_dim, model.config.block_out_channels[0] * 4)
    return model


def drop_conditions(cond: torch.Tensor, drop: torch.Tensor, num_classes: int | None) -> torch.Tensor:
    """The null condition where ``drop``: the extra class index, or a NaN row for vectors."""
    cond = cond.clone()
    cond[drop] = num_classes if num_classes is not None else float("nan")
    return cond


def condition_tensor(conditions: np.ndarray) -> torch.Tensor:
    """Class indices stay integers; condition vectors become float32."""
    a = np.asarray(conditions)
    return torch.as_tensor(a, dtype=torch.long if a.ndim == 1 else torch.float32)


def build_unet(image_size: int, channels: int, num_classes: int | None, cfg: dict, cond_dim: int | None = None):
    """A UNet2DModel conditioned on a class (one extra embedding is the null class for guidance) or,
    with ``cond_dim``, on a continuous vector through ``ConditionProjection``."""
    from diffusers import UNet2DModel

    blocks = list(cfg["block_out_channels"])
    attn = set(cfg["attention_levels"])
    down = tuple("AttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(len(blocks)))
    up = tuple("AttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(range(len(blocks))))
    model = UNet2DModel(
        sample_size=padded_size(image_size, len(blocks)),
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(blocks),
        layers_per_block=cfg["layers_per_block"],
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=min(8, blocks[0]),
        num_class_embeds=None if cond_dim else num_classes + 1,
        class_embed_type="identity" if cond_dim else None,
    )
    return _install_projection(model, cond_dim) if cond_dim else model


def make_train_scheduler(cfg: dict):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg["num_train_timesteps"], beta_schedule=cfg["beta_schedule"])


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Pad with the background value (-1 = black) to a square of ``size``."""
    h, w = x.shape[-2:]
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top), value=-1.0)


def crop_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def _latest_checkpoint(ckpt_dir: Path, run_hash: str) -> dict | None:
    """This run's newest checkpoint; newer ones from another config are removed as stale.

    Pruning keeps the newest ``keep_checkpoints`` files by step number, so a stale step_00000500
    left by another config would otherwise outrank (and delete) every checkpoint this run writes.
    """
    for path in sorted(ckpt_dir.glob("step_*.pt"), reverse=True):
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("hash") == run_hash:
            log.info("resuming from %s (step %d)", path, state["step"])
            return state
        log.warning("removing %s: written by a different diffusion config", path)
        path.unlink()
    return None


def train_diffusion(
    images,
    conditions: np.ndarray,
    num_classes: int | None,
    cfg: dict,
    seed: int,
    device: torch.device,
    precision: str,
    ckpt_dir: str | Path,
    progress: bool = True,
) -> dict:
    """Train on the given (training-split) images and return a bundle for ``load_generator``.

    ``images`` is anything indexable by an index array (an array, or ``H5Images`` for sets larger
    than memory); ``conditions`` holds class indices (N,) or, with ``num_classes`` None, vectors (N, K).
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    y_all = condition_tensor(conditions)
    cond_dim = None if y_all.ndim == 1 else y_all.shape[1]
    run_hash = config_hash({k: v for k, v in cfg.items() if k not in RESUMABLE_KEYS}
                           | {"seed": seed, "n": len(y_all), "num_classes": num_classes, "cond_dim": cond_dim})
    channels, h, w = images_to_tensor(images[np.arange(1)]).shape[1:]
    size = padded_size(max(h, w), len(cfg["block_out_channels"]))

    torch.manual_seed(derive_seed(seed, "init"))
    model = build_unet(max(h, w), channels, num_classes, cfg, cond_dim).to(device)
    from diffusers.training_utils import EMAModel

    ema = EMAModel(model.parameters(), decay=cfg["ema_decay"], use_ema_warmup=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"],
                            fused=True)
    sched = make_train_scheduler(cfg)
    step = 0
    state = _latest_checkpoint(ckpt_dir, run_hash)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        step = state["step"]
    ema.to(device)
    alphas_cumprod = sched.alphas_cumprod.to(device)

    def checkpoint(step: int) -> None:
        atomic_torch_save({"step": step, "hash": run_hash, "model": model.state_dict(),
                           "optimizer": opt.state_dict(), "ema": ema.state_dict()},
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
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.step(model.parameters())
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
        if step % cfg["checkpoint_every"] == 0 or step == cfg["steps"]:
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
        "stats": {"steps": step, "resumed_from": start, "seconds": elapsed,
                  "steps_per_s": (step - start) / elapsed if step > start else None,
                  "final_loss": float(np.mean(losses[-100:])) if losses else None},
    }


def load_generator(bundle: dict, device: torch.device):
    """The EMA UNet of a training bundle, in eval mode on ``device``."""
    from diffusers import UNet2DModel

    model = UNet2DModel.from_config(bundle["unet_config"])
    if bundle.get("cond_dim"):
        _install_projection(model, bundle["cond_dim"])
    model.load_state_dict(bundle["state_dict"])
    return model.to(device).eval()
