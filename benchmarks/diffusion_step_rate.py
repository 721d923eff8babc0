"""Step rate of the pipeline's diffusion training loop against a bare diffusers step.

Both run in this process on the same UNet, batch and precision. The bare step is the minimum any
DDPM trainer pays (noise, UNet forward/backward, AdamW); our loop adds per-step seeding, label
dropout, EMA and checkpoints. Target: ratio >= 0.9.

    python benchmarks/diffusion_step_rate.py [--config config/config.yaml] [--steps 60]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from synthetic_simplicity.data import mnist
from synthetic_simplicity.core.config import validate_config
from synthetic_simplicity.core.runtime import autocast, images_to_tensor, resolve_device, resolve_precision
from synthetic_simplicity.diffusion.model import build_unet, make_train_scheduler, pad_to
from synthetic_simplicity.diffusion.training import train_diffusion

ROOT = Path(__file__).resolve().parents[1]


def bare_rate(images, labels, num_classes, cfg, device, precision, steps, warmup=5):
    model = build_unet(images.shape[-1], 1, num_classes, cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], fused=True)
    sched = make_train_scheduler(cfg)
    x_all = pad_to(images_to_tensor(images), model.config.sample_size)
    y_all = torch.as_tensor(labels)
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        idx = torch.randint(len(y_all), (cfg["batch_size"],))
        x0, y = x_all[idx].to(device), y_all[idx].to(device)
        noise = torch.randn_like(x0)
        t = torch.randint(sched.config.num_train_timesteps, (len(y),), device=device)
        with autocast(device, precision):
            pred = model(sched.add_noise(x0, noise, t), t, class_labels=y).sample
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=ROOT / "config/config.yaml")
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args()
    config = validate_config(yaml.safe_load(Path(args.config).read_text()),
                             ROOT / "workflow/schemas/config.schema.yaml")
    cfg = config["mnist"]["diffusion"]
    device = resolve_device(config["device"])
    precision = resolve_precision(cfg["precision"], device)
    images, labels = mnist.load_embedded()
    keep = np.isin(labels, config["mnist"]["data"]["digits"])
    images, labels = images[keep], (labels[keep] == config["mnist"]["data"]["digits"][1]).astype(np.int64)
    torch.manual_seed(0)
    bare = bare_rate(images, labels, 2, cfg, device, precision, args.steps)
    warm = 5
    with tempfile.TemporaryDirectory() as tmp:
        # A short warm-up run first, so both measurements exclude one-off start-up costs.
        train_diffusion(images, labels, 2, cfg | {"steps": warm}, 0, device, precision, tmp, progress=False)
        bundle = train_diffusion(images, labels, 2, cfg | {"steps": warm + args.steps}, 0, device,
                                           precision, tmp, progress=False)
    ours = bundle["stats"]["steps_per_s"]
    print(f"device={device} precision={precision} threads={torch.get_num_threads()} batch={cfg['batch_size']} "
          f"blocks={cfg['block_out_channels']} steps={args.steps}")
    print(f"bare diffusers step: {bare:.2f} steps/s")
    print(f"pipeline loop:       {ours:.2f} steps/s (EMA, seeding, checkpoint every {cfg['checkpoint_every']})")
    print(f"ratio: {ours / bare:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
