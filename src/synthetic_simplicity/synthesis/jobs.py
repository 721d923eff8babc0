"""Entry points of the synthesis rules (workflow/rules/synthesis.smk): Study A's synthetic training and
test pools, Study B's k replicas per real training row."""

from __future__ import annotations

import logging

import numpy as np

from ..core.config import config_hash
from ..core.errors import PipelineError
from ..core.imageset import SOURCES, SPLITS, ImageSet, ImageSetWriter, read_imageset
from ..core.runtime import Stopwatch, job_runtime, load_torch, log_perf

log = logging.getLogger(__name__)


class SynthesisQualityError(PipelineError, RuntimeError):
    """Too many degenerate samples: the generator is undertrained or the sampler diverges."""


# Study A


def sample_synthetic(real_path: str, model_path: str, out_path: str, cfg: dict, seed: int, device_name: str,
                     threads: int | None = None, progress: bool = True, steps: int | None = None) -> ImageSet:
    """A variant's pools: its generator budget ``steps`` (None: the final model) and sampler ``cfg``.
    Every variant draws the same per-image seeds, so pools differ by generator and sampler only."""
    from . import sampling

    device, precision = job_runtime(seed, device_name, cfg["precision"], threads)
    real = read_imageset(real_path, images=False)
    bundle = load_torch(model_path)

    labels, seeds, split = [], [], []
    for pool, key in (("train", "train_per_class"), ("test", "test_per_class")):
        for c in range(len(real.class_names)):
            n = cfg[key] or int(((real.split == SPLITS[pool]) & (real.label == c)).sum())
            labels.append(np.full(n, c))
            seeds.append(sampling.sample_seeds(seed, pool, c, n))
            split.append(np.full(n, SPLITS[pool]))
    labels, seeds, split = map(np.concatenate, (labels, seeds, split))
    if set(seeds[split == SPLITS["train"]]) & set(seeds[split == SPLITS["test"]]):
        raise RuntimeError("synthetic train and test pools share a seed; report this as a bug")
    synthetic = ImageSet(images=None, label=labels.astype(np.int64), source=np.full(len(labels), SOURCES["synthetic"]),
                         split=split, dataset=real.dataset, class_names=real.class_names, seed=seeds)
    _sample_to_imageset(out_path, synthetic, labels, bundle, model_path, cfg, seed, device, precision, progress,
                        steps)
    return synthetic


# Study B


def sample_replicas(real_path: str, model_path: str, out_path: str, cfg: dict, replicas: int, seed: int,
                    device_name: str, threads: int | None = None, progress: bool = True) -> ImageSet:
    """``replicas`` synthetic copies of every real training row, each with its row's condition."""
    from ..assembly.supplementation import replica_plan

    device, precision = job_runtime(seed, device_name, cfg["precision"], threads)
    plan = replica_plan(read_imageset(real_path, images=False), replicas, seed)
    bundle = load_torch(model_path)
    _sample_to_imageset(out_path, plan, plan.cond, bundle, model_path, cfg, seed, device, precision, progress)
    return plan


# Both


def _sample_to_imageset(out_path: str, synthetic: ImageSet, conditions: np.ndarray, bundle: dict, model_path: str,
                        cfg: dict, seed: int, device, precision: str, progress: bool, steps: int | None = None) -> None:
    """Sample one image per row of ``synthetic`` (its ``seed`` column) into ``out_path``.

    Batches are streamed into the image set as they finish; a killed job resumes at the first
    missing row. The resume key holds everything that shapes the images.
    """
    from ..diffusion.model import generator_hash, load_generator
    from . import sampling

    model = load_generator(bundle, device, steps)
    sampler = sampling.make_sampler(cfg["sampler"], bundle["scheduler_config"], cfg["clip_sample"])
    channels, h, w = bundle["image_shape"]
    key = config_hash({"generator": generator_hash(bundle, steps), "seed": seed, **cfg, "precision": precision,
                       "seeds": config_hash({"s": synthetic.seed.tolist()})})
    writer = ImageSetWriter(out_path, len(synthetic), (h, w) if channels == 1 else (channels, h, w), key)
    if writer.done:
        log.info("resuming: %d of %d images were sampled before", writer.done, len(synthetic))
    log.info("sampling %d images with %s-%d on %s (%s)", len(synthetic) - writer.done, cfg["sampler"],
             cfg["sampling_steps"], device, precision)
    try:
        clock, todo = Stopwatch(device), len(synthetic) - writer.done
        for batch in sampling.iter_samples(model, sampler, conditions, synthetic.seed, tuple(bundle["image_shape"]),
                                           bundle["num_classes"], cfg["sampling_steps"], cfg["guidance_scale"],
                                           cfg["batch_size"], device, precision, start=writer.done,
                                           progress=progress):
            writer.append(batch)
        if todo:
            log_perf("sampling", todo, clock.seconds(), device, sampler=f"{cfg['sampler']}-{cfg['sampling_steps']}",
                     precision=precision)
        images = writer.file["images"]
        bad = np.concatenate([sampling.degenerate_mask(images[i : i + 4096], cfg["saturated_fraction"],
                                                       cfg["blank_std"]) for i in range(0, len(images), 4096)]
                             or [np.zeros(0, bool)])
        log.info("degenerate samples (saturated or blank): %d of %d (%.1f %%)", bad.sum(), len(bad),
                 100 * bad.mean() if len(bad) else 0.0)
        if len(bad) and bad.mean() > cfg["max_degenerate_fraction"]:
            raise SynthesisQualityError(
                f"{bad.mean():.1%} of samples are degenerate (saturated or blank), above "
                f"synthesis.max_degenerate_fraction={cfg['max_degenerate_fraction']}; train longer "
                f"(diffusion.steps), or use the default sampler ddpm with clip_sample: true")
        synthetic.provenance |= {"generator": str(model_path), "generator_hash": generator_hash(bundle, steps),
                                 "generator_steps": int(steps or bundle["stats"]["steps"]), "synthesis": cfg,
                                 "degenerate_fraction": float(bad.mean()) if len(bad) else 0.0}
        writer.finish(synthetic)
    finally:
        writer.close()
