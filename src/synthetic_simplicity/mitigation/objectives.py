"""What one training step optimises, per method: ERM, group-balanced reweighting or resampling, GroupDRO,
a source-adversarial head with gradient reversal, and fingerprint-destroying augmentation.

A group is one class x source cell of the training set (the source of every training image is known).
Each objective is handed to ``classifier.training.train_classifier``, which calls ``order`` once per
epoch, ``transform`` and ``loss`` once per batch, and saves ``state_dict`` in its checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..classifier.training import head_of, per_image_loss
from ..core.errors import PipelineError
from .augment import fingerprint_augment

METHODS = ("erm", "reweight", "groupdro", "adversarial", "dfr", "harmonise", "augment", "two_stage")


def training_groups(label: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Group id per training image: 2 * class + source (class 0 real = 0, ..., class 1 synthetic = 3)."""
    return 2 * np.asarray(label, np.int64) + np.asarray(source, np.int64)


class Objective:
    """The base: a random permutation per epoch and the mean loss (ERM itself trains without an
    objective, exactly as before the arms existed); subclasses change one part. ``modules`` are extra
    trained modules (the adversary head)."""

    def __init__(self):
        self.modules: dict[str, nn.Module] = {}

    def order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(n, generator=generator)

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        return per_image_loss(logits, targets).mean()

    def end_epoch(self, history: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def close(self) -> None:
        """Training is over: release anything attached to the model."""


class GroupReweighting(Objective):
    """Every present group weighs the same in expectation: weight N / (G n_g) per image, either in the
    loss (``mode: loss``) or as sampling probabilities of each epoch's draw with replacement (``sample``)."""

    def __init__(self, groups: np.ndarray, mode: str):
        super().__init__()
        present, counts = np.unique(groups, return_counts=True)
        per_group = dict(zip(present.tolist(), (len(groups) / (len(present) * counts)).tolist()))
        self.weights = torch.tensor([per_group[g] for g in groups.tolist()], dtype=torch.float32)
        self.mode = mode

    def order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.mode == "sample":
            return torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return super().order(n, generator)

    def loss(self, logits, targets, idx):
        losses = per_image_loss(logits, targets)
        if self.mode == "sample":
            return losses.mean()
        return (losses * self.weights[idx].to(losses.device)).mean()


class GroupDro(Objective):
    """Online GroupDRO (Sagawa et al. 2020, Algorithm 1): a distribution q over the present groups moves
    towards the groups with the highest loss (q_g <- q_g exp(step_size * loss_g)), and the loss is the
    q-weighted sum of group means. q is logged after every epoch (``history["group_weights"]``)."""

    def __init__(self, groups: np.ndarray, step_size: float):
        super().__init__()
        self.present = np.unique(groups)
        self.groups = torch.as_tensor(np.searchsorted(self.present, groups))
        self.q = torch.full((len(self.present),), 1.0 / len(self.present))
        self.step_size = step_size

    def loss(self, logits, targets, idx):
        losses = per_image_loss(logits, targets)
        g = self.groups[idx].to(losses.device)
        sums = torch.zeros(len(self.present), device=losses.device).index_add(0, g, losses)
        counts = torch.zeros(len(self.present), device=losses.device).index_add(0, g, torch.ones_like(losses))
        means = sums / counts.clamp(min=1)
        seen = (counts > 0).cpu()
        q = self.q.clone()
        q[seen] = q[seen] * torch.exp(self.step_size * means.detach().cpu()[seen])
        self.q = q / q.sum()
        return (self.q.to(losses.device) * means).sum()

    def end_epoch(self, history):
        history.setdefault("group_weights", []).append(
            {int(g): round(float(w), 6) for g, w in zip(self.present, self.q)})

    def state_dict(self):
        return {"q": self.q.clone()}

    def load_state_dict(self, state):
        self.q = state["q"].clone()


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


class SourceAdversary(Objective):
    """A head predicts each image's source from the classifier's penultimate features through a gradient
    reversal layer (Ganin et al. 2016): the head learns the source, the features learn to hide it.

    The reversal weight ramps as weight x (2 / (1 + exp(-10 p)) - 1) over training progress p when
    ``ramp`` is on (Ganin's schedule, with p counted in whole epochs: 0 in the first epoch, so the
    head first learns the source), else it is ``weight`` throughout."""

    def __init__(self, sources: np.ndarray, model: nn.Module, epochs: int, weight: float, hidden: int, ramp: bool):
        super().__init__()
        self.sources = torch.as_tensor(np.asarray(sources, np.int64))
        head = head_of(model)
        self.adversary = nn.Sequential(nn.Linear(head.in_features, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.modules = {"adversary": self.adversary}
        self.weight, self.ramp, self.epochs = weight, ramp, epochs
        self.epoch, self._features = 0, None
        self._hook = head.register_forward_hook(self._capture)
        self._correct = self._seen = 0

    def _capture(self, module, inputs, output):
        self._features = inputs[0]

    def _lambda(self) -> float:
        if not self.ramp:
            return self.weight
        p = self.epoch / max(self.epochs, 1)
        return self.weight * (2.0 / (1.0 + np.exp(-10.0 * p)) - 1.0)

    def loss(self, logits, targets, idx):
        task = per_image_loss(logits, targets).mean()
        source = self.sources[idx].to(logits.device)
        source_logits = self.adversary(_ReverseGradient.apply(self._features.float(), self._lambda()))
        self._correct += int((source_logits.argmax(1) == source).sum())
        self._seen += len(idx)
        # The reversal carries the weight; the head itself always learns at full strength.
        return task + nn.functional.cross_entropy(source_logits, source)

    def end_epoch(self, history):
        history.setdefault("adversary_source_accuracy", []).append(round(self._correct / max(self._seen, 1), 6))
        self._correct = self._seen = 0
        self.epoch += 1

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.epoch = state["epoch"]

    def close(self):
        self._hook.remove()
        self._features = None


class FingerprintAugmentation(Objective):
    """Every training image goes through ``augment.fingerprint_augment`` (noise, blur, contrast,
    re-quantisation), so pixel-level traces of a generator stop being reliable."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg

    def transform(self, x, generator):
        return fingerprint_augment(x, generator, self.cfg)


def build_objective(method: str, settings: dict | None, label: np.ndarray, source: np.ndarray, model: nn.Module,
                    epochs: int, key: str):
    """The objective of a method trained by ``train_classifier``; None for the methods that train plain
    ERM, on other data for harmonise and two_stage. ``settings``: the method's entry of the dataset's
    mitigation section; ``key`` names the config key of the method list in messages. dfr only refits a
    head (``mitigation.dfr``) and has no objective."""
    if method in ("erm", "harmonise", "two_stage"):
        return None
    if method == "reweight":
        return GroupReweighting(training_groups(label, source), settings["mode"])
    if method == "groupdro":
        return GroupDro(training_groups(label, source), settings["step_size"])
    if method == "adversarial":
        return SourceAdversary(source, model, epochs, settings["weight"], settings["hidden"], settings["ramp"])
    if method == "augment":
        return FingerprintAugmentation(settings)
    raise PipelineError(f"method {method!r} is not trained by train_classifier (config key '{key}'; dfr "
                        f"refits ERM's head in train_dfr; methods: {METHODS})")
