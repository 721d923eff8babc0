"""Images per second of the pipeline's classifier training loop against a bare PyTorch loop.

Both run in this process on the same architecture, batch, optimiser, precision, memory layout and
compile setting (the config's mnist.classifier), on the default run's MNIST digits. The bare loop
holds the images on the device as float tensors and does forward, loss, backward and step, nothing
else; the pipeline's loop adds seeded batch order, the batch transfer, loss bookkeeping and checks,
a checkpoint per epoch and the progress log. Both are warmed up first. Target: ratio >= 0.9.
`benchmarks/gpu_check.py` runs the same measurement on a GPU. `--compile` times torch.compile too.

    python benchmarks/classifier_step_rate.py [--config config/config.yaml] [--epochs 10] [--device cpu]
        [--arch cnn] [--compile]
"""

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from diffusion_step_rate import ROOT, load_config, mnist_pair


def bare_rate(images, labels, arch: str, cfg: dict, device, precision: str, epochs: int) -> float:
    from synthetic_simplicity.classifier.models import build_classifier
    from synthetic_simplicity.core.optim import build_optimizer
    from synthetic_simplicity.core.runtime import (
        Stopwatch,
        autocast,
        grad_scaler,
        images_to_tensor,
        use_channels_last,
    )

    torch.manual_seed(0)
    nhwc = use_channels_last(cfg["channels_last"], device, precision)
    memory = torch.channels_last if nhwc else torch.contiguous_format
    model = build_classifier(arch, 1, 2).to(device).to(memory_format=memory)
    net = torch.compile(model) if cfg["compile"] else model
    opt = build_optimizer(cfg["optimizer"], model.parameters(), cfg["learning_rate"], cfg["weight_decay"])
    scaler = grad_scaler(device, precision)
    x_all = images_to_tensor(images, device).contiguous(memory_format=memory)
    y_all = torch.as_tensor(labels).to(device)
    n, batch = len(y_all), cfg["batch_size"]
    model.train()
    for epoch in range(1 + epochs):  # the first epoch warms up
        if epoch == 1:
            clock = Stopwatch(device)
        order = torch.randperm(n, device=device)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            with autocast(device, precision):
                loss = F.cross_entropy(net(x_all[idx]).float(), y_all[idx])
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
    return epochs * n / clock.seconds()


def rates(config: dict, epochs: int, arch: str | None = None, rounds: int = 3) -> dict:
    """The default run's classifier (config's mnist.classifier, first architecture unless ``arch``)
    trained by the pipeline's loop and by the bare loop, in this process; the best of ``rounds``."""
    from synthetic_simplicity.classifier.training import train_classifier
    from synthetic_simplicity.core.runtime import Stopwatch, resolve_device, resolve_precision, seed_everything

    cfg = {k: v for k, v in config["mnist"]["classifier"].items() if k != "methods"}
    arch = arch or cfg["architectures"][0]
    device = resolve_device(config["device"])
    precision = resolve_precision(cfg["precision"], device)
    seed_everything(0)  # deterministic kernels, as in the pipeline's jobs
    images, labels = mnist_pair(config)
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        train_classifier(images, labels, 2, arch, cfg | {"epochs": 1}, 0, device, precision, Path(tmp, "warm.pt"),
                         progress=False)
        for r in range(rounds):  # alternated, so that load from other processes falls on both
            bare.append(bare_rate(images, labels, arch, cfg, device, precision, epochs))
            clock = Stopwatch(device)
            train_classifier(images, labels, 2, arch, cfg | {"epochs": epochs}, 0, device, precision,
                             Path(tmp, f"run{r}.pt"), progress=False)
            ours.append(epochs * len(labels) / clock.seconds())
    return {"device": str(device), "precision": precision, "arch": arch, "batch": cfg["batch_size"],
            "images": len(labels), "epochs": epochs, "rounds": rounds, "bare_images_per_s": max(bare),
            "pipeline_images_per_s": max(ours), "ratio": max(ours) / max(bare)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=ROOT / "config/config.yaml")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3, help="measurements of each loop, alternated; the best counts")
    p.add_argument("--device", help="overrides the config's device (cpu, cuda)")
    p.add_argument("--arch", help="architecture (default: the config's first)")
    p.add_argument("--compile", action="store_true", help="also time both loops with classifier.compile: true")
    args = p.parse_args()
    config = load_config(args.config, args.device)
    settings = [False, True] if args.compile else [False]
    for compiled in settings:
        config["mnist"]["classifier"]["compile"] = compiled
        r = rates(config, args.epochs, args.arch, args.rounds)
        print(f"device={r['device']} precision={r['precision']} threads={torch.get_num_threads()} arch={r['arch']} "
              f"batch={r['batch']} images={r['images']} epochs={r['epochs']} compile={compiled} best of {r['rounds']}")
        print(f"  bare PyTorch loop: {r['bare_images_per_s']:.0f} images/s")
        print(f"  pipeline loop:     {r['pipeline_images_per_s']:.0f} images/s (incl. a checkpoint per epoch)")
        print(f"  ratio: {r['ratio']:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
