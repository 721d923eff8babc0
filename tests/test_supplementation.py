"""Study B's replica pool and protocols, and its data and sampling stages resuming after a kill."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic_simplicity.assembly.manifest import AssemblyError
from synthetic_simplicity.assembly.supplementation import assemble_supplementation, protocol_name, replica_plan
from synthetic_simplicity.core.imageset import SPLITS, ImageSet, read_imageset, write_imageset
from synthetic_simplicity.data import jobs as data_jobs
from synthetic_simplicity.synthesis import jobs as synthesis_jobs
from synthetic_simplicity.synthesis import sampling

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def real_set(n=10, site="site") -> ImageSet:
    rng = np.random.default_rng(0)
    split = np.array([SPLITS["train"]] * (n - 3) + [SPLITS["val"], SPLITS["test"], SPLITS["test"]], np.uint8)
    labels = rng.choice([1.0, 0.0, -1.0, np.nan], size=(n, 2)).astype(np.float32)
    return ImageSet(images=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), label=None, labels=labels,
                    source=np.zeros(n), split=split, dataset=site, class_names=["a", "b"],
                    subject=np.array([f"p{i // 2}" for i in range(n)]), key=np.array([f"{site}/img{i}.jpg" for i in range(n)]),
                    cond=rng.random((n, 3)).astype(np.float32))


def test_replica_plan_copies_training_rows_replica_major():
    real = real_set()
    plan = replica_plan(real, 3, base_seed=0)
    train = np.flatnonzero(real.split == SPLITS["train"])
    assert len(plan) == 3 * len(train)
    np.testing.assert_array_equal(plan.origin, np.tile(train, 3))
    np.testing.assert_array_equal(plan.replica, np.repeat([0, 1, 2], len(train)))
    np.testing.assert_array_equal(plan.cond, real.cond[plan.origin])
    np.testing.assert_array_equal(plan.labels, real.labels[plan.origin])
    assert (plan.split == SPLITS["train"]).all() and (plan.source == 1).all()
    assert len(set(plan.seed)) == len(plan)


def test_replica_seeds_depend_on_the_row_key_and_replica_only():
    """Adding rows, or sampling fewer replicas, never changes an existing replica's seed."""
    real = real_set()
    full = replica_plan(real, 3, base_seed=0)
    fewer = replica_plan(real.rows(np.arange(len(real))[2:]), 2, base_seed=0)
    seed_of = dict(zip(full.key, full.seed))
    assert all(seed_of[k] == s for k, s in zip(fewer.key, fewer.seed))
    assert not set(replica_plan(real, 3, base_seed=1).seed) & set(full.seed)


def test_protocol_manifests():
    real, other = real_set(), real_set(12, "other")
    pool = replica_plan(real, 4, base_seed=0)
    train = np.flatnonzero(real.split == SPLITS["train"])
    reference = assemble_supplementation("supplemented", 0, real, pool)
    assert (reference.pool == 0).all() and list(reference.index) == list(train)
    k2 = assemble_supplementation("supplemented", 2, real, pool)
    assert k2.attrs["counts"] == {"real": len(train), "synthetic": 2 * len(train)}
    assert set(pool.replica[k2.index[k2.pool == 1]]) == {0, 1}
    only = assemble_supplementation("synthetic-only", 2, real, pool)
    assert (only.pool == 1).all() and set(only.index) == set(k2.index[k2.pool == 1])
    mixed = assemble_supplementation("mixed-other", 1, other, pool)
    assert set(mixed.index[mixed.pool == 0]) == set(np.flatnonzero(other.split == SPLITS["train"]))
    with pytest.raises(AssemblyError, match="k=5 needs 5 replicas"):
        assemble_supplementation("supplemented", 5, real, pool)
    with pytest.raises(AssemblyError, match="synthetic_only_k"):
        assemble_supplementation("synthetic-only", 0, real, pool)
    assert protocol_name("mixed-mimic") == "external mixing (mimic)"
    assert protocol_name("supplemented") == "real+synthetic"


SITE = {"format": "chexpert", "csv": None, "demographics": None, "views": "all", "split_files": {},
        "race_map": None, "max_patients": None, "digits": [2, 4], "max_per_class": None}
DATA = {"image_size": 24, "val_fraction": 0.1, "test_fraction": 0.2, "uncertain_condition": 0.0}


def test_data_stage_resumes_after_a_kill(tmp_path, monkeypatch, caplog):
    from synthetic_simplicity.data import cxr
    from synthetic_simplicity.data.fixtures import write_chexpert_tree

    root = write_chexpert_tree(tmp_path / "tree", 60)
    site = SITE | {"root": str(root)}
    data_jobs.supplementation_real(str(tmp_path / "whole.h5"), "chexpert", site, DATA, 0, progress=False)
    whole = read_imageset(tmp_path / "whole.h5")
    monkeypatch.setattr(data_jobs, "DATA_BATCH", 32)  # several batches, so a kill can land between them

    calls, load = [], cxr.load_image

    def dies_in_the_second_batch(path, size):
        calls.append(path)
        if len(calls) > 40:
            raise KeyboardInterrupt  # what a kill looks like to the job
        return load(path, size)

    monkeypatch.setattr(cxr, "load_image", dies_in_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        data_jobs.supplementation_real(str(tmp_path / "again.h5"), "chexpert", site, DATA, 0, progress=False)
    assert not (tmp_path / "again.h5").exists() and (tmp_path / "again.h5.partial").exists()
    calls.clear()
    monkeypatch.setattr(cxr, "load_image", lambda path, size: calls.append(path) or load(path, size))
    data_jobs.supplementation_real(str(tmp_path / "again.h5"), "chexpert", site, DATA, 0, progress=False)
    again = read_imageset(tmp_path / "again.h5")
    assert len(calls) == len(whole) - 32  # only the batches after the finished one were decoded again
    np.testing.assert_array_equal(again.images, whole.images)
    np.testing.assert_array_equal(again.labels, whole.labels)
    assert list(again.key) == list(whole.key) and list(again.subject) == list(whole.subject)


def test_sampling_stage_resumes_after_a_kill(tmp_path, monkeypatch):
    """A kill mid-pool: the rerun samples only the missing rows and the pool is the same."""
    import torch

    from synthetic_simplicity.core.runtime import atomic_torch_save
    from synthetic_simplicity.diffusion.training import train_diffusion

    real = real_set(40)
    write_imageset(tmp_path / "real.h5", real)
    cfg = {"block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [], "num_train_timesteps": 50,
           "beta_schedule": "linear", "steps": 1, "batch_size": 4, "learning_rate": 0.001, "weight_decay": 0.0,
           "warmup_steps": 1, "ema_decay": 0.9, "label_dropout": 0.1, "checkpoint_every": 1, "keep_checkpoints": 1}
    bundle = train_diffusion(real.images, real.cond, None, cfg, 0, torch.device("cpu"), "fp32", tmp_path / "ckpt",
                             progress=False)
    atomic_torch_save(bundle, tmp_path / "model.pt")
    settings = {"sampler": "ddim", "sampling_steps": 2, "clip_sample": True, "guidance_scale": 1.0, "batch_size": 8,
                "precision": "fp32", "saturated_fraction": 0.5, "blank_std": 4.0, "max_degenerate_fraction": 1.0}
    args = (str(tmp_path / "real.h5"), str(tmp_path / "model.pt"))
    synthesis_jobs.sample_replicas(*args, str(tmp_path / "whole.h5"), settings, 2, 0, "cpu", progress=False)

    started, original = [], sampling.iter_samples

    def killed_after_two_batches(*a, start=0, **kw):
        started.append(start)
        for i, batch in enumerate(original(*a, start=start, **kw)):
            if i == 2 and len(started) == 1:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(sampling, "iter_samples", killed_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        synthesis_jobs.sample_replicas(*args, str(tmp_path / "again.h5"), settings, 2, 0, "cpu", progress=False)
    synthesis_jobs.sample_replicas(*args, str(tmp_path / "again.h5"), settings, 2, 0, "cpu", progress=False)
    assert started == [0, 16]  # the rerun began after the two finished batches
    whole, again = read_imageset(tmp_path / "whole.h5"), read_imageset(tmp_path / "again.h5")
    np.testing.assert_array_equal(again.images, whole.images)
    np.testing.assert_array_equal(again.seed, whole.seed)


def test_a_site_without_demographics_has_unknown_age_and_trains(tmp_path):
    """MIMIC without MIMIC-IV tables: every age is unknown (NaN, not decade 0) and the generator trains on
    those conditions without a NaN loss."""
    import torch

    from synthetic_simplicity.data.fixtures import write_mimic_tree
    from synthetic_simplicity.diffusion.training import train_diffusion

    root = write_mimic_tree(tmp_path / "mimic", 12)
    site = SITE | {"format": "mimic", "root": str(root)}
    data_jobs.supplementation_real(str(tmp_path / "mimic.h5"), "mimic", site, DATA | {"image_size": 8}, 0,
                                   progress=False)
    real = read_imageset(tmp_path / "mimic.h5")
    assert np.isnan(real.cond[:, 0]).all() and (real.cond[:, 1:8] == 0).all()
    cfg = {"block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [], "num_train_timesteps": 50,
           "beta_schedule": "linear", "steps": 3, "batch_size": 4, "learning_rate": 0.001, "weight_decay": 0.0,
           "warmup_steps": 1, "ema_decay": 0.9, "label_dropout": 0.1, "checkpoint_every": 3, "keep_checkpoints": 1}
    bundle = train_diffusion(real.images, real.cond, None, cfg, 0, torch.device("cpu"), "fp32", tmp_path / "c",
                             progress=False)
    assert np.isfinite(bundle["stats"]["final_loss"])
