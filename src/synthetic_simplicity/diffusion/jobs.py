"""Entry point of the diffusion rule (workflow/rules/diffusion.smk): one generator per dataset or study."""

from __future__ import annotations

import logging
import shutil

import numpy as np

from ..core.imageset import SPLITS, open_images, read_imageset
from ..core.runtime import atomic_torch_save, job_runtime
from ..core.seeds import derive_seed

log = logging.getLogger(__name__)


def generator_inputs(real_path: str):
    """What the generator trains on: the training rows (it never sees test images), their conditions
    (Study A: class indices; Study B: condition vectors), the class count (None for vectors), the set."""
    real = read_imageset(real_path, images=False)
    rows = np.flatnonzero(real.split == SPLITS["train"])
    multilabel = real.labels is not None
    conditions = real.cond[rows] if multilabel else real.label[rows]
    return rows, conditions, None if multilabel else len(real.class_names), real


def train_diffusion(real_path: str, model_path: str, grid_path: str, cfg: dict, section: str, seed: int,
                    device_name: str, checkpoints: str, threads: int | None = None, progress: bool = True,
                    snapshots: list[int] = (), gpus: int = 1) -> dict:
    """Study A conditions on the class, Study B on each row's condition vector; both train here.
    ``snapshots``: earlier budgets kept in the bundle for Study A's generator variants. ``gpus``: the
    processes that share each step's global batch (``distributed``), one per GPU on CUDA."""
    from ..figures.samples import plot_grid
    from ..synthesis import sampling
    from .model import load_generator
    from .training import train_diffusion as train

    device, precision = job_runtime(seed, device_name, cfg["precision"], threads)
    log.info("device %s, precision %s, %d training process(es)", device, precision, gpus)
    rows, conditions, num_classes, real = generator_inputs(real_path)
    multilabel = num_classes is None
    if gpus > 1:
        from .distributed import train_on_processes

        bundle = train_on_processes(real_path, cfg, section, seed, device, precision, checkpoints, gpus, threads,
                                    progress, snapshots)
    else:
        bundle = train(open_images(real_path, rows), conditions, num_classes, cfg, seed, device, precision,
                       checkpoints, section=section, progress=progress, snapshots=snapshots)
    bundle["class_names"] = real.class_names
    bundle["precision"] = precision
    # Provenance that the generator saw training rows only (tests check it against the split).
    bundle["trained_on"] = {"split": "train", "n_images": len(rows),
                            "subjects": None if real.subject is None else sorted(map(str, set(real.subject[rows])))}
    log.info("training stats: %s", bundle["stats"])
    atomic_torch_save(bundle, model_path)

    # Preview with a fixed sampler (the default DDPM-50), so synthesis settings never retrain the model.
    model = load_generator(bundle, device)
    if multilabel:  # the conditions of the first training rows, one grid row
        n = min(len(rows), 2 * cfg["grid_per_class"])
        grid_conditions, labels, names = conditions[:n], np.zeros(n, int), ["conditions of training rows"]
    else:
        labels = np.repeat(np.arange(num_classes), cfg["grid_per_class"])
        grid_conditions, names = labels, real.class_names
    seeds = np.array([derive_seed(seed, "grid", i) for i in range(len(labels))])
    sampler = sampling.make_sampler("ddpm", bundle["scheduler_config"], clip_sample=True)
    images = sampling.sample_images(model, sampler, grid_conditions, seeds, tuple(bundle["image_shape"]),
                                    num_classes, 50, 1.0, 256, device, precision, progress=progress)
    plot_grid(images, labels, names, grid_path)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the job is complete; model.pt supersedes them
    return bundle
