"""Entry points of the detectability rules (workflow/rules/detectability.smk): the task reference of a
dataset, and the detectability and fingerprints of every synthetic pool."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import atomic_output, write_csv, write_json
from ..core.errors import PipelineError
from ..core.imageset import SPLITS, ImageSet, read_imageset

log = logging.getLogger(__name__)


def _subjects(s: ImageSet, rows: np.ndarray, tag: str) -> np.ndarray:
    """Bootstrap units: a patient where the set records one, else the image itself."""
    if s.subject is not None:
        return np.asarray([f"{tag}:{x}" for x in s.subject[rows]])
    return np.asarray([f"{tag}:{i}" for i in rows])


def _split(s: ImageSet, pool: str) -> np.ndarray:
    return np.flatnonzero(s.split == SPLITS[pool])


def task_reference(real_path: str, model_path: str, metrics_path: str, cfg: dict, seed: int, device_name: str,
                   checkpoint: str, threads: int | None = None, progress: bool = True) -> dict:
    """The class task on real images with the detectability budget, scored on the real test split: the
    difficulty every C2ST is compared with, and the feature space of every Fréchet distance."""
    from ..classifier.training import predict, train_classifier
    from ..core.runtime import atomic_torch_save, job_runtime
    from ..evaluation.auroc import auroc_ci

    device, precision = job_runtime(seed, device_name, cfg["precision"], threads)
    real = read_imageset(real_path)
    train, test = _split(real, "train"), _split(real, "test")
    model, _ = train_classifier(real.images[train], real.label[train], len(real.class_names),
                                cfg["architecture"], cfg, seed, device, precision, checkpoint,
                                section="detectability", progress=progress)
    score = predict(model, real.images[test], 4 * cfg["batch_size"], device, precision)[:, 1]
    value, lo, hi = auroc_ci(real.label[test] == 1, score, _subjects(real, test, "real"), cfg["bootstrap"],
                             cfg["ci"], seed)
    record = {"dataset": real.dataset, "architecture": cfg["architecture"], "task_auroc": value,
              "task_ci_low": lo, "task_ci_high": hi, "n_train": int(len(train)), "n_test": int(len(test)),
              "class_names": real.class_names}
    atomic_torch_save({"architecture": cfg["architecture"], "state_dict": model.state_dict(),
                       "class_names": real.class_names, "in_channels": int(1 if real.images.ndim == 3
                                                                            else real.images.shape[1])},
                      model_path)
    write_json(metrics_path, record)
    Path(checkpoint).unlink(missing_ok=True)
    log.info("task AUROC on real test images: %.3f [%.3f, %.3f]", value, lo, hi)
    return record


def _frechet(reference: dict, real: ImageSet, synthetic: ImageSet, cfg: dict, seed: int, device,
             precision: str) -> dict:
    """Per class, in the task reference's feature space, on test images only (the reference never saw them):
    the real test images are split in two seeded halves A and B; ``frechet`` is the distance of as many
    synthetic test images as A holds to B, ``frechet_real_floor`` that of A to B, so both compare samples of
    one size and the floor is what "indistinguishable" reads at that size."""
    from ..classifier.models import build_classifier
    from ..classifier.training import embed
    from .frechet import frechet_distance

    model = build_classifier(reference["architecture"], reference["in_channels"], len(real.class_names))
    model.load_state_dict(reference["state_dict"])
    model = model.to(device)
    rng = np.random.default_rng(seed)
    out = {}
    for c, name in enumerate(real.class_names):
        rows = rng.permutation(np.flatnonzero((real.split == SPLITS["test"]) & (real.label == c)))
        half_a, half_b = np.sort(rows[: len(rows) // 2]), np.sort(rows[len(rows) // 2 :])
        pool = np.flatnonzero((synthetic.split == SPLITS["test"]) & (synthetic.label == c))
        drawn = np.sort(rng.choice(pool, min(len(half_a), len(pool)), replace=False))
        if min(len(half_a), len(half_b), len(drawn)) < 2:
            log.warning("class %s: %d real test images, too few for a Fréchet distance (needs 4)", name, len(rows))
            out[name] = {"frechet": None, "frechet_real_floor": None, "frechet_n": int(len(drawn))}
            continue
        a, b, s = (embed(model, images, 4 * cfg["batch_size"], device, precision)
                   for images in (real.images[half_a], real.images[half_b], synthetic.images[drawn]))
        out[name] = {"frechet": frechet_distance(s, b), "frechet_real_floor": frechet_distance(a, b),
                     "frechet_n": int(len(drawn))}
    return out


def _fingerprints(real: ImageSet, synthetic: ImageSet, cfg: dict) -> tuple[dict, dict]:
    """Per class and source, on the training pools: the one-number statistics and the arrays of the figure."""
    from . import fingerprints as fp

    stats, arrays = {}, {}
    for c, name in enumerate(real.class_names):
        pools = {src: s.images[(s.split == SPLITS["train"]) & (s.label == c)]
                 for src, s in (("real", real), ("synthetic", synthetic))}
        mask = fp.background_mask(pools["real"], cfg["background_level"])
        for src, images in pools.items():
            stats[f"{name}/{src}"] = fp.summary(images, mask, cfg["high_frequency_cutoff"])
            radius, power = fp.radial_power_spectrum(images)
            arrays[f"{c}/{src}/spectrum"] = power
            arrays[f"{c}/{src}/histogram"] = fp.intensity_histogram(images)
            arrays[f"{c}/{src}/mean_image"] = fp.grey(images).mean(axis=0)
        arrays["radius"] = radius
    return stats, arrays


def detectability(real_path: str, synthetic_path: str, reference_path: str, out_path: str, fingerprints_path: str,
                  cfg: dict, identity: dict, seed: int, device_name: str, checkpoint: str,
                  threads: int | None = None) -> dict:
    """C2ST AUROC of one synthetic pool (pooled and per class, with CIs), its Fréchet distances and image
    statistics; the arrays of the fingerprints figure go to ``fingerprints_path`` (.npz)."""
    from ..core.runtime import job_runtime, load_torch
    from .c2st import two_sample_test

    device, precision = job_runtime(seed, device_name, cfg["precision"], threads)
    real, synthetic = read_imageset(real_path), read_imageset(synthetic_path)

    def pools(pool):
        r, s = _split(real, pool), _split(synthetic, pool)
        return (np.concatenate([real.images[r], synthetic.images[s]]),
                np.concatenate([real.label[r], synthetic.label[s]]),
                np.concatenate([np.ones(len(r), bool), np.zeros(len(s), bool)]),
                np.concatenate([_subjects(real, r, "real"), _subjects(synthetic, s, "synthetic")]))

    train_x, train_y, train_real, _ = pools("train")
    test_x, test_y, test_real, test_subject = pools("test")
    c2st = two_sample_test(train_x, train_y, train_real, test_x, test_y, test_real, test_subject, real.class_names,
                           cfg, seed, device, precision, checkpoint)
    log.info("C2ST AUROC (pooled): %.3f [%.3f, %.3f]", c2st["pooled"]["auroc"], c2st["pooled"]["ci_low"],
             c2st["pooled"]["ci_high"])
    stats, arrays = _fingerprints(real, synthetic, cfg)
    record = identity | {"c2st": c2st, "frechet": _frechet(load_torch(reference_path), real, synthetic, cfg, seed,
                                                          device, precision),
                         "statistics": stats, "class_names": real.class_names,
                         "generator_steps": synthetic.provenance.get("generator_steps"),
                         "synthesis": synthetic.provenance.get("synthesis")}
    with atomic_output(fingerprints_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    write_json(out_path, record)
    Path(checkpoint).unlink(missing_ok=True)
    return record


def patient_halves(subject: np.ndarray, seed: int) -> np.ndarray:
    """0 or 1 per row, the same for every row of a patient, drawn from a seeded hash of the patient."""
    from ..core.seeds import derive_seed

    return np.asarray([derive_seed(seed, "half", str(s)) % 2 for s in subject], dtype=np.int64)


def replica_detectability(real_path: str, replicas_path: str, out_path: str, table_path: str, cfg: dict, seed: int,
                          device_name: str, checkpoint: str, threads: int | None = None) -> dict:
    """Study B: is a replica distinguishable from the real training image it copies the condition of?

    The first replica of every real training row is paired with that row; patients are split into two
    halves, the C2ST trains on one half and is scored on the other (no patient on both sides), with a
    bootstrap over the test patients. ``cfg["max_images"]`` caps the rows per half (seeded choice).
    """
    from ..core.imageset import open_images
    from ..core.runtime import job_runtime
    from . import fingerprints as fp
    from .c2st import two_sample_test

    device, precision = job_runtime(seed, device_name, cfg["precision"], threads)
    real, replicas = read_imageset(real_path, images=False), read_imageset(replicas_path, images=False)
    first = np.flatnonzero(replicas.replica == 0)
    origin = replicas.origin[first]
    subject = real.subject[origin].astype(str) if real.subject is not None else origin.astype(str)
    half = patient_halves(subject, seed)
    rng = np.random.default_rng(seed)
    sides = {}
    for side, name in ((0, "train"), (1, "test")):
        rows = np.flatnonzero(half == side)
        if cfg["max_images"] and len(rows) > cfg["max_images"]:
            rows = np.sort(rng.choice(rows, cfg["max_images"], replace=False))
        images = np.concatenate([open_images(real_path, origin[rows])[np.arange(len(rows))],
                                 open_images(replicas_path, first[rows])[np.arange(len(rows))]])
        sides[name] = (images, np.zeros(2 * len(rows), np.int64), np.r_[np.ones(len(rows), bool),
                                                                        np.zeros(len(rows), bool)],
                       np.concatenate([subject[rows], subject[rows]]))
    if min(len(s[1]) for s in sides.values()) == 0:
        raise PipelineError(f"{real_path}: too few patients to split into two halves for the replica C2ST")
    train_x, train_y, train_real, _ = sides["train"]
    test_x, test_y, test_real, test_subject = sides["test"]
    c2st = two_sample_test(train_x, train_y, train_real, test_x, test_y, test_real, test_subject, ["all"], cfg, seed,
                           device, precision, checkpoint)
    c2st.pop("all", None)  # one group: identical to pooled
    mask = fp.background_mask(train_x[train_real], cfg["background_level"])
    stats = {f"all/{src}": fp.summary(train_x[train_real == (src == "real")], mask, cfg["high_frequency_cutoff"])
             for src in ("real", "synthetic")}
    record = {"dataset": real.dataset, "variant": "replicas", "c2st": c2st, "frechet": {}, "statistics": stats,
              "pairing": "first replica of each real training row; train and test on disjoint patient halves"}
    log.info("replica C2ST AUROC: %.3f [%.3f, %.3f]", c2st["pooled"]["auroc"], c2st["pooled"]["ci_low"],
             c2st["pooled"]["ci_high"])
    table = detectability_table([record], None)
    write_csv(table_path, table)
    write_json(out_path, record)
    Path(checkpoint).unlink(missing_ok=True)
    return record


def detectability_table(records: list[dict], task: dict | None) -> pd.DataFrame:
    """Tidy table: one row per variant x group (pooled or a class) x metric, with CIs where there are;
    ``task``: the task reference's record (Study A), or None."""
    rows = []
    for r in records:
        base = {"dataset": r["dataset"], "variant": r["variant"]}
        if task is not None:
            rows.append(base | {"group": "pooled", "metric": "task_auroc", "value": task["task_auroc"],
                                "ci_low": task["task_ci_low"], "ci_high": task["task_ci_high"]})
        for group, v in r["c2st"].items():
            if isinstance(v, dict):
                rows.append(base | {"group": group, "metric": "c2st_auroc", "value": v["auroc"],
                                    "ci_low": v["ci_low"], "ci_high": v["ci_high"]})
                rows.append(base | {"group": group, "metric": "c2st_accuracy", "value": v["accuracy"]})
        for group, v in r["frechet"].items():
            rows += [base | {"group": group, "metric": k, "value": x} for k, x in v.items()]
        for key, v in r["statistics"].items():
            group, source = key.rsplit("/", 1)
            rows += [base | {"group": group, "metric": f"{k}_{source}", "value": x} for k, x in v.items()]
    return pd.DataFrame(rows, columns=["dataset", "variant", "group", "metric", "value", "ci_low", "ci_high"])


def aggregate_detectability(record_paths: list[str], task_path: str, out_path: str) -> pd.DataFrame:
    table = detectability_table([json.loads(Path(p).read_text()) for p in record_paths],
                                json.loads(Path(task_path).read_text()))
    write_csv(out_path, table)
    return table


def shortcut_summary(metrics_paths: list[str], detectability_path: str, real_path: str, out_path: str,
                     ci: float) -> pd.DataFrame:
    from ..core.imageset import read_header
    from ..evaluation.cells import read_table
    from .summary import shortcut_summary as summarise

    _, class_names = read_header(real_path)
    table = summarise([json.loads(Path(p).read_text()) for p in metrics_paths], read_table(detectability_path),
                      class_names, ci)
    write_csv(out_path, table)
    return table
