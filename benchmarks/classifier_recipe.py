"""Cost per epoch of Study B's classifier recipe against today's training, in the pipeline's own loop.

Both train the same architecture on the same random 14-label images: "today" is AdamW without
augmentation; "Study B" adds what config/chexpert.yaml sets (Lion without decay on 1-D parameters,
flips, Gaussian noise, random affine, Mixup/CutMix, label smoothing, gradient clipping, EMA of the
weights). An epoch's time is read between the loop's own per-epoch log records, so model building
is not counted; the first epoch is left out as warm-up. The two alternate for ``--rounds`` rounds, so
load from other processes falls on both alike.

    python benchmarks/classifier_recipe.py [--arch densenet121] [--size 64] [--images 256] [--epochs 5]
"""

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from synthetic_simplicity.classifier.training import train_classifier
from synthetic_simplicity.core.runtime import resolve_device, resolve_precision

ROOT = Path(__file__).resolve().parents[1]


class EpochClock(logging.Handler):
    """Times between the training loop's "epoch N:" log records."""

    def __init__(self):
        super().__init__()
        self.stamps = []

    def emit(self, record):
        if record.getMessage().startswith("epoch "):
            self.stamps.append(time.perf_counter())


def epoch_seconds(images, labels, arch, cfg, device, precision) -> list[float]:
    clock = EpochClock()
    logger = logging.getLogger("synthetic_simplicity.classifier.training")
    logger.addHandler(clock)
    logger.setLevel(logging.INFO)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train_classifier(images, labels, labels.shape[1], arch, cfg, 0, device, precision,
                             Path(tmp) / "c.pt", progress=False)
    finally:
        logger.removeHandler(clock)
    return list(np.diff(clock.stamps))  # epochs 2..N


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="densenet121")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size), dtype=np.uint8)
    labels = (rng.random((args.images, 14)) < 0.3).astype(np.float32)

    preset = yaml.safe_load((ROOT / "config/chexpert.yaml").read_text())["chexpert"]["classifier"]
    recipe = {k: preset[k] for k in ("optimizer", "learning_rate", "weight_decay", "no_decay_1d", "grad_clip",
                                     "ema_decay", "augment", "mix", "label_smoothing")}
    today = {"optimizer": "adamw", "learning_rate": 1e-4, "weight_decay": 3e-4}
    base = {"epochs": args.epochs, "batch_size": args.batch_size, "precision": precision}
    print(f"{args.arch}, {args.images} images {args.size}x{args.size}, batch {args.batch_size}, device {device}, "
          f"precision {precision}, {torch.get_num_threads()} threads; seconds per epoch over epochs 2..{args.epochs} of {args.rounds} rounds")
    runs = {"today (AdamW, no augmentation)": today, "Study B recipe": recipe}
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, cfg in runs.items():
            times[name] += epoch_seconds(images, labels, args.arch, base | cfg, device, precision)
    medians = {}
    for name, t in times.items():
        medians[name] = statistics.median(t)
        print(f"{name:32s} min {min(t):7.2f}  median {medians[name]:7.2f}  ({len(t)} epochs)")
    (today_s, recipe_s), (today_min, recipe_min) = medians.values(), (min(t) for t in times.values())
    print(f"recipe / today: {recipe_s / today_s:.2f}x (median), {recipe_min / today_min:.2f}x (min)")


if __name__ == "__main__":
    main()
