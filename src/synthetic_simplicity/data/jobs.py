"""Entry points of the data rules (workflow/rules/data.smk): real images into the image-set contract."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..core.config import config_hash
from ..core.imageset import SPLITS, ImageSet, ImageSetWriter, write_imageset
from ..core.seeds import derive_seed

log = logging.getLogger(__name__)
# Images decoded and written per step of the Study B data stage: a kill loses at most this many.
DATA_BATCH = 512


# Study A


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


# Study B


def supplementation_real(out_path: str, site_name: str, site: dict, data: dict, base_seed: int,
                         threads: int = 1, key: str = "site", progress: bool = True) -> None:
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

    frame = cxr.read_site(site, key)
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
                         max_per_class=site["max_per_class"], provenance={"source": "embedded"},
                         val_fraction=data["val_fraction"])
    positive = (s.label == 1).astype(np.float32)[:, None]
    keys = np.array([f"{site_name}:{i}" for i in range(len(s))])
    return ImageSet(images=s.images, label=None, labels=positive, source=s.source, split=s.split, dataset=site_name,
                    class_names=[f"digit {digits[1]}"], subject=keys, key=keys, cond=positive.copy(),
                    provenance=s.provenance | {"cond_names": [f"digit {digits[1]}"]})
