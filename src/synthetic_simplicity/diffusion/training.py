"""Training the conditional DDPM, with EMA, classifier-free guidance training and checkpoints that make
a killed run resume where it stopped.

Every step draws its batch, timesteps, noise and label dropout from a generator seeded by
(seed, step), so a run resumed from step k is bit-identical to an uninterrupted one. Under
torch.distributed (``diffusion.distributed`` starts the processes) each process trains on its slice of
that same global batch and DDP averages the gradients, so N processes train what one process trains.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..core.config import config_hash, resume_settings
from ..core.imageset import array_digest, data_key
from ..core.optim import build_optimizer
from ..core.runtime import (
    LossRecord,
    Stopwatch,
    atomic_torch_save,
    autocast,
    grad_scaler,
    images_to_tensor,
    load_torch,
    log_perf,
    maybe_compile,
    optimizer_step,
    resident,
    scaler_record,
    take,
    to_device,
)
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
# Keys added with Study B's recipe (issue 16) and for GPUs (issue 15), with the value that trains as
# before. At that value a key stays out of the resume key, so earlier checkpoints of a config without it
# stay valid.
ADDED_KEYS = {"prediction_type": "epsilon", "rescale_betas_zero_snr": False, "optimizer": "adamw",
              "no_decay_1d": False, "grad_clip": None, "ema_warmup": True, "compile": False}


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


def _process_group() -> tuple[int, int]:
    """This process's rank and the number of training processes; (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _resume_state(ckpt_dir: Path, run_hash: str, steps: int, snapshots: list[int]) -> dict | None:
    """The checkpoint to resume from, the same in every process: rank 0 looks first and removes the
    stale ones, which the other processes must not be reading meanwhile."""
    rank, world = _process_group()
    if rank > 0:
        dist.barrier()
    state = _latest_checkpoint(ckpt_dir, run_hash, steps, snapshots)
    if rank == 0 and world > 1:
        dist.barrier()
    return state


def _step_batch(seed: int, step: int, n_rows: int, shape: tuple, timesteps: int, label_dropout: float,
                device: torch.device):
    """Step ``step``'s global batch: rows, label dropout, timesteps and noise of shape ``shape``, drawn
    whole and in this order from the generator seeded by (seed, step), then cut to this process's
    equal share, so any number of processes trains on the same batch. On CUDA the noise comes from a
    generator on the GPU, seeded by (seed, step) too: on the CPU, every process drawing the noise of
    Study B's whole batch (144 x 256 x 256) took 0.1 s a step."""
    g = torch.Generator().manual_seed(derive_seed(seed, "step", step))
    idx = torch.randint(n_rows, shape[:1], generator=g)
    drop = torch.rand(shape[:1], generator=g) < label_dropout
    t = torch.randint(timesteps, shape[:1], generator=g)
    if device.type == "cuda":
        noise = torch.randn(shape, device=device,
                            generator=torch.Generator(device).manual_seed(derive_seed(seed, "noise", step)))
    else:
        noise = torch.randn(shape, generator=g)
    rank, world = _process_group()
    share = slice(rank * shape[0] // world, (rank + 1) * shape[0] // world)
    return idx[share], drop[share], to_device(t[share], device), noise[share].to(device)


def _mean_over_processes(loss: torch.Tensor) -> torch.Tensor:
    """The loss of the global batch: the mean of the processes' equal-sized shares."""
    if _process_group()[1] == 1:
        return loss.detach()
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def _data_parallel(model, device: torch.device):
    """DDP around ``model`` when several processes train it (it averages their gradients)."""
    if _process_group()[1] == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


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
    # from the initial weights where this one starts from those after the first step). On CUDA the
    # update is one multi-tensor kernel instead of three per parameter (its rounding differs from the
    # per-parameter one, which the CPU keeps, so CPU runs stay as they were).
    ema = EMAModel(model.parameters(), decay=cfg["ema_decay"], use_ema_warmup=cfg["ema_warmup"],
                   min_decay=0.0 if cfg["ema_warmup"] else cfg["ema_decay"], foreach=device.type == "cuda")
    opt = build_optimizer(cfg["optimizer"], model.parameters(), cfg["learning_rate"], cfg["weight_decay"],
                          cfg["no_decay_1d"], fused=True)
    sched = make_train_scheduler(cfg)
    scaler = grad_scaler(device, precision)
    step, kept = 0, {}
    state = _resume_state(ckpt_dir, run_hash, cfg["steps"], snapshots)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, kept = state["step"], dict(state.get("snapshots", {}))
        if step in snapshots and str(step) not in kept:  # a checkpoint's EMA is that step's EMA
            kept[str(step)] = _ema_weights(ema, model)
    ema.to(device)
    alphas_cumprod = sched.alphas_cumprod.to(device)
    net = maybe_compile(_data_parallel(model, device), cfg["compile"], section)
    writer = _process_group()[0] == 0  # one process writes the checkpoints
    source = resident(images, device)  # on CUDA a set that fits is gathered on the GPU

    saving = [0.0]  # seconds spent writing checkpoints (1.9 GB each at Study B's size)

    def checkpoint(step: int) -> None:
        t = time.perf_counter()
        atomic_torch_save({"step": step, "hash": run_hash, "model": model.state_dict(),
                           "optimizer": opt.state_dict(), "ema": ema.state_dict(), "snapshots": kept,
                           **({} if scaler is None else {"scaler": scaler.state_dict()})},
                          ckpt_dir / f"step_{step:08d}.pt")
        for old in sorted(ckpt_dir.glob("step_*.pt"))[: -cfg["keep_checkpoints"]]:
            old.unlink()
        saving[0] += time.perf_counter() - t

    model.train()
    bar = tqdm(total=cfg["steps"], initial=step, desc="diffusion", disable=not progress, mininterval=10)
    losses = []
    clock = Stopwatch(device)
    start = step
    record = LossRecord(device, scaled=scaler is not None)

    def diverged(value: float, index: int) -> None:
        raise record.diverged(section, cfg["learning_rate"], value, f"at step {start + index + 1}")

    def saves_at(s: int) -> bool:  # a checkpoint or snapshot is written after step s
        return s % cfg["checkpoint_every"] == 0 or s == cfg["steps"] or s in snapshots

    while step < cfg["steps"]:
        idx, drop, t, noise = _step_batch(seed, step, len(y_all), (cfg["batch_size"], channels, size, size),
                                          sched.config.num_train_timesteps, cfg["label_dropout"], device)
        x0 = pad_to(images_to_tensor(take(source, idx), device), size)
        y = drop_conditions(y_all[idx], drop, num_classes)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        for group in opt.param_groups:
            group["lr"] = cfg["learning_rate"] * min(1.0, (step + 1) / max(1, cfg["warmup_steps"]))
        with autocast(device, precision):
            pred = net(xt, t, class_labels=to_device(y, device)).sample
        loss = F.mse_loss(pred.float(), diffusion_target(sched.config.prediction_type, x0, noise, a))
        # The losses are read (and checked) before every checkpoint, snapshot and progress update.
        if record.add(_mean_over_processes(loss)) or (step + 1) % 100 == 0 or saves_at(step + 1):
            losses.extend(value for value, _ in record.read(diverged))
        optimizer_step(loss, opt, scaler, model.parameters(), cfg["grad_clip"])
        ema.step(model.parameters())
        step += 1
        bar.update(1)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
        if step in snapshots:
            kept[str(step)] = _ema_weights(ema, model)
        if writer and saves_at(step):
            checkpoint(step)
    bar.close()
    elapsed = clock.seconds()
    perf = {}
    if step > start:
        perf = log_perf("diffusion training", (step - start) * cfg["batch_size"], elapsed, device,
                        precision=precision, processes=_process_group()[1], compile=bool(cfg["compile"]),
                        **scaler_record(record, scaler))
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
        "stats": {"steps": step, "resumed_from": start, "seconds": elapsed, "checkpoint_seconds": saving[0],
                  "steps_per_s": (step - start) / elapsed if step > start else None,
                  "images_per_s": perf.get("images_per_s"), "gpu_peak_mib": perf.get("gpu_peak_mib"),
                  "final_loss": float(np.mean(losses[-100:])) if losses else None},
    }
