"""Entry points of the assembly rules (workflow/rules/assembly.smk): training and test manifests."""

from __future__ import annotations

import logging

from ..core.imageset import read_imageset
from .manifest import write_manifest

log = logging.getLogger(__name__)


# Study A


def assemble_alpha(real_path: str, synthetic_path: str, out_path: str, val_path: str, alpha: float,
                   per_class: int | None, val_fraction: float, base_seed: int, run_seed: int) -> None:
    """The training manifest for one alpha and seed, and its validation manifest (same alpha mix)."""
    from .alpha import assemble_alpha as assemble

    train, val = assemble(read_imageset(real_path), read_imageset(synthetic_path), alpha, per_class, base_seed,
                          run_seed, val_fraction)
    log.info("realised counts per cell: %s; validation: %s", train.attrs["counts"], val.attrs["counts"])
    write_manifest(out_path, train)
    write_manifest(val_path, val)


def assemble_balanced(real_path: str, synthetic_path: str, out_path: str, per_cell: int, val_fraction: float,
                      base_seed: int, run_seed: int) -> None:
    """The held-out set of last-layer retraining: ``per_cell`` images per class x source cell."""
    from .alpha import assemble_balanced as assemble

    m = assemble(read_imageset(real_path), read_imageset(synthetic_path), per_cell, base_seed, run_seed,
                 val_fraction)
    log.info("balanced held-out set: %s", m.attrs["counts"])
    write_manifest(out_path, m)


def assemble_test(real_path: str, synthetic_path: str, out_path: str) -> None:
    """Every real and synthetic test image: four cells, source uncorrelated with class."""
    from .alpha import assemble_test as assemble

    m = assemble(read_imageset(real_path), read_imageset(synthetic_path))
    log.info("realised counts per cell: %s", m.attrs["counts"])
    write_manifest(out_path, m)


# Study B


def assemble_supplementation(real_path: str, synthetic_path: str, out_path: str, protocol: str, k: int) -> None:
    from .supplementation import assemble_supplementation as assemble

    m = assemble(protocol, k, read_imageset(real_path, images=False), read_imageset(synthetic_path, images=False))
    log.info("%s k=%d: %s", protocol, k, m.attrs["counts"])
    write_manifest(out_path, m)
