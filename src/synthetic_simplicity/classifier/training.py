"""Training a classifier and predicting with it; single-label (cross-entropy, Study A) or multi-label
(BCE, Study B).

Images are read batch by batch from anything indexable by an index array (an array, or
``imageset.H5Images`` for sets larger than memory), optionally in DataLoader worker processes. On CUDA
an in-memory set is gathered on the GPU, a streamed one arrives in pinned memory, and losses are read
in bulk (``core.runtime``), so the CPU queues the next steps while the GPU computes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.config import config_hash, resume_settings
from ..core.errors import PipelineError
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
    use_channels_last,
)
from ..core.seeds import derive_seed
from .augment import recipe_batch
from .models import build_classifier, load_pretrained

log = logging.getLogger(__name__)

# Keys that may change without invalidating a checkpoint: the learning rate is constant, so a run
# extended from k to more epochs continues exactly as an uninterrupted run of the longer budget;
# the number of loader processes never changes which images form a batch; the best epoch is always
# tracked, so which one is returned (selection) and when to stop (patience) only read that record.
RESUMABLE_KEYS = ("epochs", "loader_workers", "selection", "patience")
SELECTIONS = ("last", "best_val_loss")
# Study B's recipe (issue 16) and the GPU settings (issue 15), each with the value that trains as before;
# at that value a key stays out of the resume key, so earlier checkpoints stay valid. classifier.augment
# holds the recipe's meaning; channels_last and compile change the floating-point order, so a run
# with another value is a new run.
ADDED_KEYS = {"augment": None, "mix": None, "label_smoothing": 0.0, "ema_decay": None, "grad_clip": None,
              "no_decay_1d": False, "channels_last": "auto", "compile": False}


class _Batches(torch.utils.data.Dataset):
    """``dataset[index_array]`` -> one uint8 batch; the sampler hands over whole batches."""

    def __init__(self, images):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[np.asarray(index)]


def iter_batches(images, batches: list[np.ndarray], workers: int, device: torch.device | None = None):
    """uint8 batches in the given order, read in ``workers`` processes (0: in this one); the consumer
    converts them on its device (``images_to_tensor``). A quarter of the bytes cross between processes,
    and a worker never allocates float batches (at 256x256 its allocator kept ~1 GiB of them).

    For CUDA (``device``), an in-memory set is copied to the GPU once per pass and each batch gathered there
    (no worker would help), and a streamed set's batches arrive in pinned memory, ready for a copy
    that does not wait for the GPU."""
    cuda = device is not None and device.type == "cuda"
    if cuda:
        on_gpu = resident(images, device)
        if isinstance(on_gpu, torch.Tensor):
            return (take(on_gpu, b) for b in batches)
    return torch.utils.data.DataLoader(_Batches(images), sampler=batches, batch_size=None, num_workers=workers,
                                       prefetch_factor=4 if workers else None, persistent_workers=False,
                                       pin_memory=cuda)


def _on_device(x, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = images_to_tensor(x, device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class indices; BCE for multi-label targets, where NaN (an uncertain label
    under the "ignore" policy) is left out of the mean."""
    if targets.ndim == 1:
        return nn.functional.cross_entropy(logits, targets)
    known = ~torch.isnan(targets)
    losses = nn.functional.binary_cross_entropy_with_logits(logits, torch.nan_to_num(targets), reduction="none")
    return (losses * known).sum() / known.sum().clamp(min=1)


def per_image_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per image (Study A's single-label targets), for objectives that weight images."""
    return nn.functional.cross_entropy(logits, targets, reduction="none")


def head_of(model: nn.Module) -> nn.Linear:
    """The model's last linear layer: its input is the penultimate feature vector."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def state_digest(state: dict) -> str:
    """A digest of a state dict's tensors, for resume keys of runs that start from given weights."""
    return array_digest(*(state[k].detach().cpu().numpy() for k in sorted(state)))


def _targets(labels: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(labels, dtype=torch.long if np.ndim(labels) == 1 else torch.float32)


@torch.no_grad()
def mean_loss(model: nn.Module, images, targets: torch.Tensor, batch_size: int, device: torch.device,
              precision: str, workers: int = 0, channels_last: bool = False) -> float:
    """The training loss averaged over a held-out set, in eval mode."""
    model.eval()
    batches = [np.arange(i, min(i + batch_size, len(images))) for i in range(0, len(images), batch_size)]
    losses = []
    for idx, x in zip(batches, iter_batches(images, batches, workers, device)):
        with autocast(device, precision):
            logits = model(_on_device(x, device, channels_last)).float()
        losses.append(_loss(logits, to_device(targets[idx], device)))
    # Read once at the end (each .item() would make the CPU wait for the GPU), summed in this order
    # as the per-batch floats always were.
    total = 0.0
    for value, idx in zip(torch.stack(losses).tolist(), batches):
        total += value * len(idx)
    return total / len(images)


def _ema(model: nn.Module, decay: float | None):
    """Study B's EMA of the weights and buffers (bkh_pytorch_utils' callback): a copy of the initial
    state, then state <- decay state + (1 - decay) new state after every optimiser step."""
    if decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.update_parameters(model)  # the first update copies: the average starts at the initial state
    return ema


def _stopped(history: dict, patience: int | None) -> bool:
    """Early stopping: ``patience`` epochs without a better validation loss than the best so far."""
    best = history["best_epoch"]
    return patience is not None and best is not None and len(history["val_loss"]) - best >= patience


def train_classifier(
    images,
    labels: np.ndarray,
    num_classes: int,
    architecture: str,
    cfg: dict,
    seed: int,
    device: torch.device,
    precision: str,
    ckpt_path: str | Path,
    val: tuple | None = None,
    section: str = "classifier",
    progress: bool = True,
    make_objective=None,
    init_state: dict | None = None,
) -> tuple[nn.Module, dict]:
    """Train (from scratch, or from ``cfg["pretrained"]``) and return the model with its history.

    A checkpoint after every epoch lets a killed job resume at that epoch. ``labels`` are class
    indices (N,) or multi-label targets (N, L). With ``val`` = (images, labels), the validation loss
    is measured after every epoch and the best epoch kept: ``cfg["selection"]`` returns that epoch's
    weights (``best_val_loss``) or the last ones (``last``), and ``cfg["patience"]`` stops after that
    many epochs without improvement. ``section`` names the config section in error messages.

    Study B's recipe is in ``cfg`` too (``ADDED_KEYS``; each off by default): ``augment``, ``mix`` and
    ``label_smoothing`` change the training batches (``classifier.augment``), ``grad_clip`` clips the
    gradient norm, ``no_decay_1d`` spares 1-D parameters weight decay, and with ``ema_decay`` an EMA of
    the weights is what is validated, selected and returned (checkpointed, so a resume is exact).
    So are the GPU settings: ``channels_last`` (``core.runtime.use_channels_last``), ``compile``
    (``torch.compile``); precision ``fp16`` trains with a loss scaler, checkpointed too.

    ``make_objective(model)`` builds an objective (``mitigation.objectives``; None: the mean loss over a
    random permutation) that sets each epoch's order, a per-batch transform, the loss and any extra
    trained modules (built right after the model, from the same seed); ``init_state``
    starts from given weights instead of ``cfg["pretrained"]`` or scratch (two-stage training).
    """
    cfg = ADDED_KEYS | cfg
    selection, patience = cfg.get("selection", "last"), cfg.get("patience")
    if selection not in SELECTIONS:
        raise PipelineError(f"config key '{section}.selection' is {selection!r}; choose one of {SELECTIONS}")
    if (selection != "last" or patience is not None) and (val is None or len(val[1]) == 0):
        raise PipelineError(f"config key '{section}.selection: {selection}' / 'patience: {patience}' needs "
                            "validation images, and this run has none; give the data a validation split "
                            "(assembly.val_fraction or data.val_fraction above 0) or set selection: last, "
                            "patience: null")
    y_all = _targets(labels)
    if cfg["label_smoothing"] and (y_all.ndim != 2 or y_all.shape[1] < 2):
        raise PipelineError(f"config key '{section}.label_smoothing' needs two or more labels: with one, Study B's "
                            "rule (off = s / L, a positive becomes 1 - s + 2 off) puts the positive target "
                            "above 1; set it to 0")
    in_channels = images_to_tensor(images[np.arange(1)]).shape[1]
    torch.manual_seed(derive_seed(seed, "init"))
    model = build_classifier(architecture, in_channels, num_classes)
    if init_state is not None:
        model.load_state_dict(init_state)
    elif cfg.get("pretrained"):
        load_pretrained(model, cfg["pretrained"])
    objective = None if make_objective is None else make_objective(model)
    model = model.to(device)
    nhwc = use_channels_last(cfg["channels_last"], device, precision)
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
    extra = {} if objective is None else {name: m.to(device) for name, m in objective.modules.items()}
    params = [p for m in (model, *extra.values()) for p in m.parameters()]
    opt = build_optimizer(cfg["optimizer"], params, cfg["learning_rate"], cfg["weight_decay"], cfg["no_decay_1d"])
    scaler = grad_scaler(device, precision)
    ema = _ema(model, cfg["ema_decay"])
    evaluated = model if ema is None else ema.module  # the weights validated, selected and returned
    net = maybe_compile(model, cfg["compile"], section)  # for training steps; state is read from model
    # Everything that shapes the model: the section, the seed and exactly which images and targets.
    run_hash = config_hash(resume_settings(cfg, RESUMABLE_KEYS, ADDED_KEYS)
                           | {"seed": seed, "arch": architecture, "images": data_key(images),
                              "targets": array_digest(labels),
                              "val": None if val is None else [data_key(val[0]), array_digest(val[1])],
                              "init": None if init_state is None else state_digest(init_state)})
    val_targets = None if val is None else _targets(val[1])
    history = {"train_loss": [], "val_loss": [], "best_epoch": None}
    best_state = None
    ckpt_path = Path(ckpt_path)
    epoch = 0
    if ckpt_path.is_file():
        state = load_torch(ckpt_path)
        if state["hash"] == run_hash and state["epoch"] <= cfg["epochs"]:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            for name, module in extra.items():
                module.load_state_dict(state["extra"][name])
            if objective is not None:
                objective.load_state_dict(state["objective"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            epoch, history, best_state = state["epoch"], state["history"], state["best_state"]
            log.info("resuming from %s at epoch %d", ckpt_path, epoch)
    record = LossRecord(device, scaled=scaler is not None)
    workers = cfg.get("loader_workers", 0)
    bar = tqdm(total=cfg["epochs"], initial=epoch, desc=f"{architecture}", disable=not progress)
    clock, trained = Stopwatch(device), 0
    while epoch < cfg["epochs"] and not _stopped(history, patience):
        model.train()
        generator = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
        order = torch.randperm(len(y_all), generator=generator) if objective is None \
            else objective.order(len(y_all), generator)
        batches = [order[i : i + cfg["batch_size"]].numpy() for i in range(0, len(order), cfg["batch_size"])]

        def diverged(value: float, step: int) -> None:
            raise record.diverged(section, cfg["learning_rate"], value, f"in epoch {epoch + 1}")

        read = []  # (loss, images) of this epoch's steps, read in bulk
        for idx, x in zip(batches, iter_batches(images, batches, workers, device)):
            x, y = _on_device(x, device, nhwc), to_device(y_all[idx], device)
            if objective is not None:
                x = objective.transform(x, generator)
            x, y = recipe_batch(x, y, generator, cfg)
            with autocast(device, precision):
                logits = net(x).float()
                loss = _loss(logits, y) if objective is None else objective.loss(logits, y, idx)
            if record.add(loss, len(idx)):
                read += record.read(diverged)
            optimizer_step(loss, opt, scaler, params, cfg["grad_clip"])
            if ema is not None:
                ema.update_parameters(model)
            trained += len(idx)
        read += record.read(diverged)
        counted = sum(n for _, n in read)
        # summed in step order, as the per-step floats always were
        history["train_loss"].append(sum(value * n for value, n in read) / counted if counted else float("nan"))
        if objective is not None:
            objective.end_epoch(history)
        if val is not None:
            history["val_loss"].append(mean_loss(evaluated, val[0], val_targets, 4 * cfg["batch_size"], device,
                                                 precision, workers, nhwc))
            best = history["best_epoch"]
            if best is None or history["val_loss"][-1] < history["val_loss"][best - 1]:
                history["best_epoch"] = epoch + 1
                best_state = {k: v.detach().cpu().clone() for k, v in evaluated.state_dict().items()}
        epoch += 1
        atomic_torch_save({"epoch": epoch, "hash": run_hash, "model": model.state_dict(),
                           "optimizer": opt.state_dict(), "history": history, "best_state": best_state,
                           "extra": {name: m.state_dict() for name, m in extra.items()},
                           "objective": {} if objective is None else objective.state_dict(),
                           "ema": None if ema is None else ema.state_dict(),
                           **({} if scaler is None else {"scaler": scaler.state_dict()})}, ckpt_path)
        bar.update(1)
        shown = {"loss": f"{history['train_loss'][-1]:.4f}"}
        if history["val_loss"]:
            shown["val_loss"] = f"{history['val_loss'][-1]:.4f}"
        bar.set_postfix(shown)
        log.info("epoch %d: %s", epoch, ", ".join(f"{k} {v}" for k, v in shown.items()))
    bar.close()
    if trained:
        log_perf("classifier training", trained, clock.seconds(), device, architecture=architecture,
                 precision=precision, channels_last=nhwc, compile=bool(cfg["compile"]),
                 **scaler_record(record, scaler))
    if objective is not None:
        objective.close()
    if nhwc:
        model = model.to(memory_format=torch.contiguous_format)  # model.pt in the usual layout
    history["epochs_run"] = epoch
    history["selected_epoch"] = history["best_epoch"] if selection == "best_val_loss" else epoch
    if selection == "best_val_loss":
        model.load_state_dict(best_state)
    elif ema is not None:
        model.load_state_dict(ema.module.state_dict())
    if _stopped(history, patience) and epoch < cfg["epochs"]:
        log.info("stopped early after epoch %d: no better validation loss for %d epochs", epoch, patience)
    log.info("returning the weights of epoch %d (selection: %s)", history["selected_epoch"], selection)
    return model, history


@torch.no_grad()
def predict(model: nn.Module, images, batch_size: int, device: torch.device, precision: str,
            multilabel: bool = False, workers: int = 0) -> np.ndarray:
    """Probabilities (N, outputs): softmax over classes, or one sigmoid per label."""
    model.eval()
    batches = [np.arange(i, min(i + batch_size, len(images))) for i in range(0, len(images), batch_size)]
    probs = []
    for x in iter_batches(images, batches, workers, device):
        with autocast(device, precision):
            logits = model(images_to_tensor(x, device)).float()
        probs.append(torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1))
    return torch.cat(probs).cpu().numpy()


@torch.no_grad()
def embed(model: nn.Module, images, batch_size: int, device: torch.device, precision: str) -> np.ndarray:
    """(N, D) penultimate features: the input of the model's last linear layer (its head)."""
    head = head_of(model)
    captured = []
    hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].float().cpu()))
    try:
        predict(model, images, batch_size, device, precision)
    finally:
        hook.remove()
    return torch.cat(captured).numpy()


def predictions_frame(pool: np.ndarray, index: np.ndarray, label: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """The per-image predictions contract read by the evaluation stage."""
    frame = pd.DataFrame({"pool": np.where(pool == 0, "real", "synthetic"), "index": index,
                          "label": label, "source": pool.astype(int), "pred": probs.argmax(1)})
    for k in range(probs.shape[1]):
        frame[f"prob_{k}"] = probs[:, k].round(6)
    return frame
