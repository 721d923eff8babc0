"""Device, precision and determinism choices shared by the training and sampling stages."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_output


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


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 autocast where it is faster, else fp32.

    Decided by hardware, not by a timing probe, so the same machine always makes the same choice
    (and the same numbers). CPU bf16 pays off with AMX (3x measured, DESIGN.md §6) but not without
    it (1.05x measured on AVX-512 EPYC), so it is used only where AMX is present.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if _cpu_has_amx() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seeds the global generators and makes CPU kernels deterministic."""
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


def images_to_tensor(images: np.ndarray | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """uint8 (N,H,W) or (N,C,H,W), array or tensor -> float32 (N,C,H,W) in [-1, 1] on ``device``.

    Converted where it lands, so a quarter of the bytes cross to a GPU and the host holds no float copy.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    x = x.to(device)
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
