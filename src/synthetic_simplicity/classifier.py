"""Classifiers for Study A: a small CNN and ResNet-18 with a single-channel stem.

Study A does not publish its MNIST architecture; ours (docs/decisions.md) is three 3x3 conv blocks
(16, 32, 64 channels; BatchNorm, ReLU, 2x2 max-pool after the first two), global average pooling and
one linear layer: ~24 k parameters, enough for digits while small enough to train in seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import config_hash
from .runtime import atomic_torch_save, autocast, images_to_tensor
from .seeds import derive_seed

log = logging.getLogger(__name__)

ARCHITECTURES = ("cnn", "resnet18")
# Keys that may change without invalidating a checkpoint: the learning rate is constant, so a run
# extended from k to more epochs continues exactly as an uninterrupted run of the longer budget.
RESUMABLE_KEYS = ("epochs",)


def small_cnn(in_channels: int, num_classes: int) -> nn.Module:
    def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        return layers + ([nn.MaxPool2d(2)] if pool else [])

    return nn.Sequential(*block(in_channels, 16, True), *block(16, 32, True), *block(32, 64, False),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def resnet18(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 from scratch; the 7x7 stem takes ``in_channels`` instead of RGB."""
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def build_classifier(architecture: str, in_channels: int, num_classes: int) -> nn.Module:
    builders = {"cnn": small_cnn, "resnet18": resnet18}
    if architecture not in builders:
        raise ValueError(f"unknown architecture {architecture!r} (config key classifier.architectures); "
                         f"choose from {ARCHITECTURES}")
    return builders[architecture](in_channels, num_classes)


def _optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg["learning_rate"], momentum=0.9,
                               weight_decay=cfg["weight_decay"])
    return torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    architecture: str,
    cfg: dict,
    seed: int,
    device: torch.device,
    precision: str,
    ckpt_path: str | Path,
    progress: bool = True,
) -> nn.Module:
    """Train from scratch; a checkpoint after every epoch lets a killed job resume at that epoch."""
    x_all = images_to_tensor(images)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    torch.manual_seed(derive_seed(seed, "init"))
    model = build_classifier(architecture, x_all.shape[1], num_classes).to(device)
    opt = _optimizer(model, cfg)
    run_hash = config_hash({k: v for k, v in cfg.items() if k not in RESUMABLE_KEYS}
                           | {"seed": seed, "arch": architecture, "n": len(y_all)})
    ckpt_path = Path(ckpt_path)
    epoch = 0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state["hash"] == run_hash and state["epoch"] <= cfg["epochs"]:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            epoch = state["epoch"]
            log.info("resuming from %s at epoch %d", ckpt_path, epoch)
    bar = tqdm(total=cfg["epochs"], initial=epoch, desc=f"{architecture}", disable=not progress)
    while epoch < cfg["epochs"]:
        model.train()
        order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch)))
        total = 0.0
        for start in range(0, len(order), cfg["batch_size"]):
            idx = order[start : start + cfg["batch_size"]]
            x, y = x_all[idx].to(device), y_all[idx].to(device)
            with autocast(device, precision):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        epoch += 1
        atomic_torch_save({"epoch": epoch, "hash": run_hash, "model": model.state_dict(),
                           "optimizer": opt.state_dict()}, ckpt_path)
        bar.update(1)
        bar.set_postfix(loss=f"{total / len(y_all):.4f}")
    bar.close()
    return model


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device,
            precision: str) -> np.ndarray:
    """Softmax probabilities, (N, num_classes)."""
    model.eval()
    x_all = images_to_tensor(images)
    probs = []
    for start in range(0, len(x_all), batch_size):
        with autocast(device, precision):
            logits = model(x_all[start : start + batch_size].to(device)).float()
        probs.append(torch.softmax(logits, dim=1).cpu().numpy())
    return np.concatenate(probs)


def predictions_frame(pool: np.ndarray, index: np.ndarray, label: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """The per-image predictions contract read by the evaluation stage."""
    frame = pd.DataFrame({"pool": np.where(pool == 0, "real", "synthetic"), "index": index,
                          "label": label, "source": pool.astype(int), "pred": probs.argmax(1)})
    for k in range(probs.shape[1]):
        frame[f"prob_{k}"] = probs[:, k].round(6)
    return frame
