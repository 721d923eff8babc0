"""Optimisers of the training loops: AdamW, SGD, and Lion (Study B's) from the ``lion-pytorch`` package."""

from __future__ import annotations

from collections.abc import Iterable

import torch

OPTIMIZERS = ("adamw", "sgd", "lion")


def parameter_groups(params: Iterable[torch.nn.Parameter], weight_decay: float, no_decay_1d: bool):
    """All parameters with ``weight_decay``, or, with ``no_decay_1d``, none on 1-D parameters (biases,
    norm scales, ConvNeXt's layer scale): the split of timm's ``add_weight_decay``, which Study B's
    code and its Mediffusion generator use."""
    params = list(params)
    if not no_decay_1d:
        return params, weight_decay
    return [{"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
            {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay}], weight_decay


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float,
                    no_decay_1d: bool = False, fused: bool = False) -> torch.optim.Optimizer:
    """``fused`` asks for fused AdamW kernels (the generator's loop uses them; the result differs in
    rounding from the plain kernel, so each loop keeps the one it always used)."""
    groups, weight_decay = parameter_groups(params, weight_decay, no_decay_1d)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=fused or None)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "lion":
        from lion_pytorch import Lion

        # Study B's Lion (bkh_pytorch_utils): betas (0.9, 0.99), decay p <- p (1 - lr wd), as here.
        return Lion(groups, lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
