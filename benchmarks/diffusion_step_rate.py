"""Step rate of the pipeline's diffusion training loop against a bare diffusers step.

Both run in this process on the same UNet, batch and precision. The bare step is the minimum any
DDPM trainer pays (noise, UNet forward/backward, AdamW) on images already on the device; our loop
adds per-step seeding, label dropout, EMA, loss checks and checkpoints. Target: ratio >= 0.9.
`benchmarks/gpu_check.py` runs the same measurement on a GPU.

    python benchmarks/diffusion_step_rate.py [--config config/config.yaml] [--steps 60] [--device cpu]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]


def mnist_pair(config: dict) -> tuple[np.ndarray, np.ndarray]:
    """The embedded MNIST images of the configured digit pair, labels 0/1 (the default run's data)."""
    from synthetic_simplicity.data import mnist

    images, labels = mnist.load_embedded()
    digits = config["mnist"]["data"]["digits"]
    keep = np.isin(labels, digits)
    return images[keep], (labels[keep] == digits[1]).astype(np.int64)


def load_config(path, device: str | None = None) -> dict:
    from synthetic_simplicity.core.config import validate_config

    config = validate_config(yaml.safe_load(Path(path).read_text()), ROOT / "workflow/schemas/config.schema.yaml")
    return config | ({"device": device} if device else {})


def bare_rate(images, labels, num_classes, cfg, device, precision, steps, warmup=5):
    """Images per second of the plainest loop: the set and its labels on the device, random batches
    drawn there, noise, UNet forward/backward and fused AdamW; no EMA, no checks, no checkpoints."""
    from synthetic_simplicity.core.runtime import Stopwatch, autocast, images_to_tensor
    from synthetic_simplicity.diffusion.model import build_unet, make_train_scheduler, pad_to

    model = build_unet(images.shape[-1], 1, num_classes, cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], fused=True)
    sched = make_train_scheduler(cfg)
    x_all = pad_to(images_to_tensor(images, device), model.config.sample_size)
    y_all = torch.as_tensor(labels).to(device)
    for i in range(warmup + steps):
        if i == warmup:
            clock = Stopwatch(device)
        idx = torch.randint(len(y_all), (cfg["batch_size"],), device=device)
        x0, y = x_all[idx], y_all[idx]
        noise = torch.randn_like(x0)
        t = torch.randint(sched.config.num_train_timesteps, (len(y),), device=device)
        with autocast(device, precision):
            pred = model(sched.add_noise(x0, noise, t), t, class_labels=y).sample
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * cfg["batch_size"] / clock.seconds()


def rates(config: dict, steps: int, rounds: int = 3) -> dict:
    """The default run's generator (config's mnist.diffusion) trained by the pipeline's loop and by
    the bare loop, in this process: images per second of each (the best of ``rounds``), and the ratio."""
    from synthetic_simplicity.core.runtime import resolve_device, resolve_precision, seed_everything
    from synthetic_simplicity.diffusion.training import train_diffusion

    cfg = config["mnist"]["diffusion"]
    device = resolve_device(config["device"])
    precision = resolve_precision(cfg["precision"], device)
    seed_everything(0)  # deterministic kernels, as in the pipeline's jobs
    images, labels = mnist_pair(config)
    torch.manual_seed(0)
    warm = 5
    bare, ours = [], []
    for _ in range(rounds):  # alternated, so that load from other processes falls on both
        bare.append(bare_rate(images, labels, 2, cfg, device, precision, steps))
        with tempfile.TemporaryDirectory() as tmp:
            # A short run first, so that both measurements exclude one-off start-up costs; the timed
            # run resumes from the checkpoint of its last step.
            train_diffusion(images, labels, 2, cfg | {"steps": warm}, 0, device, precision, tmp, progress=False)
            bundle = train_diffusion(images, labels, 2, cfg | {"steps": warm + steps}, 0, device, precision, tmp,
                                     progress=False)
        ours.append(bundle["stats"]["images_per_s"])
    return {"device": str(device), "precision": precision, "batch": cfg["batch_size"],
            "blocks": cfg["block_out_channels"], "steps": steps, "rounds": rounds, "bare_images_per_s": max(bare),
            "pipeline_images_per_s": max(ours), "ratio": max(ours) / max(bare)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=ROOT / "config/config.yaml")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3, help="measurements of each loop, alternated; the best counts")
    p.add_argument("--device", help="overrides the config's device (cpu, cuda)")
    args = p.parse_args()
    r = rates(load_config(args.config, args.device), args.steps, args.rounds)
    print(f"device={r['device']} precision={r['precision']} threads={torch.get_num_threads()} batch={r['batch']} "
          f"blocks={r['blocks']} steps={r['steps']} best of {r['rounds']}")
    print(f"bare diffusers step: {r['bare_images_per_s']:.1f} images/s")
    print(f"pipeline loop:       {r['pipeline_images_per_s']:.1f} images/s (EMA, seeding, checks, checkpoints)")
    print(f"ratio: {r['ratio']:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
