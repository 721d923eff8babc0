"""Entry points of the classifier rules (workflow/rules/classifier.smk): train one classifier, predict
every test image, save both. The two studies differ in what they read and predict; the tail is shared."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..assembly.manifest import PooledImages, gather, read_manifest
from ..core.atomic import write_csv
from ..core.imageset import SOURCES, SPLITS, open_images, read_imageset
from ..core.runtime import atomic_torch_save, job_runtime

log = logging.getLogger(__name__)


def _train_predict_save(images, targets: np.ndarray, val: tuple, class_names: list[str], counts: dict,
                        architecture: str, cfg: dict, section: str, seed: int, device, precision: str,
                        checkpoint: str, model_path: str, predictions_path: str, predict: Callable,
                        progress: bool) -> pd.DataFrame:
    """Train, predict with ``predict(model)`` and write model and predictions; the checkpoint goes last."""
    from .training import train_classifier

    model, history = train_classifier(images, targets, len(class_names), architecture, cfg, seed, device,
                                      precision, checkpoint, val=val, section=section, progress=progress)
    frame = predict(model)
    atomic_torch_save({"architecture": architecture, "state_dict": model.state_dict(), "class_names": class_names,
                       "train_counts": counts, "history": history}, model_path)
    write_csv(predictions_path, frame)
    Path(checkpoint).unlink(missing_ok=True)  # the run is complete; model.pt supersedes it
    return frame


# Study A


def train_classifier(real_path: str, synthetic_path: str, train_path: str, val_path: str, test_path: str,
                     model_path: str, predictions_path: str, architecture: str, cfg: dict, section: str, seed: int,
                     device_name: str, checkpoint: str, threads: int | None = None,
                     progress: bool = True) -> pd.DataFrame:
    """One classifier on an alpha manifest; its validation manifest has the same alpha mix."""
    from .training import predict, predictions_frame

    device, precision = job_runtime(seed, device_name, cfg["precision"], threads)
    real, synthetic = read_imageset(real_path), read_imageset(synthetic_path)
    train, val, test = read_manifest(train_path), read_manifest(val_path), read_manifest(test_path)
    log.info("%s on %d training images %s (validation %s), device %s, precision %s", architecture,
             len(train.label), train.attrs["counts"], val.attrs["counts"], device, precision)

    def predict_test(model):
        probs = predict(model, gather(test, real, synthetic), cfg["batch_size"] * 4, device, precision)
        return predictions_frame(test.pool, test.index, test.label, probs)

    return _train_predict_save(gather(train, real, synthetic), train.label, (gather(val, real, synthetic), val.label),
                               real.class_names, train.attrs["counts"], architecture, cfg, section, seed, device,
                               precision, checkpoint, model_path, predictions_path, predict_test, progress)


# Study B


def train_supplementation(real_path: str, synthetic_path: str, train_path: str, val_path: str,
                          test_paths: dict[str, str], model_path: str, predictions_path: str, architecture: str,
                          cfg: dict, section: str, seed: int, device_name: str, checkpoint: str,
                          threads: int | None = None, progress: bool = True) -> pd.DataFrame:
    """A multi-label classifier on one manifest; probabilities on every test set's test split.

    Validation is the train site's validation split, real images only, for every protocol (Study B
    never validated on synthetic images)."""
    from ..data.cxr import training_targets
    from .training import predict

    device, precision = job_runtime(seed, device_name, cfg["precision"], threads)
    real, synthetic = read_imageset(real_path, images=False), read_imageset(synthetic_path, images=False)
    train = read_manifest(train_path)
    raw = np.empty((len(train.index), len(real.class_names)), np.float32)
    for code, pool in ((SOURCES["real"], real), (SOURCES["synthetic"], synthetic)):
        rows = train.pool == code
        raw[rows] = pool.labels[train.index[rows]]
    targets = training_targets(raw, cfg["uncertain"])
    images = PooledImages(train, open_images(real_path), open_images(synthetic_path))
    site = read_imageset(val_path, images=False)
    val_rows = np.flatnonzero(site.split == SPLITS["val"])
    val = (open_images(val_path, val_rows), training_targets(site.labels[val_rows], cfg["uncertain"]))
    log.info("%s on %s (validation: %d real images), device %s, precision %s", architecture, train.attrs["counts"],
             len(val_rows), device, precision)

    def predict_tests(model):
        frames = []
        for test_set, path in test_paths.items():
            meta = read_imageset(path, images=False)
            if meta.class_names != real.class_names:
                raise ValueError(f"{path}: labels {meta.class_names} differ from the training labels "
                                 f"{real.class_names}")
            rows = np.flatnonzero(meta.split == SPLITS["test"])
            probs = predict(model, open_images(path, rows), cfg["batch_size"] * 2, device, precision,
                            multilabel=True, workers=cfg["loader_workers"])
            frame = pd.DataFrame({"test_set": test_set, "subject": meta.subject[rows], "index": rows})
            for j, name in enumerate(meta.class_names):
                frame[f"y:{name}"] = meta.labels[rows, j]
                frame[f"p:{name}"] = probs[:, j].round(6)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    return _train_predict_save(images, targets, val, real.class_names, train.attrs["counts"], architecture, cfg,
                               section, seed, device, precision, checkpoint, model_path, predictions_path,
                               predict_tests, progress)
