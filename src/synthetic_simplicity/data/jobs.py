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
    _stream(out_path, paths, meta, (size, size), key, lambda p: cxr.load_image(p, size), threads, site_name,
            progress)


def _stream(out_path: str, paths: list[str], meta: ImageSet, image_shape: tuple[int, ...], key: str, load,
            threads: int, desc: str, progress: bool = True) -> None:
    """Decode ``paths`` with ``load`` in ``threads`` threads and stream them into the image set in
    batches: a large dataset never sits in memory, and a killed job resumes at the first missing
    batch (only when ``key``, the inputs' digest, is the same)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    writer = ImageSetWriter(out_path, len(paths), image_shape, key)
    try:
        with ThreadPoolExecutor(max(1, threads)) as pool, \
                tqdm(total=len(paths), initial=writer.done, desc=desc, disable=not progress, mininterval=10) as bar:
            for start in range(writer.done, len(paths), DATA_BATCH):
                batch = paths[start : start + DATA_BATCH]
                writer.append(np.stack(list(pool.map(load, batch))))
                bar.update(len(batch))
        writer.finish(meta)
    finally:
        writer.close()


# A user's own images (config/README.md: Your own data)


def _own_loader(data: dict, image_size: int, channels: str):
    from .images import read_image, to_square

    return lambda p: to_square(read_image(p, channels, data.get("window")), image_size)


def own_real(out_path: str, dataset: str, data: dict, base_seed: int, threads: int = 1,
             progress: bool = True) -> None:
    """The user's real images of two classes as a Study A image set, split by subject when known."""
    from . import own

    classes = data["classes"]
    frame = own.list_images(data, classes, f"{dataset}.data")
    where = data["root"] if data["format"] == "folder" else data["csv"]
    split = own.assign_split(frame, classes, data["val_fraction"], data["test_fraction"],
                             derive_seed(base_seed, dataset, "split"), where)
    real = own.imageset_rows(frame, split, dataset, classes, "real", {"data": data})
    log.info("%s: %d real images (%s subjects); per split and class %s", dataset, len(frame),
             frame["subject"].nunique() if real.subject is not None else "no", _counts(real))
    size, channels = data["image_size"], data["channels"]
    shape = (size, size) if channels == "grey" else (3, size, size)
    key = config_hash({"data": data, "seed": base_seed, "listing": own.listing_digest(frame)})
    _stream(out_path, frame["path"].tolist(), real, shape, key, _own_loader(data, size, channels), threads,
            f"{dataset} real", progress)


def import_synthetic(real_path: str, out_path: str, dataset: str, pool_spec: dict, data: dict, assembly: dict,
                     base_seed: int, threads: int = 1, progress: bool = True) -> None:
    """The user's own synthetic images as a variant's pool: same classes, size and channels as the
    real set, split into the synthetic training and test pools (the CSV's split, else seeded).
    ``assembly`` (per_class, val_fraction) is checked against the pool sizes before any decoding."""
    from ..core.imageset import H5Images, read_imageset
    from . import own

    real = read_imageset(real_path, images=False)
    classes = real.class_names
    frame = own.list_images(pool_spec, classes, f"{dataset}.synthetic", pool=True)
    where = pool_spec["root"] if pool_spec["source"] == "folder" else pool_spec["csv"]
    split = own.assign_split(frame, classes, 0.0, pool_spec["test_fraction"],
                             derive_seed(base_seed, dataset, "synthetic", "split"), where)
    pool = own.imageset_rows(frame, split, dataset, classes, "synthetic",
                             {"synthetic": pool_spec, "generator": "user"})
    own.check_pool_sizes(real, pool, assembly, f"{dataset}.synthetic ({where})")
    log.info("%s: %d synthetic images of the user's generator; per split and class %s", dataset, len(frame),
             _counts(pool))
    shape = tuple(H5Images(real_path).shape[1:])
    channels = "grey" if len(shape) == 2 else "rgb"
    key = config_hash({"synthetic": pool_spec, "data": data, "seed": base_seed, "shape": list(shape),
                       "listing": own.listing_digest(frame)})
    _stream(out_path, frame["path"].tolist(), pool, shape, key, _own_loader(data, shape[-1], channels), threads,
            f"{dataset} synthetic", progress)


def _counts(s: ImageSet) -> dict:
    return {f"{part}/{name}": int(((s.split == code) & (s.label == c)).sum())
            for part, code in SPLITS.items() for c, name in enumerate(s.class_names)}


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
