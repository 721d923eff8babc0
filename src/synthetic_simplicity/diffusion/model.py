"""The conditional DDPM's network, built from diffusers parts.

Two kinds of condition: a class index (Study A; the null class is index ``num_classes``) or a
continuous vector (Study B's 22 numbers; the null is a learned embedding, asked for with a row of
NaN). Both are dropped with probability ``label_dropout`` during training, so guidance can mix in
the unconditional prediction at sampling time.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import PipelineError


class GeneratorBudgetError(PipelineError, LookupError):
    """A variant asks for a training budget the generator bundle did not keep."""


def padded_size(size: int, n_blocks: int) -> int:
    """UNet down-sampling needs a multiple of 2**(n_blocks-1): 28 stays 28 with 3 blocks, 28 -> 32 with 4."""
    m = 2 ** (n_blocks - 1)
    return int(math.ceil(size / m) * m)


class ConditionProjection(torch.nn.Module):
    """Continuous condition -> time-embedding slot, as in Study B's Mediffusion UNet (linear, SiLU,
    linear), with a learned null embedding for rows that are all NaN (dropped conditions) and a learned
    value for a single unknown (NaN) entry, such as an unknown age, so it is never read as a real value."""

    def __init__(self, cond_dim: int, embed_dim: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(cond_dim, embed_dim), torch.nn.SiLU(),
                                       torch.nn.Linear(embed_dim, embed_dim))
        self.null = torch.nn.Parameter(torch.zeros(embed_dim))
        self.unknown = torch.nn.Parameter(torch.zeros(cond_dim))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        cond = cond.to(self.null.dtype)
        missing = torch.isnan(cond)
        dropped = missing.all(dim=1, keepdim=True)
        emb = self.net(torch.where(missing, self.unknown.to(cond.dtype), cond))
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


PREDICTION_TYPES = ("epsilon", "v_prediction")


def make_train_scheduler(cfg: dict):
    """The noise schedule and what the UNet predicts; a key left out of ``cfg`` takes diffusers'
    default (epsilon, no zero-terminal-SNR rescaling), which is the pipeline's default too."""
    from diffusers import DDPMScheduler

    optional = {k: cfg[k] for k in ("prediction_type", "rescale_betas_zero_snr") if k in cfg}
    return DDPMScheduler(num_train_timesteps=cfg["num_train_timesteps"], beta_schedule=cfg["beta_schedule"],
                         **optional)


def diffusion_target(prediction_type: str, x0: torch.Tensor, noise: torch.Tensor,
                     alpha_bar: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to output at x_t = sqrt(a) x0 + sqrt(1-a) noise: the noise (epsilon) or
    the velocity v = sqrt(a) noise - sqrt(1-a) x0 (v-prediction, Study B's; diffusers'
    ``get_velocity``). Only v stays informative at zero terminal SNR, where x_T is pure noise."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0
    raise ValueError(f"unknown prediction_type {prediction_type!r}; choose one of {PREDICTION_TYPES}")


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Pad with the background value (-1 = black) to a square of ``size``."""
    h, w = x.shape[-2:]
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top), value=-1.0)


def crop_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def generator_steps(bundle: dict) -> list[int]:
    """The training budgets a bundle can be loaded at: its snapshots and its final step."""
    return sorted({int(s) for s in bundle.get("snapshots", {})} | {int(bundle["stats"]["steps"])})


def generator_hash(bundle: dict, steps: int | None = None) -> str:
    """Identity of the generator at ``steps`` (None: the final one), for resume keys and provenance; the
    training hash leaves the budget out (it may be extended), so the budget is named here."""
    return f"{bundle['hash']}@{steps or bundle['stats']['steps']}"


def load_generator(bundle: dict, device: torch.device, steps: int | None = None):
    """The EMA UNet of a training bundle after ``steps`` steps (None: the final one), in eval mode."""
    from diffusers import UNet2DModel

    if steps in (None, bundle["stats"]["steps"]):
        state = bundle["state_dict"]
    elif str(steps) in bundle.get("snapshots", {}):
        state = bundle["snapshots"][str(steps)]
    else:
        raise GeneratorBudgetError(
            f"the generator has no snapshot after {steps} steps (it has {generator_steps(bundle)}); the variants' "
            f"'steps' decide which snapshots training keeps: rerun the train_diffusion rule after changing them")
    model = UNet2DModel.from_config(bundle["unet_config"])
    if bundle.get("cond_dim"):
        _install_projection(model, bundle["cond_dim"])
    model.load_state_dict(state)
    return model.to(device).eval()
