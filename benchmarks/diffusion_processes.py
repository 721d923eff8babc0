"""What a preset's generator costs, and the step rate of its training processes on this machine.

Counted (exact, the same on every device): the UNet's parameters, its FLOPs per image at the preset's
image size (training: forward + backward; sampling: one forward per denoising step) and the bytes of a
checkpoint (weights, AdamW moments, EMA; written and measured). Measured (this machine): seconds per
step of the pipeline's training loop at --image-size with --batch images per step, on one process and
on --gpus processes (DDP, each taking batch / gpus; on the CPU each process gets threads / gpus threads,
the one process too, as each process gets one GPU), without checkpoint writes. Printed: the preset's training budget in FLOPs
and, from a per-GPU rate in TFLOP/s (--tflops; measure it with this script on your GPU), its hours.

    python benchmarks/diffusion_processes.py [--preset config/chexpert.yaml] [--section chexpert]
        [--image-size 32] [--batch 4] [--gpus 2] [--steps 3] [--tflops 100]

On a GPU: --image-size 256 --batch 36 --gpus 1 measures Study B's per-GPU step itself.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from synthetic_simplicity.core.config import validate_config
from synthetic_simplicity.core.imageset import ImageSet, open_images, write_imageset
from synthetic_simplicity.core.runtime import job_runtime
from synthetic_simplicity.diffusion.distributed import train_on_processes
from synthetic_simplicity.diffusion.jobs import generator_inputs
from synthetic_simplicity.diffusion.model import build_unet
from synthetic_simplicity.diffusion.training import train_diffusion

ROOT = Path(__file__).resolve().parents[1]
COND_DIM = 22  # Study B's condition vector; Study A sections condition on two classes


def preset_config(preset: Path) -> dict:
    from snakemake.utils import update_config

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load(preset.read_text()))
    return validate_config(config, ROOT / "workflow/schemas/config.schema.yaml")


def flops_per_image(cfg: dict, size: int, cond_dim: int | None) -> tuple[int, float, float]:
    """Parameters, training FLOPs (forward + backward) and forward FLOPs of one image, counted on the
    meta device (no memory, no arithmetic)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_unet(size, 1, None if cond_dim else 2, cfg, cond_dim)
        x, t = torch.zeros(1, 1, model.config.sample_size, model.config.sample_size), torch.tensor([10])
        y = torch.zeros(1, cond_dim) if cond_dim else torch.tensor([0])
    with FlopCounterMode(display=False) as forward:
        with torch.no_grad():
            model(x, t, class_labels=y)
    with FlopCounterMode(display=False) as train:
        model(x, t, class_labels=y).sample.sum().backward()
    return sum(p.numel() for p in model.parameters()), train.get_total_flops(), forward.get_total_flops()


def seconds_per_step(train, steps: int) -> float:
    """``train(n)`` trains (resuming) to step n: one untimed step, then ``steps`` timed ones, without
    the time of writing checkpoints (the final step always writes one; its time varies with the disk)."""
    train(1)
    stats = train(1 + steps)["stats"]
    return (stats["seconds"] - stats["checkpoint_seconds"]) / steps


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", type=Path, default=ROOT / "config/chexpert.yaml")
    p.add_argument("--section", default="chexpert")
    p.add_argument("--image-size", type=int, default=32, help="side of the images timed here")
    p.add_argument("--batch", type=int, default=4, help="global batch of the timed steps")
    p.add_argument("--gpus", type=int, default=2, help="processes of the second timing")
    p.add_argument("--steps", type=int, default=3, help="timed steps (after one untimed step)")
    p.add_argument("--tflops", type=float, help="achieved TFLOP/s per GPU, for the hours of the budget")
    args = p.parse_args()
    config = preset_config(args.preset)
    section = config[args.section]
    cfg, size = section["diffusion"], section["data"]["image_size"]
    cond_dim = COND_DIM if args.section in ("chexpert", "mnist_demo") else None
    device, precision = job_runtime(0, config["device"], cfg["precision"])

    params, train_flops, sample_flops = flops_per_image(cfg, size, cond_dim)
    print(f"{args.section} UNet: {params / 1e6:.1f} M parameters; per {size}x{size} image "
          f"{train_flops / 1e9:.0f} GFLOP to train (forward + backward), {sample_flops / 1e9:.0f} GFLOP per "
          f"sampling step")

    timed = cfg | {"batch_size": args.batch, "checkpoint_every": 10**9, "gpus": 1}
    rng = np.random.default_rng(0)
    n = 64
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_imageset(tmp / "real.h5", ImageSet(
            images=rng.integers(0, 256, (n, args.image_size, args.image_size), dtype=np.uint8),
            label=None if cond_dim else np.arange(n) % 2,
            labels=np.zeros((n, 1), np.float32) if cond_dim else None, source=np.zeros(n), split=np.zeros(n),
            dataset=args.section, class_names=["finding"] if cond_dim else ["a", "b"],
            cond=rng.random((n, cond_dim)).astype(np.float32) if cond_dim else None))
        rows, conditions, num_classes, _ = generator_inputs(tmp / "real.h5")
        images = open_images(tmp / "real.h5", rows)
        # Like GPUs, each process gets the same resources: threads // gpus threads, the 1-process run too.
        threads = torch.get_num_threads()
        per_process = max(1, threads // args.gpus)
        torch.set_num_threads(per_process)
        one = dict(images=images, conditions=conditions, num_classes=num_classes, seed=0, device=device,
                   precision=precision, ckpt_dir=tmp / "one", progress=False)
        s_one = seconds_per_step(lambda n: train_diffusion(cfg=timed | {"steps": n}, **one), args.steps)
        ckpt_bytes = next((tmp / "one").glob("step_*.pt")).stat().st_size
        lines = [f"  1 process:   {s_one:8.2f} s/step"]
        if args.gpus > 1:
            many = dict(real_path=str(tmp / "real.h5"), section=f"{args.section}.diffusion", seed=0, device=device,
                        precision=precision, ckpt_dir=tmp / "many", gpus=args.gpus, threads=per_process * args.gpus,
                        progress=False, snapshots=[])
            s_many = seconds_per_step(lambda n: train_on_processes(cfg=timed | {"steps": n}, **many), args.steps)
            lines.append(f"  {args.gpus} processes: {s_many:8.2f} s/step, {s_one / s_many:.2f}x the 1-process rate "
                         f"(ideal {args.gpus}x; {'NCCL' if device.type == 'cuda' else 'gloo'})")
    print(f"checkpoint (weights, AdamW moments, EMA): {ckpt_bytes / 1e6:.0f} MB on disk, each of "
          f"keep_checkpoints={cfg['keep_checkpoints']}; the bundle holds the EMA weights, ~{params * 4 / 1e6:.0f} MB")
    print(f"measured here: {device} {precision}, {per_process} thread(s) per process, {args.image_size}x"
          f"{args.image_size} images, global batch {args.batch}")
    print("\n".join(lines))
    achieved = args.batch * flops_per_image(cfg, args.image_size, cond_dim)[1] / s_one
    print(f"  = {achieved / 1e12:.3f} TFLOP/s achieved by one process")
    budget = cfg["steps"] * cfg["batch_size"] * train_flops
    print(f"the preset's budget: {cfg['steps']} steps x {cfg['batch_size']} images = "
          f"{cfg['steps'] * cfg['batch_size'] / 1e6:.1f} M images = {budget:.2e} FLOP on {cfg['gpus']} GPU(s)")
    print(f"  at the 1-process rate measured here: {budget / achieved / 3600:.0f} hours")
    if args.tflops:
        print(f"  at {args.tflops:g} TFLOP/s per GPU on {cfg['gpus']} GPU(s): "
              f"{budget / (args.tflops * 1e12 * cfg['gpus']) / 3600:.1f} hours (linear scaling)")


if __name__ == "__main__":
    main()
