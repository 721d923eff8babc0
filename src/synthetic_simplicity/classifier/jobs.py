"""Entry points of the classifier rules (workflow/rules/classifier.smk): train classifiers, predict every
test image, save both. The two studies differ in what they read and predict (and Study A trains the
runs of one job in one process); the tail is shared."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..assembly.manifest import PooledImages, gather, read_manifest
from ..core.atomic import write_csv
from ..core.config import job_runs
from ..core.errors import PipelineError
from ..core.imageset import SOURCES, SPLITS, open_images, read_imageset
from ..core.runtime import atomic_torch_save, job_runtime
from ..core.seeds import derive_seed

log = logging.getLogger(__name__)


def save_run(model, history: dict, class_names: list[str], counts: dict, architecture: str, model_path: str,
             predictions_path: str, frame: pd.DataFrame, **extra) -> pd.DataFrame:
    """Write model and predictions (the caller removes the run's checkpoints: model.pt supersedes them)."""
    atomic_torch_save({"architecture": architecture, "state_dict": model.state_dict(), "class_names": class_names,
                       "train_counts": counts, "history": history} | extra, model_path)
    write_csv(predictions_path, frame)
    return frame


def _train_predict_save(images, targets: np.ndarray, val: tuple, class_names: list[str], counts: dict,
                        architecture: str, cfg: dict, section: str, seed: int, device, precision: str,
                        checkpoint: str, model_path: str, predictions_path: str, predict: Callable,
                        progress: bool, make_objective: Callable | None = None) -> pd.DataFrame:
    """Train, predict with ``predict(model)`` and write model and predictions."""
    from .training import train_classifier

    model, history = train_classifier(images, targets, len(class_names), architecture, cfg, seed, device,
                                      precision, checkpoint, val=val, section=section, progress=progress,
                                      make_objective=make_objective)
    return save_run(model, history, class_names, counts, architecture, model_path, predictions_path, predict(model))


# Study A


def job_seeds(section: dict, base_seed: int, dataset: str, architecture: str, alpha: str | None,
              seed: str | None) -> list[int]:
    """The derived seed of each run of one classifier job, in the order of its outputs (``job_runs``).
    The DFR job of the same runs uses the same seeds."""
    return [derive_seed(base_seed, dataset, "classifier", architecture, a, s)
            for a, s in job_runs(section, alpha, seed)]


@dataclass(frozen=True)
class Run:
    """One run of a job: its manifests, its output files and its derived seed. It checkpoints beside
    its model."""

    train: str
    val: str
    model: str
    predictions: str
    seed: int

    @property
    def checkpoint(self) -> str:
        return str(Path(self.model).with_name("checkpoint.pt"))


def train_classifiers(real_path: str, synthetic_path: str, test_path: str, runs: list[Run], architecture: str,
                      cfg: dict, section: str, device_name: str, method: str = "erm", settings: dict | None = None,
                      threads: int | None = None, progress: bool = True) -> list[pd.DataFrame]:
    """The runs of one job (``classifier.runs_per_job``) in this process; each run's validation manifest
    has the same alpha mix as its training manifest.

    The pools and the test set are read once; each run is then seeded, trained, tested and saved as a
    job of its own would be, with the same numbers on the CPU. A run checkpoints after every epoch,
    and the checkpoints are removed only once every run is saved: a retry of a killed job (Snakemake
    deletes all of the job's outputs first) reloads its finished runs' last checkpoints instead of
    training them again.

    ``cfg`` is the classifier section without its ``methods`` list (adding an arm must not change the
    ERM runs). ``method`` is one of ``mitigation.objectives.METHODS`` other than dfr
    (``mitigation.jobs.train_dfr``), trained with ``settings``, its entry of the mitigation section; a
    method that is undefined on a training set writes a model file with the reason and no predictions."""
    methods_key = section + ".methods"
    if method == "dfr":
        raise PipelineError(f"method dfr refits the ERM model's head (rule train_dfr_<dataset>), it is not "
                            f"trained here (config key '{methods_key}')")
    if method != "erm":
        # The adversary's ramp spans the epoch budget, so with it a longer budget is a new run.
        ramp = method == "adversarial" and settings["ramp"]
        cfg = cfg | {"method": method, "mitigation": settings, "schedule_epochs": cfg["epochs"] if ramp else None}
    real, synthetic, test = read_imageset(real_path), read_imageset(synthetic_path), read_manifest(test_path)
    test_images = gather(test, real, synthetic)  # the same test images for every run of the job
    frames, checkpoints = [], []
    for i, run in enumerate(runs, 1):
        log.info("run %d of %d: %s", i, len(runs), Path(run.model).parent)
        frame, used = _train_run(real, synthetic, test, test_images, run, architecture, cfg, section, device_name,
                                 method, settings, threads, progress)
        frames.append(frame)
        checkpoints += used
    for checkpoint in checkpoints:
        Path(checkpoint).unlink(missing_ok=True)
    return frames


def _train_run(real, synthetic, test, test_images: np.ndarray, run: Run, architecture: str, cfg: dict, section: str,
               device_name: str, method: str, settings: dict | None, threads: int | None,
               progress: bool) -> tuple[pd.DataFrame, list]:
    """One run of ``train_classifiers``: (its predictions, the checkpoints it wrote)."""
    from ..mitigation.objectives import build_objective
    from .training import predict, predictions_frame

    device, precision = job_runtime(run.seed, device_name, cfg["precision"], threads)
    train, val = read_manifest(run.train), read_manifest(run.val)
    log.info("%s (%s) on %d training images %s (validation %s), device %s, precision %s", architecture, method,
             len(train.label), train.attrs["counts"], val.attrs["counts"], device, precision)

    def predict_test(model):
        probs = predict(model, test_images, cfg["batch_size"] * 4, device, precision)
        return predictions_frame(test.pool, test.index, test.label, probs)

    images, val_images = gather(train, real, synthetic), gather(val, real, synthetic)
    if method == "two_stage":
        from ..mitigation.two_stage import stage_checkpoint, train_two_stage, undefined

        reason = undefined(train.label, train.pool)
        if reason:
            return _skip(architecture, method, reason, run.model, run.predictions, test), []
        model, history = train_two_stage(images, train.label, train.pool, (val_images, val.label, val.pool),
                                         len(real.class_names), architecture, cfg, settings, run.seed,
                                         device, precision, run.checkpoint, section, progress)
        frame = save_run(model, history, real.class_names, train.attrs["counts"], architecture, run.model,
                         run.predictions, predict_test(model))
        return frame, [stage_checkpoint(run.checkpoint, stage) for stage in ("synthetic", "real")]

    def make_objective(model):
        return build_objective(method, settings, train.label, train.pool, model, cfg["epochs"], section + ".methods")

    frame = _train_predict_save(images, train.label, (val_images, val.label), real.class_names,
                                train.attrs["counts"], architecture, cfg, section, run.seed, device, precision,
                                run.checkpoint, run.model, run.predictions, predict_test, progress, make_objective)
    return frame, [run.checkpoint]


def _skip(architecture: str, method: str, reason: str, model_path: str, predictions_path: str, test) -> pd.DataFrame:
    """An arm undefined at this alpha: the reason goes to the log and the model file; no predictions."""
    from .training import predictions_frame

    log.warning("%s is skipped at this alpha: %s", method, reason)
    frame = predictions_frame(test.pool[:0], test.index[:0], test.label[:0], np.zeros((0, 2)))
    atomic_torch_save({"architecture": architecture, "method": method, "skipped": reason}, model_path)
    write_csv(predictions_path, frame)
    return frame


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

    frame = _train_predict_save(images, targets, val, real.class_names, train.attrs["counts"], architecture, cfg,
                                section, seed, device, precision, checkpoint, model_path, predictions_path,
                                predict_tests, progress)
    Path(checkpoint).unlink(missing_ok=True)
    return frame
