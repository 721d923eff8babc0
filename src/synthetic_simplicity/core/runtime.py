"""Device, precision and determinism choices shared by the training and sampling stages."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_output
from .errors import PipelineError, TrainingDivergedError

log = logging.getLogger(__name__)

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# An in-memory image set up to this size is copied to the GPU once per pass and its batches are
# gathered there (uint8: MNIST's 5,000 digits are 3.9 MB, 10,000 CAMUS frames at 256 px 655 MB).
RESIDENT_BYTES = 2**30
# Under fp16 loss scaling a step with a non-finite loss is skipped; this many in a row is divergence.
MAX_SKIPPED_IN_A_ROW = 10


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"config key 'device' is {name!r} but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


def _cpu_has_amx() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.is_file() and "amx_bf16" in cpuinfo.read_text()


def _cuda_has_native_bf16(device: torch.device) -> bool:
    """bf16 in hardware: compute capability 8.0 (Ampere) or later. torch's ``is_bf16_supported``
    also says yes where bf16 is only emulated (e.g. V100, T4), which is slower than fp16."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 autocast where the hardware has it; on older GPUs fp16 with loss scaling; fp32
    on CPUs without AMX.

    Decided by hardware, not by a timing probe, so the same machine always makes the same choice
    (and the same numbers). CPU bf16 pays off with AMX (3x measured, DESIGN.md §6) but not without
    it (1.05x measured on AVX-512 EPYC), so it is used only where AMX is present. fp16 is never
    chosen on a CPU (``fp16`` there is for tests of the loss-scaling path).
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if _cuda_has_native_bf16(device) else "fp16"
    return "bf16" if _cpu_has_amx() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision in _AUTOCAST_DTYPES:
        return torch.autocast(device.type, dtype=_AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, precision: str):
    """The loss scaler fp16 training needs (its gradients underflow without one); None otherwise.

    ``torch.amp.GradScaler(device)`` exists from torch 2.3; before it, only the CUDA one."""
    if precision != "fp16":
        return None
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type)
    if device.type == "cuda":
        return torch.cuda.amp.GradScaler()
    raise PipelineError(f"precision fp16 on the CPU needs torch >= 2.3 (this is {torch.__version__}); set the "
                        "section's precision to fp32 or bf16")


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler=None, clip=None,
                   grad_clip: float | None = None) -> None:
    """Backward and one optimiser step, the gradient norm of ``clip`` (parameters) clipped to
    ``grad_clip``. With a loss scaler (fp16), the gradients are unscaled before clipping, and a step
    whose gradients are not finite is skipped while the scale is lowered (``torch.amp``)."""
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(clip, grad_clip)
        opt.step()
        return
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(clip, grad_clip)
    scaler.step(opt)
    scaler.update()


def use_channels_last(setting: str | bool, device: torch.device, precision: str) -> bool:
    """``auto``: channels-last memory on CUDA under bf16/fp16 autocast, where cuDNN's tensor-core
    convolutions work in NHWC and NCHW inputs cost transposes; never on the CPU, whose numbers stay
    as they were. ``true`` / ``false`` force it."""
    if setting == "auto":
        return device.type == "cuda" and precision in _AUTOCAST_DTYPES
    return bool(setting)


def maybe_compile(module: torch.nn.Module, enabled: bool, section: str):
    """``torch.compile(module)`` when asked for and this torch has it, else the module itself.

    The compiled wrapper is used for forward passes only; state dicts are read from ``module``, so
    checkpoints and bundles keep their plain keys. A model that torch cannot compile (no C++
    compiler, an unsupported op) runs eagerly with a warning instead of failing the job."""
    if not enabled:
        return module
    if not hasattr(torch, "compile"):
        log.warning("config key '%s.compile' is true, but torch %s has no torch.compile; training eagerly",
                    section, torch.__version__)
        return module
    try:
        from torch import _dynamo

        _dynamo.config.suppress_errors = True  # a failed compilation falls back to eager, with a warning
        _dynamo.reset()  # each run of a several-run job compiles afresh, as it would in its own process
    except (ImportError, AttributeError):
        pass
    log.info("%s: compiling the model with torch.compile (the first steps include compilation)", section)
    try:
        return torch.compile(module)
    except RuntimeError as err:  # e.g. a torch and Python pairing that torch.compile does not support
        log.warning("config key '%s.compile' is true, but torch.compile failed (%s); training eagerly", section, err)
        return module


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seeds the global generators and asks for deterministic kernels.

    On CUDA, cuBLAS is deterministic only with a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, read
    when cuBLAS starts, so it is set here, before any job touches the GPU; a value the user set is
    kept). Ops without a deterministic CUDA kernel warn (``warn_only``) rather than stop the job:
    README "GPU" states what is promised."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)


def job_runtime(seed: int, device_name: str, precision: str, threads: int | None = None) -> tuple[torch.device, str]:
    """The preamble of every training or sampling job: seeded, on its device, at its precision."""
    seed_everything(seed, threads)
    device = resolve_device(device_name)
    return device, resolve_precision(precision, device)


def to_device(t: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    """``t`` on ``device``. A CPU tensor bound for CUDA goes through pinned memory and is copied
    without waiting: a copy from pageable memory makes the CPU wait until the GPU has finished
    everything queued before it, so the next step could not be queued meanwhile."""
    if device is None or device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return (t if t.is_pinned() else t.pin_memory()).to(device, non_blocking=True)


def resident(images, device: torch.device):
    """On CUDA, an in-memory uint8 image array of up to ``RESIDENT_BYTES``, copied to the GPU in one
    piece so that batches are gathered there (``take``); anything else is returned as it is."""
    if device.type == "cuda" and isinstance(images, np.ndarray) and images.nbytes <= RESIDENT_BYTES:
        return to_device(torch.from_numpy(np.ascontiguousarray(images)), device)
    return images


def take(images, index) -> np.ndarray | torch.Tensor:
    """``images[index]``: gathered on the GPU for a ``resident`` tensor, else read as an array."""
    if isinstance(images, torch.Tensor) and images.device.type == "cuda":
        return images[to_device(torch.as_tensor(np.asarray(index)), images.device)]
    return images[np.asarray(index)]


def images_to_tensor(images: np.ndarray | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """uint8 (N,H,W) or (N,C,H,W), array or tensor -> float32 (N,C,H,W) in [-1, 1] on ``device``.

    Converted where it lands, so a quarter of the bytes cross to a GPU and the host holds no float copy.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    x = to_device(x, device)
    if x.ndim == 3:
        x = x[:, None]
    return x.to(torch.float32, copy=True).div_(127.5).sub_(1.0)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float (N,C,H,W) in [-1, 1] -> uint8, squeezing a single channel back to (N,H,W)."""
    u8 = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    return u8[:, 0] if u8.shape[1] == 1 else u8


def _check_plain(obj, where: str) -> None:
    """Only what ``torch.load(weights_only=True)`` accepts: tensors, numbers, strings, None and
    containers of them. A numpy value would make the file unloadable without running its pickle."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, where)
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not (obj is None or type(obj) in (bool, int, float, str) or isinstance(obj, (torch.Tensor, torch.Size))):
        raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__name__}; bundles hold only tensors, "
                        "numbers, strings, lists and dicts (cast it, e.g. str() or .tolist())")


def atomic_torch_save(obj, path: str | Path) -> None:
    """torch.save under a temporary name; refuses anything ``load_torch`` could not read back."""
    _check_plain(obj, "bundle")
    # Through a file object: torch.save names the archive's records after a path's file name, which
    # here is the temporary one (it holds the PID), so identical runs would write different bytes.
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load_torch(path: str | Path):
    """A file the pipeline saved with torch.save, read so that it cannot run code (weights_only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


class LossRecord:
    """A training loop's per-step losses, kept on their device and read in bulk.

    Reading a CUDA loss makes the CPU wait for the GPU, so the next steps cannot be queued while it
    computes; CUDA losses are read every ``every`` steps (and when the loop asks), CPU losses at every
    step as before. A non-finite loss is divergence (``on_diverged`` raises), except under fp16 loss
    scaling (``scaled``), where such a step was skipped by the scaler and only
    ``MAX_SKIPPED_IN_A_ROW`` of them in a row are divergence.
    """

    def __init__(self, device: torch.device, scaled: bool, every: int = 100):
        self.every = every if device.type == "cuda" else 1
        self.scaled = scaled
        self.pending: list[tuple[torch.Tensor, int]] = []
        self.added = 0
        self.in_a_row = 0
        self.skipped = 0

    def add(self, loss: torch.Tensor, images: int = 1) -> bool:
        """Keep a step's loss (the mean over ``images``); True when a read is due."""
        self.pending.append((loss.detach(), images))
        self.added += 1
        return len(self.pending) >= self.every

    def read(self, on_diverged: Callable[[float, int], None]) -> list[tuple[float, int]]:
        """(loss, images) of the steps since the last read whose loss is finite. ``on_diverged(loss,
        step)`` gets the first offending loss and its step, counted from 0 at this record's start."""
        if not self.pending:
            return []
        values = torch.stack([loss for loss, _ in self.pending]).tolist()
        first = self.added - len(self.pending)
        sizes = [n for _, n in self.pending]
        self.pending = []
        kept = []
        for i, (value, n) in enumerate(zip(values, sizes)):
            if math.isfinite(value):
                self.in_a_row = 0
                kept.append((value, n))
                continue
            self.in_a_row += 1
            self.skipped += 1
            if not self.scaled or self.in_a_row >= MAX_SKIPPED_IN_A_ROW:
                on_diverged(value, first + i)
        return kept

    def diverged(self, section: str, learning_rate: float, value: float, where: str) -> TrainingDivergedError:
        """The error that stops a diverged loop, naming the config key to change."""
        why = f" ({MAX_SKIPPED_IN_A_ROW} steps in a row; under fp16 loss scaling single ones are skipped)" \
            if self.scaled else ""
        return TrainingDivergedError(
            f"the {section} loss became {value} {where}{why}: training diverged; lower config key "
            f"'{section}.learning_rate' (now {learning_rate:g}), e.g. by a factor of 10")


def scaler_record(record: LossRecord, scaler) -> dict:
    """What fp16 loss scaling did, for a perf record (nothing without a scaler): steps whose loss was not
    finite (the scaler also skips steps whose gradients overflow with a finite loss; those show only
    as a lower final scale)."""
    if scaler is None:
        return {}
    return {"nonfinite_loss_steps": record.skipped, "loss_scale": float(scaler.get_scale())}


def peak_memory_mib(device: torch.device) -> dict:
    """Peak memory: the GPU memory torch allocated on CUDA since the last ``Stopwatch`` started, and the
    process's resident CPU memory so far (the kernel keeps no per-loop peak)."""
    peak = {"cpu_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        peak["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak


PERF_MARK = "perf "


def log_perf(stage: str, images: int, seconds: float, device: torch.device, **extra) -> dict:
    """One machine-readable log line of a stage's throughput and peak memory
    (``benchmarks/gpu_check.py`` reads them back with ``read_perf``)."""
    record = {"stage": stage, "images": int(images), "seconds": round(seconds, 3),
              "images_per_s": round(images / seconds, 1) if seconds > 0 else None, "device": str(device),
              **peak_memory_mib(device), **extra}
    log.info("%s%s", PERF_MARK, json.dumps(record))
    return record


def read_perf(text: str) -> list[dict]:
    """The ``log_perf`` records in a job log's text."""
    mark = f" {PERF_MARK}{{"
    return [json.loads(line[line.index(mark) + len(PERF_MARK) + 1 :]) for line in text.splitlines() if mark in line]


class Stopwatch:
    """Seconds since start, with the device's queued work finished first (CUDA runs asynchronously)."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":  # the GPU peak in a perf record is this timed loop's, not an earlier run's in the job
            torch.cuda.reset_peak_memory_stats(device)
        self.start = time.perf_counter()

    def seconds(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self.start
