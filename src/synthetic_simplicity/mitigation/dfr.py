"""Deep feature reweighting (Kirichenko et al. 2023): keep an ERM model's features and refit only its last
layer on a small held-out set in which every class x source cell has the same number of images.

The head is an L2-regularised logistic regression on standardised features, fitted by full-batch L-BFGS
from zero weights (deterministic); DFR's paper uses an L1 penalty, which L-BFGS cannot fit directly.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from ..classifier.training import embed, head_of

log = logging.getLogger(__name__)


def retrain_last_layer(model: nn.Module, images, labels: np.ndarray, cfg: dict, batch_size: int,
                       device: torch.device, precision: str) -> dict:
    """Replace ``model``'s head (in place) by one fitted on ``images``; ``cfg``: steps, weight_decay.
    Returns what the fit saw (images, training accuracy, loss)."""
    features = torch.as_tensor(embed(model, images, batch_size, device, precision), dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    mean, std = features.mean(0), features.std(0).clamp(min=1e-6)
    z = (features - mean) / std
    head = head_of(model)
    w = torch.zeros(head.out_features, z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(head.out_features, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=cfg["steps"], line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(z @ w.T + b, y) + cfg["weight_decay"] * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        logits = z @ w.T + b
        info = {"images": len(y), "train_accuracy": float((logits.argmax(1) == y).double().mean()),
                "loss": float(nn.functional.cross_entropy(logits, y))}
        # Standardisation folded into the head: w (f - mean) / std + b.
        head.weight.copy_((w / std).to(head.weight))
        head.bias.copy_((b - (w / std) @ mean).to(head.bias))
    log.info("last layer refitted on %d balanced images: training accuracy %.3f", info["images"],
             info["train_accuracy"])
    return info
