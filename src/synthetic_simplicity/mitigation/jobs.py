"""Entry points of the mitigation rules (workflow/rules/mitigation.smk): the harmonised synthetic pool,
last-layer retraining of the ERM models, and the table that compares every arm with ERM."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core.atomic import write_csv
from ..core.imageset import SPLITS, read_imageset, write_imageset

log = logging.getLogger(__name__)


def harmonise_pool(real_path: str, synthetic_path: str, out_path: str, match: list[str]) -> None:
    """The synthetic pool with its spectrum and/or histogram matched to the real pool's training split."""
    from .harmonise import fit_harmonisation, harmonise

    real, synthetic = read_imageset(real_path), read_imageset(synthetic_path)
    fit = fit_harmonisation(real.images[real.split == SPLITS["train"]],
                            synthetic.images[synthetic.split == SPLITS["train"]], match)
    before = float(synthetic.images.mean())
    synthetic.images = harmonise(synthetic.images, fit)
    synthetic.provenance = synthetic.provenance | {"harmonised": {"match": list(match),
                                                                  "fitted_on": "training splits of both pools"}}
    log.info("harmonised %d synthetic images (%s): mean grey %.1f -> %.1f (real training split %.1f)",
             len(synthetic), "+".join(match), before, synthetic.images.mean(),
             real.images[real.split == SPLITS["train"]].mean())
    write_imageset(out_path, synthetic)


@dataclass(frozen=True)
class DfrRun:
    """One DFR run of a job: the ERM model it refits, its balanced held-out set, its outputs and seed."""

    erm: str
    balanced: str
    model: str
    predictions: str
    seed: int


def train_dfr(real_path: str, synthetic_path: str, test_path: str, runs: list[DfrRun], cfg: dict, dfr_cfg: dict,
              device_name: str, threads: int | None = None) -> list[pd.DataFrame]:
    """Each run's ERM model with its last layer refitted on the balanced held-out set; the runs of one
    job (``classifier.runs_per_job``) in this process, the pools and the test set read once."""
    import numpy as np

    from ..assembly.manifest import gather, read_manifest
    from ..classifier.jobs import save_run
    from ..classifier.models import build_classifier
    from ..classifier.training import predict, predictions_frame
    from ..core.runtime import images_to_tensor, job_runtime, load_torch
    from .dfr import retrain_last_layer

    real, synthetic, test = read_imageset(real_path), read_imageset(synthetic_path), read_manifest(test_path)
    test_images = gather(test, real, synthetic)  # the same test images for every run of the job
    frames = []
    for i, run in enumerate(runs, 1):
        log.info("run %d of %d: %s", i, len(runs), Path(run.model).parent)
        device, precision = job_runtime(run.seed, device_name, cfg["precision"], threads)
        balanced, erm = read_manifest(run.balanced), load_torch(run.erm)
        images = gather(balanced, real, synthetic)
        model = build_classifier(erm["architecture"], images_to_tensor(images[:1]).shape[1], len(real.class_names))
        model.load_state_dict(erm["state_dict"])
        model = model.to(device)
        info = retrain_last_layer(model, images, balanced.label, dfr_cfg, cfg["batch_size"] * 4, device, precision)
        probs = predict(model, test_images, cfg["batch_size"] * 4, device, precision)
        frame = predictions_frame(test.pool, test.index, test.label, probs)
        save_run(model, erm["history"], real.class_names, erm["train_counts"], erm["architecture"], run.model,
                 run.predictions, frame, dfr=info | {"counts": balanced.attrs["counts"]})
        log.info("DFR test accuracy %.3f on %d images", float(np.mean(frame["pred"] == frame["label"])), len(frame))
        frames.append(frame)
    return frames


def mitigation_summary(metrics_paths: list[str], out_path: str, ci: float, methods: list[str]) -> pd.DataFrame:
    from ..evaluation.cells import ci_method
    from .summary import mitigation_summary as summarise

    table = summarise([json.loads(Path(p).read_text()) for p in metrics_paths], ci, methods)
    table["ci_method"] = ci_method(ci)
    write_csv(out_path, table)
    return table
