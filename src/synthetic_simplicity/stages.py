"""One function per Snakemake rule: paths and settings in, files out.

The scripts in workflow/scripts only unpack the ``snakemake`` object and call these, so every
stage can be run and tested without Snakemake.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_output
from .assembly import assemble_alpha, assemble_test, gather, read_manifest, write_manifest
from .config import config_hash
from .imageset import (
    SOURCES,
    SPLITS,
    ImageSet,
    ImageSetWriter,
    open_images,
    read_header,
    read_imageset,
    write_imageset,
)
from .metrics import aggregate, ci_method, run_metrics, write_json
from .seeds import derive_seed

log = logging.getLogger(__name__)
# Images decoded and written per step of the Study B data stage: a kill loses at most this many.
DATA_BATCH = 512


class SynthesisQualityError(RuntimeError):
    """Too many degenerate samples: the generator is undertrained or the sampler diverges."""


def mnist_real(out_path: str, data: dict, base_seed: int) -> None:
    from . import mnist

    if data["source"] == "embedded":
        images, labels = mnist.load_embedded()
    else:
        images, labels = mnist.load_download(data["mirrors"], data["download_dir"], data["retries"], data["timeout_s"])
    real = mnist.build_real(images, labels, data["digits"], data["test_fraction"],
                            derive_seed(base_seed, "mnist", "split"), image_size=data["image_size"],
                            max_per_class=data["max_per_class"], provenance={"source": data["source"]})
    log.info("real images: %d train, %d test", (real.split == SPLITS["train"]).sum(), (real.split == SPLITS["test"]).sum())
    write_imageset(out_path, real)


def camus_real(out_path: str, data: dict, base_seed: int) -> None:
    from . import camus

    real = camus.build_real(data["root"], frames=data["frames"], image_size=data["image_size"],
                            min_quality=data["min_quality"], split_seed=derive_seed(base_seed, "camus", "split"),
                            val_fraction=data["val_fraction"], test_fraction=data["test_fraction"],
                            max_patients=data["max_patients"])
    log.info("real frames per split: %s", {k: int((real.split == v).sum()) for k, v in SPLITS.items()})
    write_imageset(out_path, real)


def train_diffusion(real_path: str, model_path: str, grid_path: str, cfg: dict, seed: int, device_name: str,
                    checkpoints: str, threads: int | None = None, progress: bool = True) -> dict:
    from . import diffusion, synthesis
    from .figures import plot_grid
    from .runtime import atomic_torch_save, resolve_device, resolve_precision, seed_everything

    seed_everything(seed, threads)
    device = resolve_device(device_name)
    precision = resolve_precision(cfg["precision"], device)
    log.info("device %s, precision %s", device, precision)
    real = read_imageset(real_path, images=False)
    rows = np.flatnonzero(real.split == SPLITS["train"])  # the generator never sees test images
    # Study A conditions on the class; Study B on each row's condition vector.
    multilabel = real.labels is not None
    conditions = real.cond[rows] if multilabel else real.label[rows]
    num_classes = None if multilabel else len(real.class_names)
    bundle = diffusion.train_diffusion(open_images(real_path, rows), conditions, num_classes, cfg, seed, device,
                                       precision, checkpoints, progress=progress)
    bundle["class_names"] = real.class_names
    bundle["precision"] = precision
    # Provenance that the generator saw training rows only (tests check it against the split).
    bundle["trained_on"] = {"split": "train", "n_images": len(rows),
                            "subjects": None if real.subject is None else sorted(set(real.subject[rows]))}
    log.info("training stats: %s", bundle["stats"])
    atomic_torch_save(bundle, model_path)

    # Preview with a fixed sampler (the default DDPM-50), so synthesis settings never retrain the model.
    model = diffusion.load_generator(bundle, device)
    if multilabel:  # the conditions of the first training rows, one grid row
        n = min(len(rows), 2 * cfg["grid_per_class"])
        grid_conditions, labels, names = conditions[:n], np.zeros(n, int), ["conditions of training rows"]
    else:
        labels = np.repeat(np.arange(num_classes), cfg["grid_per_class"])
        grid_conditions, names = labels, real.class_names
    seeds = np.array([derive_seed(seed, "grid", i) for i in range(len(labels))])
    sampler = synthesis.make_sampler("ddpm", bundle["scheduler_config"], clip_sample=True)
    images = synthesis.sample_images(model, sampler, grid_conditions, seeds, tuple(bundle["image_shape"]),
                                     num_classes, 50, 1.0, 256, device, precision, progress=progress)
    plot_grid(images, labels, names, grid_path)
    return bundle


def sample_synthetic(real_path: str, model_path: str, out_path: str, cfg: dict, seed: int, device_name: str,
                     threads: int | None = None, progress: bool = True) -> ImageSet:
    import torch

    from . import synthesis
    from .runtime import resolve_device, resolve_precision, seed_everything

    seed_everything(seed, threads)
    device = resolve_device(device_name)
    precision = resolve_precision(cfg["precision"], device)
    real = read_imageset(real_path, images=False)
    bundle = torch.load(model_path, map_location="cpu", weights_only=False)

    labels, seeds, split = [], [], []
    for pool, key in (("train", "train_per_class"), ("test", "test_per_class")):
        for c in range(len(real.class_names)):
            n = cfg[key] or int(((real.split == SPLITS[pool]) & (real.label == c)).sum())
            labels.append(np.full(n, c))
            seeds.append(synthesis.sample_seeds(seed, pool, c, n))
            split.append(np.full(n, SPLITS[pool]))
    labels, seeds, split = map(np.concatenate, (labels, seeds, split))
    if set(seeds[split == SPLITS["train"]]) & set(seeds[split == SPLITS["test"]]):
        raise RuntimeError("synthetic train and test pools share a seed; report this as a bug")
    synthetic = ImageSet(images=None, label=labels.astype(np.int64), source=np.full(len(labels), SOURCES["synthetic"]),
                         split=split, dataset=real.dataset, class_names=real.class_names, seed=seeds)
    _sample_to_imageset(out_path, synthetic, labels, bundle, model_path, cfg, seed, device, precision, progress)
    return synthetic


def _sample_to_imageset(out_path: str, synthetic: ImageSet, conditions: np.ndarray, bundle: dict, model_path: str,
                        cfg: dict, seed: int, device, precision: str, progress: bool) -> None:
    """Sample one image per row of ``synthetic`` (its ``seed`` column) into ``out_path``.

    Batches are streamed into the image set as they finish; a killed job resumes at the first
    missing row. The resume key holds everything that shapes the images.
    """
    from . import diffusion, synthesis

    model = diffusion.load_generator(bundle, device)
    sampler = synthesis.make_sampler(cfg["sampler"], bundle["scheduler_config"], cfg["clip_sample"])
    channels, h, w = bundle["image_shape"]
    key = config_hash({"generator": bundle["hash"], "seed": seed, **cfg, "precision": precision,
                       "seeds": config_hash({"s": synthetic.seed.tolist()})})
    writer = ImageSetWriter(out_path, len(synthetic), (h, w) if channels == 1 else (channels, h, w), key)
    if writer.done:
        log.info("resuming: %d of %d images were sampled before", writer.done, len(synthetic))
    log.info("sampling %d images with %s-%d on %s (%s)", len(synthetic) - writer.done, cfg["sampler"],
             cfg["sampling_steps"], device, precision)
    try:
        for batch in synthesis.iter_samples(model, sampler, conditions, synthetic.seed, tuple(bundle["image_shape"]),
                                            bundle["num_classes"], cfg["sampling_steps"], cfg["guidance_scale"],
                                            cfg["batch_size"], device, precision, start=writer.done,
                                            progress=progress):
            writer.append(batch)
        images = writer.file["images"]
        bad = np.concatenate([synthesis.degenerate_mask(images[i : i + 4096], cfg["saturated_fraction"],
                                                        cfg["blank_std"]) for i in range(0, len(images), 4096)]
                             or [np.zeros(0, bool)])
        log.info("degenerate samples (saturated or blank): %d of %d (%.1f %%)", bad.sum(), len(bad),
                 100 * bad.mean() if len(bad) else 0.0)
        if len(bad) and bad.mean() > cfg["max_degenerate_fraction"]:
            raise SynthesisQualityError(
                f"{bad.mean():.1%} of samples are degenerate (saturated or blank), above "
                f"synthesis.max_degenerate_fraction={cfg['max_degenerate_fraction']}; train longer "
                f"(diffusion.steps), or use the default sampler ddpm with clip_sample: true")
        synthetic.provenance |= {"generator": str(model_path), "generator_hash": bundle["hash"], "synthesis": cfg,
                                 "degenerate_fraction": float(bad.mean()) if len(bad) else 0.0}
        writer.finish(synthetic)
    finally:
        writer.close()


def assemble(real_path: str, synthetic_path: str, out_path: str, alpha: float | None, per_class: int | None,
             base_seed: int, run_seed: int) -> None:
    """A training manifest for one alpha and seed, or the test manifest when ``alpha`` is None."""
    real, synthetic = read_imageset(real_path), read_imageset(synthetic_path)
    if alpha is None:
        m = assemble_test(real, synthetic)
    else:
        m = assemble_alpha(real, synthetic, alpha, per_class, base_seed, run_seed)
    log.info("realised counts per cell: %s", m.attrs["counts"])
    write_manifest(out_path, m)


def train_classifier(real_path: str, synthetic_path: str, train_path: str, test_path: str, model_path: str,
                     predictions_path: str, architecture: str, cfg: dict, seed: int, device_name: str,
                     checkpoint: str, threads: int | None = None, progress: bool = True) -> pd.DataFrame:
    from . import classifier
    from .runtime import atomic_torch_save, resolve_device, resolve_precision, seed_everything

    seed_everything(seed, threads)
    device = resolve_device(device_name)
    precision = resolve_precision(cfg["precision"], device)
    real, synthetic = read_imageset(real_path), read_imageset(synthetic_path)
    train, test = read_manifest(train_path), read_manifest(test_path)
    log.info("%s on %d training images %s, device %s, precision %s", architecture, len(train.label),
             train.attrs["counts"], device, precision)
    model = classifier.train_classifier(gather(train, real, synthetic), train.label, len(real.class_names),
                                        architecture, cfg, seed, device, precision, checkpoint, progress=progress)
    probs = classifier.predict(model, gather(test, real, synthetic), cfg["batch_size"] * 4, device, precision)
    frame = classifier.predictions_frame(test.pool, test.index, test.label, probs)
    atomic_torch_save({"architecture": architecture, "state_dict": model.state_dict(),
                       "class_names": real.class_names, "train_counts": train.attrs["counts"]}, model_path)
    with atomic_output(predictions_path) as tmp:
        frame.to_csv(tmp, index=False)
    Path(checkpoint).unlink(missing_ok=True)  # the run is complete; model.pt supersedes it
    return frame


def evaluate_run(predictions_path: str, real_path: str, out_path: str, identity: dict) -> dict:
    _, class_names = read_header(real_path)
    record = identity | run_metrics(pd.read_csv(predictions_path), class_names)
    write_json(out_path, record)
    return record


def aggregate_alpha(metrics_paths: list[str], out_path: str, ci: float) -> pd.DataFrame:
    records = [json.loads(Path(p).read_text()) for p in metrics_paths]
    table = aggregate(records, ci)
    table["ci_method"] = ci_method(ci)  # the interval is named in the table itself
    with atomic_output(out_path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def figure_alpha(table_path: str, real_path: str, out_path: str, ci: float) -> None:
    from .figures import plot_alpha

    dataset, class_names = read_header(real_path)
    title = f"{dataset}: {class_names[0]} vs {class_names[1]}"
    plot_alpha(pd.read_csv(table_path), out_path, title, ci_method(ci), class_names=class_names)


def figure_architectures(table_paths: list[str], real_paths: list[str], out_path: str, ci: float) -> None:
    """Study A's claim that the bias persists across datasets and architectures, as one picture.

    Cells are renamed "class 1"/"class 2" so one legend serves datasets with different class names.
    """
    from .figures import plot_alpha
    from .metrics import CELL_SEP

    tables = []
    for table_path, real_path in zip(table_paths, real_paths):
        _, names = read_header(real_path)
        generic = {name: f"class {k + 1}" for k, name in enumerate(names)}
        t = pd.read_csv(table_path)
        cells = t["cell"].fillna("").str.split(CELL_SEP, n=1, regex=False)
        t["cell"] = [f"{generic[c[0]]}{CELL_SEP}{c[1]}" if len(c) == 2 else "" for c in cells]
        t["dataset"] = t["dataset"] + " (" + " vs ".join(names) + ")"
        tables.append(t)
    plot_alpha(pd.concat(tables, ignore_index=True), out_path, "Study A across datasets and architectures",
               ci_method(ci), class_names=["class 1", "class 2"])


def figure_samples(real_path: str, synthetic_path: str, out_path: str, seed: int) -> None:
    from .figures import plot_samples

    plot_samples(read_imageset(real_path), read_imageset(synthetic_path), out_path, seed=seed)


# Study B: supplementation with k synthetic replicas per real row (see supplementation.py).


def supplementation_real(out_path: str, site_name: str, site: dict, data: dict, base_seed: int,
                         threads: int = 1, progress: bool = True) -> None:
    """One site's real images as a multi-label image set with condition vectors.

    Images are decoded in ``threads`` threads and streamed into the file in batches, so a
    200,000-image site never sits in memory, and a killed job resumes at the first missing batch.
    """
    split_seed = derive_seed(base_seed, "supplementation", site_name, "split")
    if site["format"] == "mnist":
        write_imageset(out_path, _mnist_binary(site_name, site, data, split_seed))
        return
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from . import cxr

    frame = cxr.read_site(site)
    if site["max_patients"]:
        keep = sorted(frame["subject"].unique())[: site["max_patients"]]
        frame = frame[frame["subject"].isin(keep)].reset_index(drop=True)
    split = cxr.assign_splits(frame, data["val_fraction"], data["test_fraction"], split_seed)
    paths = frame["path"].tolist()
    root = Path(site["root"]).resolve()
    meta = ImageSet(images=None, label=None, labels=cxr.label_matrix(frame), source=np.zeros(len(frame)), split=split,
                    dataset=site_name, class_names=list(cxr.FINDINGS), subject=frame["subject"].to_numpy(str),
                    key=np.array([str(Path(p).resolve().relative_to(root)) for p in paths]),
                    cond=cxr.condition_vectors(frame, data["uncertain_condition"]),
                    provenance={"site": site, "data": data, "cond_names": list(cxr.COND_NAMES)})
    log.info("%s: %d images of %d patients; per split %s", site_name, len(frame), frame["subject"].nunique(),
             {k: int((split == v).sum()) for k, v in SPLITS.items()})
    size = data["image_size"]
    key = config_hash({"site": site, "data": data, "rows": config_hash({"k": meta.key.tolist()})})
    writer = ImageSetWriter(out_path, len(frame), (size, size), key)
    try:
        with ThreadPoolExecutor(max(1, threads)) as pool, \
                tqdm(total=len(frame), initial=writer.done, desc=site_name, disable=not progress, mininterval=10) as bar:
            for start in range(writer.done, len(frame), DATA_BATCH):
                batch = paths[start : start + DATA_BATCH]
                writer.append(np.stack(list(pool.map(lambda p: cxr.load_image(p, size), batch))))
                bar.update(len(batch))
        writer.finish(meta)
    finally:
        writer.close()


def _mnist_binary(site_name: str, site: dict, data: dict, split_seed: int) -> ImageSet:
    """Study B's protocol on embedded MNIST: one binary label ("is it the second digit?"), which is
    also the 1-number condition vector, so the wiring runs on real images on a CPU."""
    from . import mnist

    images, labels = mnist.load_embedded()
    digits = site["digits"]
    s = mnist.build_real(images, labels, digits, data["test_fraction"], split_seed, image_size=data["image_size"],
                         max_per_class=site["max_per_class"], provenance={"source": "embedded"})
    positive = (s.label == 1).astype(np.float32)[:, None]
    keys = np.array([f"{site_name}:{i}" for i in range(len(s))])
    return ImageSet(images=s.images, label=None, labels=positive, source=s.source, split=s.split, dataset=site_name,
                    class_names=[f"digit {digits[1]}"], subject=keys, key=keys, cond=positive.copy(),
                    provenance=s.provenance | {"cond_names": [f"digit {digits[1]}"]})


def sample_replicas(real_path: str, model_path: str, out_path: str, cfg: dict, replicas: int, seed: int,
                    device_name: str, threads: int | None = None, progress: bool = True) -> ImageSet:
    """``replicas`` synthetic copies of every real training row, each with its row's condition."""
    import torch

    from .runtime import resolve_device, resolve_precision, seed_everything
    from .supplementation import replica_plan

    seed_everything(seed, threads)
    device = resolve_device(device_name)
    precision = resolve_precision(cfg["precision"], device)
    plan = replica_plan(read_imageset(real_path, images=False), replicas, seed)
    bundle = torch.load(model_path, map_location="cpu", weights_only=False)
    _sample_to_imageset(out_path, plan, plan.cond, bundle, model_path, cfg, seed, device, precision, progress)
    return plan


def assemble_supplementation(real_path: str, synthetic_path: str, out_path: str, protocol: str, k: int) -> None:
    from .supplementation import assemble_supplementation as assemble

    m = assemble(protocol, k, read_imageset(real_path, images=False), read_imageset(synthetic_path, images=False))
    log.info("%s k=%d: %s", protocol, k, m.attrs["counts"])
    write_manifest(out_path, m)


def train_supplementation(real_path: str, synthetic_path: str, train_path: str, test_paths: dict[str, str],
                          model_path: str, predictions_path: str, architecture: str, cfg: dict, seed: int,
                          device_name: str, checkpoint: str, threads: int | None = None,
                          progress: bool = True) -> pd.DataFrame:
    """A multi-label classifier on one manifest; probabilities on every test set's test split."""
    from . import classifier
    from .assembly import PooledImages
    from .cxr import training_targets
    from .runtime import atomic_torch_save, resolve_device, resolve_precision, seed_everything

    seed_everything(seed, threads)
    device = resolve_device(device_name)
    precision = resolve_precision(cfg["precision"], device)
    real, synthetic = read_imageset(real_path, images=False), read_imageset(synthetic_path, images=False)
    train = read_manifest(train_path)
    raw = np.empty((len(train.index), len(real.class_names)), np.float32)
    for code, pool in ((SOURCES["real"], real), (SOURCES["synthetic"], synthetic)):
        rows = train.pool == code
        raw[rows] = pool.labels[train.index[rows]]
    targets = training_targets(raw, cfg["uncertain"])
    images = PooledImages(train, open_images(real_path), open_images(synthetic_path))
    log.info("%s on %s, device %s, precision %s", architecture, train.attrs["counts"], device, precision)
    model = classifier.train_classifier(images, targets, len(real.class_names), architecture, cfg, seed, device,
                                        precision, checkpoint, progress=progress)
    frames = []
    for test_set, path in test_paths.items():
        meta = read_imageset(path, images=False)
        if meta.class_names != real.class_names:
            raise ValueError(f"{path}: labels {meta.class_names} differ from the training labels {real.class_names}")
        rows = np.flatnonzero(meta.split == SPLITS["test"])
        probs = classifier.predict(model, open_images(path, rows), cfg["batch_size"] * 2, device, precision,
                                   multilabel=True, workers=cfg["loader_workers"])
        frame = pd.DataFrame({"test_set": test_set, "subject": meta.subject[rows], "index": rows})
        for j, name in enumerate(meta.class_names):
            frame[f"y:{name}"] = meta.labels[rows, j]
            frame[f"p:{name}"] = probs[:, j].round(6)
        frames.append(frame)
    predictions = pd.concat(frames, ignore_index=True)
    atomic_torch_save({"architecture": architecture, "state_dict": model.state_dict(),
                       "class_names": real.class_names, "train_counts": train.attrs["counts"]}, model_path)
    with atomic_output(predictions_path) as tmp:
        predictions.to_csv(tmp, index=False)
    Path(checkpoint).unlink(missing_ok=True)
    return predictions


def evaluate_supplementation_run(predictions_path: str, out_path: str, identity: dict) -> dict:
    """Per-label and macro AUROC of one run on every test set (no resampling; see the aggregate)."""
    from .stats import run_auroc

    predictions = pd.read_csv(predictions_path)
    labels = [c[2:] for c in predictions.columns if c.startswith("y:")]
    record = dict(identity)
    for test_set, frame in predictions.groupby("test_set", sort=False):
        record |= {f"{test_set}/{k}": v for k, v in run_auroc(frame, labels).items()}
    write_json(out_path, record)
    return record


def aggregate_supplementation(predictions_paths: list[str], runs: list[dict], out_path: str, n_boot: int,
                              ci: float, seed: int) -> pd.DataFrame:
    """Table of AUROC with patient-bootstrap CIs and p-values against real only (k = 0)."""
    from .stats import supplementation_table
    from .supplementation import protocol_name

    table_runs, labels = [], None
    for path, run in zip(predictions_paths, runs):
        predictions = pd.read_csv(path, dtype={"subject": str})
        labels = [c[2:] for c in predictions.columns if c.startswith("y:")]
        for test_set, frame in predictions.groupby("test_set", sort=False):
            table_runs.append({"arch": run["arch"], "protocol": protocol_name(run["protocol"]), "k": run["k"],
                               "seed": run["seed"], "test_set": test_set, "frame": frame.reset_index(drop=True)})
    table = supplementation_table(table_runs, labels, n_boot, ci, derive_seed(seed, "bootstrap"))
    with atomic_output(out_path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def figure_supplementation(table_path: str, out_path: str, heatmap_path: str, title: str) -> None:
    from .figures_supplementation import plot_label_heatmap, plot_supplementation

    table = pd.read_csv(table_path)
    plot_supplementation(table, out_path, title)
    plot_label_heatmap(table, heatmap_path, title)
