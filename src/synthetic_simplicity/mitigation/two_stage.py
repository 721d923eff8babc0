"""Two-stage training ("From Fake to Real", Qraitem et al. 2023): learn the task on the synthetic images
of the training set first, then fine-tune the whole network on its real images only, so the second
stage never sees a source difference to exploit."""

from __future__ import annotations

import numpy as np

from ..classifier.training import train_classifier

STAGES = (("synthetic", 1), ("real", 0))


def undefined(labels: np.ndarray, source: np.ndarray) -> str | None:
    """Why two-stage training cannot run on this training set (None when it can): each stage must hold
    both classes, which fails where alpha puts a whole class in one source (alpha 0 and 1)."""
    for name, code in STAGES:
        classes = np.unique(labels[source == code])
        if len(classes) < 2:
            return (f"the {name} stage would train on {len(classes)} class(es) only: at this alpha every "
                    f"{name} training image belongs to one class, so a {name}-only stage cannot learn the task")
    return None


def train_two_stage(images, labels: np.ndarray, source: np.ndarray, val: tuple, num_classes: int,
                    architecture: str, cfg: dict, stage_cfg: dict, seed: int, device, precision: str,
                    checkpoint: str, section: str, progress: bool = True):
    """Stage 1 on the synthetic rows for ``synthetic_epochs``, stage 2 from its weights on the real rows
    for ``real_epochs`` at ``learning_rate x finetune_lr_factor`` (``stage_cfg``: mitigation.two_stage;
    null epochs take classifier.epochs). Each stage resumes from its own checkpoint
    (``<checkpoint stem>_<stage>.pt``). ``val`` = (images, labels, source): each stage validates on its
    own source. Returns the model and both stages' histories."""
    epochs = {"synthetic": stage_cfg["synthetic_epochs"] or cfg["epochs"],
              "real": stage_cfg["real_epochs"] or cfg["epochs"]}
    rates = {"synthetic": cfg["learning_rate"], "real": cfg["learning_rate"] * stage_cfg["finetune_lr_factor"]}
    model, history, state = None, {}, None
    for name, code in STAGES:
        rows, val_rows = np.flatnonzero(source == code), np.flatnonzero(val[2] == code)
        model, history[name] = train_classifier(
            images[rows], labels[rows], num_classes, architecture,
            cfg | {"epochs": epochs[name], "learning_rate": rates[name], "stage": name}, seed, device, precision,
            stage_checkpoint(checkpoint, name), val=(val[0][val_rows], val[1][val_rows]), section=section,
            progress=progress, init_state=state)
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return model, history


def stage_checkpoint(checkpoint: str, stage: str) -> str:
    path = str(checkpoint)
    return f"{path.removesuffix('.pt')}_{stage}.pt"
