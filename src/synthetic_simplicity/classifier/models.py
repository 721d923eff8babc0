"""Classifiers: a small CNN and torchvision's ResNet-18, DenseNet-121 and ConvNeXt with a stem for
the image's channels; single-label (cross-entropy, Study A) or multi-label (BCE, Study B).

Study A does not publish its MNIST architecture; ours (docs/decisions.md) is three 3x3 conv blocks
(16, 32, 64 channels; BatchNorm, ReLU, 2x2 max-pool after the first two), global average pooling and
one linear layer: ~24 k parameters, enough for digits while small enough to train in seconds.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from torch import nn

from ..core.runtime import load_torch

log = logging.getLogger(__name__)

ARCHITECTURES = ("cnn", "resnet18", "densenet121", "convnext_tiny", "convnext_base")


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


def densenet121(in_channels: int, num_classes: int) -> nn.Module:
    from torchvision.models import densenet121 as tv_densenet121

    model = tv_densenet121(weights=None, num_classes=num_classes)
    model.features.conv0 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def convnext(size: str):
    def build(in_channels: int, num_classes: int) -> nn.Module:
        from torchvision import models

        # No stochastic depth, as timm builds ConvNeXt by default and Study B trained it (torchvision's
        # default, 0.5 for Base, is its ImageNet-from-scratch recipe and draws from the global RNG).
        model = getattr(models, f"convnext_{size}")(weights=None, num_classes=num_classes,
                                                    stochastic_depth_prob=0.0)
        stem = model.features[0][0]
        model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, kernel_size=4, stride=4)
        return model

    return build


def build_classifier(architecture: str, in_channels: int, num_classes: int) -> nn.Module:
    builders = {"cnn": small_cnn, "resnet18": resnet18, "densenet121": densenet121,
                "convnext_tiny": convnext("tiny"), "convnext_base": convnext("base")}
    if architecture not in builders:
        raise ValueError(f"unknown architecture {architecture!r} (config key classifier.architectures); "
                         f"choose from {ARCHITECTURES}")
    return builders[architecture](in_channels, num_classes)


# timm's ConvNeXt names -> torchvision's: stage i is features[2i+1], the downsampling before it
# features[2i]; a block's depthwise conv, norm and two linears are block.0, .2, .3 and .5.
_TIMM_CONVNEXT = [
    (r"stem\.(\d)\.", lambda m: f"features.0.{m[1]}."),
    (r"stages\.(\d+)\.downsample\.(\d)\.", lambda m: f"features.{2 * int(m[1])}.{m[2]}."),
    (r"stages\.(\d+)\.blocks\.(\d+)\.(conv_dw|norm|mlp\.fc1|mlp\.fc2)\.",
     lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.block.{_BLOCK_PART[m[3]]}."),
    (r"stages\.(\d+)\.blocks\.(\d+)\.gamma$", lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.layer_scale"),
    (r"head\.norm\.", lambda m: "classifier.0."),
    (r"head\.fc\.", lambda m: "classifier.2."),
]
_BLOCK_PART = {"conv_dw": 0, "norm": 2, "mlp.fc1": 3, "mlp.fc2": 5}


def from_timm_convnext(state: dict) -> dict:
    """A timm ConvNeXt state dict (e.g. ``convnext_base.fb_in22k_ft_in1k``, Study B's weights) in
    torchvision's layout; the layer scale ``gamma`` (C,) becomes ``layer_scale`` (C, 1, 1)."""
    out = {}
    for name, tensor in state.items():
        for pattern, replace in _TIMM_CONVNEXT:
            m = re.match(pattern, name)
            if m:
                new = replace(m) + name[m.end():]
                out[new] = tensor.reshape(-1, 1, 1) if new.endswith("layer_scale") else tensor
                break
        else:
            out[name] = tensor
    return out


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Start from local weights (torchvision's state-dict layout, or timm's ConvNeXt layout, which is
    renamed); nothing is fetched at run time.

    An RGB stem is summed over its input channels for grey images (as timm's ``in_chans=1``), and
    tensors whose shape differs (the task head) keep their fresh initialisation. Both are logged.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights not found (config key classifier.pretrained); "
                                f"download them once, e.g. torchvision's state dict, or set it to null")
    state = load_torch(path)
    state = state.get("state_dict", state)
    if "stem.0.weight" in state:
        state = from_timm_convnext(state)
    own = model.state_dict()
    loaded, skipped = {}, []
    for name, tensor in state.items():
        if name not in own:
            skipped.append(name)
            continue
        if tensor.ndim == 4 and tensor.shape[1] != own[name].shape[1] and own[name].shape[1] == 1:
            tensor = tensor.sum(dim=1, keepdim=True)
        if tensor.shape == own[name].shape:
            loaded[name] = tensor
        else:
            skipped.append(name)
    if not loaded:
        raise ValueError(f"{path}: no tensor matches this architecture; is it the right file?")
    model.load_state_dict(loaded, strict=False)
    log.info("pretrained weights from %s: %d tensors loaded, %d kept fresh (%s)", path, len(loaded),
             len(own) - len(loaded), ", ".join(skipped[:4]))


