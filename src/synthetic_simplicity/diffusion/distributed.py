"""The generator on several GPUs: one job, ``gpus`` processes (DDP, NCCL on CUDA, gloo on the CPU).

The job starts the processes, each running this module's ``main``; each trains on its slice of every
step's seeded global batch (``training._step_batch``) and DDP averages their gradients, so N processes
give what one process gives with the same global batch, up to the order of floating-point sums.
Process 0 writes the checkpoints and the bundle; a killed run resumes from them. Why not torchrun,
torch.multiprocessing or accelerate: docs/decisions.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..core.config import ConfigError
from ..core.errors import PipelineError
from ..core.runtime import atomic_torch_save, load_torch, seed_everything

log = logging.getLogger(__name__)


def check_gpus(gpus: int, batch_size: int, section: str, device: torch.device | None = None,
               visible: int | None = None) -> None:
    """``gpus`` processes must share the global batch evenly and, on CUDA, have a GPU each.

    ``visible``: the CUDA devices this process sees (default: torch's count), for CUDA devices only.
    """
    if batch_size % gpus:
        lower, upper = batch_size // gpus * gpus, -(-batch_size // gpus) * gpus
        raise ConfigError(
            f"config key '{section}.batch_size' is {batch_size}, the global batch, which the job's {gpus} training "
            f"processes (one per GPU: '{section}.gpus', or fewer where --resources gpu caps it) must share evenly; "
            f"make it a multiple of {gpus} (e.g. {lower or upper} or {upper}); see config/README.md")
    if gpus == 1 or device is None or device.type != "cuda":
        return
    if device.index is not None:
        raise ConfigError(f"config key 'device' is '{device}', one GPU, but '{section}.gpus' is {gpus}; use "
                          f"device: cuda (or auto) and choose the GPUs with CUDA_VISIBLE_DEVICES")
    visible = torch.cuda.device_count() if visible is None else visible
    if gpus > visible:
        raise ConfigError(
            f"config key '{section}.gpus' is {gpus}, but this job sees {visible} CUDA device(s) "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); lower it, or run where "
            f"{gpus} GPUs are free (locally: --resources gpu={gpus}; on SLURM the rule asks for --gpus={gpus})")


def train_on_processes(real_path: str, cfg: dict, section: str, seed: int, device: torch.device, precision: str,
                       ckpt_dir: str | Path, gpus: int, threads: int | None, progress: bool,
                       snapshots: list[int]) -> dict:
    """Train with ``gpus`` processes on this machine and return process 0's bundle (``training``'s).

    The processes' output (progress bar, warnings, tracebacks) goes to this process's stderr, which a
    job sends to its log. An expected failure in a process (``PipelineError``) is raised here with its
    message alone; when one process fails, the others are stopped.
    """
    import torch.distributed as dist

    check_gpus(gpus, cfg["batch_size"], section, device)
    run_dir = Path(ckpt_dir) / "processes"  # beside the checkpoints, removed with them
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    per_process = max(1, (threads or torch.get_num_threads()) // gpus)
    # The processes meet at a store this process holds on a free port: no port to choose or collide.
    store = dist.TCPStore("127.0.0.1", 0, None, True, wait_for_workers=False)
    spec = {"real": str(real_path), "cfg": cfg, "section": section, "seed": seed, "device": device.type,
            "precision": precision, "ckpt_dir": str(ckpt_dir), "threads": per_process, "progress": progress,
            "snapshots": list(snapshots), "processes": gpus, "store_port": store.port, "parent": os.getpid()}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    log.info("training on %d processes (%s, %s), %d thread(s) and %d images of the global batch each",
             gpus, "NCCL" if device.type == "cuda" else "gloo", device.type, per_process, cfg["batch_size"] // gpus)
    env = os.environ | {"OMP_NUM_THREADS": str(per_process)}
    # Started in this job's process group, so whatever kills the job (SLURM, Ctrl-C) kills them too.
    processes = [subprocess.Popen([sys.executable, "-m", __name__, str(run_dir / "spec.json"), str(rank)],
                                  env=env, stdout=sys.stderr, stderr=sys.stderr) for rank in range(gpus)]
    try:
        while any(p.poll() is None for p in processes) and not any(p.returncode for p in processes):
            time.sleep(0.2)
    finally:
        for p in processes:  # after a failure the others would wait for it in their next all-reduce
            if p.poll() is None:
                p.terminate()
        codes = [p.wait() for p in processes]
    errors = sorted(run_dir.glob("error.rank*"))
    if errors:
        raise PipelineError(errors[0].read_text())
    if any(codes):
        # A process killed by a signal (OOM killer) is the cause; the others then fail in an all-reduce.
        rank = min((r for r, c in enumerate(codes) if c), key=lambda r: codes[r] > 0)
        how = f"was killed by signal {-codes[rank]}" if codes[rank] < 0 else f"failed (exit code {codes[rank]})"
        raise RuntimeError(f"training process {rank} of {section} {how}; exit codes of all: {codes}; "
                           f"their tracebacks are above in this log")
    return load_torch(run_dir / "bundle.pt")


def _die_with(parent: int) -> None:
    """A process that outlived its killed job would train on beside the job's retry: on Linux the
    kernel kills it when the job process dies (PR_SET_PDEATHSIG); elsewhere a killed job's process
    group, which holds these processes, goes with it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def main(spec_path: str, rank: int) -> None:
    """One training process of ``train_on_processes``."""
    import torch.distributed as dist

    from ..core.imageset import open_images
    from .jobs import generator_inputs
    from .training import train_diffusion

    spec = json.loads(Path(spec_path).read_text())
    _die_with(spec["parent"])
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s %(levelname)s %(name)s (process {rank}): %(message)s")
    device = torch.device("cuda", rank) if spec["device"] == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    store = dist.TCPStore("127.0.0.1", spec["store_port"], None, False)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=rank,
                            world_size=spec["processes"])
    try:
        seed_everything(spec["seed"], spec["threads"])
        rows, conditions, num_classes, _ = generator_inputs(spec["real"])
        bundle = train_diffusion(open_images(spec["real"], rows), conditions, num_classes, spec["cfg"], spec["seed"],
                                 device, spec["precision"], spec["ckpt_dir"], section=spec["section"],
                                 progress=spec["progress"] and rank == 0, snapshots=spec["snapshots"])
        if rank == 0:
            atomic_torch_save(bundle, Path(spec_path).parent / "bundle.pt")
    except PipelineError as error:
        (Path(spec_path).parent / f"error.rank{rank}").write_text(str(error))
        raise SystemExit(1) from None
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
