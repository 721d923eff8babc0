"""Sample quality per sampler on a trained generator: the measurement behind the default sampler.

For each sampler it draws the same number of images per class and reports
- degenerate: share of saturated or blank samples (the synthesis stage's own check);
- fidelity: accuracy of a small CNN trained on the *real* training images when it classifies the
  synthetic ones (a sample that does not look like its class is counted wrong);
- seconds per image.

    python benchmarks/sampler_quality.py RESULTS_DIR [--per-class 100]

RESULTS_DIR is a finished run's `results/mnist` (it needs real.h5 and diffusion/model.pt).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from synthetic_simplicity.classifier import training as classifier
from synthetic_simplicity.diffusion.model import load_generator
from synthetic_simplicity.synthesis import sampling as synthesis
from synthetic_simplicity.core.imageset import SPLITS, read_imageset
from synthetic_simplicity.core.runtime import load_torch, resolve_device, resolve_precision, seed_everything

SAMPLERS = [  # (name, steps, clip, guidance scale)
    ("ddim", 20, True, 1.0),
    ("ddim", 20, False, 1.0),
    ("ddim", 50, True, 1.0),
    ("ddim", 20, True, 2.0),
    ("dpmsolver++", 20, True, 1.0),
    ("dpmsolver++", 20, False, 1.0),
    ("ddpm", 50, True, 1.0),
    ("ddpm", 100, True, 1.0),
    ("ddpm", 250, True, 1.0),
]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--saturated-fraction", type=float, default=0.5)
    p.add_argument("--blank-std", type=float, default=4.0)
    args = p.parse_args()
    seed_everything(0)
    device = resolve_device("auto")
    real = read_imageset(args.results / "real.h5")
    bundle = load_torch(args.results / "diffusion/model.pt")
    precision = bundle.get("precision") or resolve_precision("auto", device)
    model = load_generator(bundle, device)
    train = real.rows(real.split == SPLITS["train"])
    judge, _ = classifier.train_classifier(train.images, train.label, 2, "cnn",
                                        {"epochs": 5, "batch_size": 64, "optimizer": "adamw",
                                         "learning_rate": 1e-3, "weight_decay": 1e-4, "precision": "fp32"},
                                        0, device, "fp32", "/tmp/sampler_quality_judge.pt", progress=False)
    test = real.rows(real.split == SPLITS["test"])
    judge_acc = (classifier.predict(judge, test.images, 256, device, "fp32").argmax(1) == test.label).mean()
    print(f"judge CNN accuracy on real test images: {judge_acc:.3f}; {args.per_class} samples per class")
    print(f"{'sampler':<14}{'steps':>6}{'clip':>6}{'guide':>6}{'degenerate':>12}{'fidelity':>10}{'s/img':>8}")
    labels = np.repeat([0, 1], args.per_class)
    seeds = synthesis.sample_seeds(12345, "quality", 0, len(labels))
    for name, steps, clip, guidance in SAMPLERS:
        sampler = synthesis.make_sampler(name, bundle["scheduler_config"], clip)
        t0 = time.perf_counter()
        images = synthesis.sample_images(model, sampler, labels, seeds, tuple(bundle["image_shape"]), 2, steps,
                                         guidance, 250, device, precision, progress=False)
        secs = (time.perf_counter() - t0) / len(labels)
        bad = synthesis.degenerate_mask(images, args.saturated_fraction, args.blank_std).mean()
        fidelity = (classifier.predict(judge, images, 256, device, "fp32").argmax(1) == labels).mean()
        print(f"{name:<14}{steps:>6}{str(clip):>6}{guidance:>6g}{bad:>12.3f}{fidelity:>10.3f}{secs:>8.3f}")


if __name__ == "__main__":
    main()
