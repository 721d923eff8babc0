"""How easy is "is this image synthetic?" compared with the task itself, for one finished run.

Trains the small CNN (same budget for both) on the training pools to tell real from synthetic, and
on the real training images to tell the two classes apart, and scores both on the test pools. When
the first is at least as easy as the second, Study A's shortcut is expected (README).

    python benchmarks/source_detectability.py RESULTS_DIR [--epochs 5]

RESULTS_DIR is a finished run's `results/<dataset>` (it needs real.h5 and synthetic.h5).
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from synthetic_simplicity.classifier import training as classifier
from synthetic_simplicity.core.imageset import SPLITS, read_imageset
from synthetic_simplicity.core.runtime import resolve_device, seed_everything


def fit_and_score(x_train, y_train, x_test, y_test, epochs, device):
    cfg = {"epochs": epochs, "batch_size": 64, "optimizer": "adamw", "learning_rate": 1e-3,
           "weight_decay": 1e-4, "precision": "fp32"}
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = classifier.train_classifier(x_train, y_train, 2, "cnn", cfg, 0, device, "fp32",
                                            Path(tmp) / "ckpt.pt", progress=False)
    return float((classifier.predict(model, x_test, 256, device, "fp32").argmax(1) == y_test).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path)
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    seed_everything(0)
    device = resolve_device("auto")
    real, synthetic = read_imageset(args.results / "real.h5"), read_imageset(args.results / "synthetic.h5")

    def pools(split):
        r, s = real.split == SPLITS[split], synthetic.split == SPLITS[split]
        x = np.concatenate([real.images[r], synthetic.images[s]])
        return x, np.concatenate([np.zeros(r.sum(), np.int64), np.ones(s.sum(), np.int64)])

    source = fit_and_score(*pools("train"), *pools("test"), args.epochs, device)
    tr, te = real.split == SPLITS["train"], real.split == SPLITS["test"]
    task = fit_and_score(real.images[tr], real.label[tr], real.images[te], real.label[te], args.epochs, device)
    def border(s):  # the top rows of a digit are background
        return float(s.images[..., :3, :].mean())

    print(f"{args.results}: real-vs-synthetic accuracy {source:.3f}; "
          f"{' vs '.join(real.class_names)} accuracy on real images {task:.3f}; "
          f"mean of the top 3 rows real {border(real):.1f}, synthetic {border(synthetic):.1f}")


if __name__ == "__main__":
    main()
