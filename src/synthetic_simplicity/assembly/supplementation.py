"""Study B's training sets: real rows supplemented by k synthetic replicas per row (DESIGN.md §1).

The synthetic pool holds ``replicas`` copies of every real training row: copy j of row r has r's
conditioning and labels and its own seed, derived from r's stable key and j, so it never depends
on the pool's size or order. Rows are stored replica-major, and k×100 % supplementation takes the
replicas j < k: sampling once up to the largest k serves every smaller k.

Protocols (manifests of rows, never image copies):
- ``supplemented``: every real training row plus replicas j < k (k = 0 is real only, the reference);
- ``synthetic-only``: replicas j < k alone;
- ``mixed-<site>``: the real training rows of another site plus replicas j < k of this generator
  ("real and synthetic data from different sources").
"""

from __future__ import annotations

import re

import numpy as np

from ..core.imageset import SOURCES, SPLITS, ImageSet
from ..core.seeds import derive_seed
from .manifest import AssemblyError, Manifest

PROTOCOL_NAMES = {"supplemented": "real+synthetic", "synthetic-only": "synthetic only"}


def protocol_name(protocol: str) -> str:
    """The paper's name for a protocol tag, as it appears in tables and figures."""
    site = mixing_site(protocol)
    return f"external mixing ({site})" if site else PROTOCOL_NAMES[protocol]


def mixing_site(protocol: str) -> str | None:
    match = re.fullmatch(r"mixed-(.+)", protocol)
    return match.group(1) if match else None


def replica_plan(real: ImageSet, replicas: int, base_seed: int) -> ImageSet:
    """The synthetic pool's rows (no images yet): ``replicas`` copies of every real training row."""
    if real.key is None or real.cond is None:
        raise AssemblyError(f"{real.dataset}: the real image set has no 'key'/'cond' rows; rebuild it")
    rows = np.flatnonzero(real.split == SPLITS["train"])
    origin = np.tile(rows, replicas)
    replica = np.repeat(np.arange(replicas), len(rows))
    seeds = np.array([derive_seed(base_seed, "replica", real.key[r], j) for r, j in zip(origin, replica)],
                     dtype=np.int64)
    return ImageSet(images=None, label=None, labels=real.labels[origin], source=np.full(len(origin), SOURCES["synthetic"]),
                    split=np.full(len(origin), SPLITS["train"]), dataset=real.dataset,
                    class_names=list(real.class_names), subject=None if real.subject is None else real.subject[origin],
                    key=np.array([f"{real.key[r]}#replica{j}" for r, j in zip(origin, replica)]), seed=seeds,
                    cond=real.cond[origin], origin=origin, replica=replica)


def assemble_supplementation(protocol: str, k: int, real: ImageSet, synthetic: ImageSet) -> Manifest:
    """Training rows for one protocol and k; ``real`` is the mixing site's set for ``mixed-<site>``."""
    available = int(synthetic.replica.max()) + 1 if len(synthetic) else 0
    if k > available:
        raise AssemblyError(f"k={k} needs {k} replicas per real row but the synthetic pool has {available}; "
                            f"the pool is sampled up to the largest k in the supplementation keys")
    if protocol == "synthetic-only" and k < 1:
        raise AssemblyError("synthetic-only needs k >= 1 (config key supplementation.synthetic_only_k)")
    use_real = protocol != "synthetic-only"
    real_rows = np.flatnonzero(real.split == SPLITS["train"]) if use_real else np.zeros(0, np.int64)
    synthetic_rows = np.flatnonzero(synthetic.replica < k)
    pool = np.concatenate([np.full(len(real_rows), SOURCES["real"], np.uint8),
                           np.full(len(synthetic_rows), SOURCES["synthetic"], np.uint8)])
    attrs = {"protocol": protocol, "k": k, "counts": {"real": len(real_rows), "synthetic": len(synthetic_rows)}}
    return Manifest(pool, np.concatenate([real_rows, synthetic_rows]), None, attrs)
