"""Entry points of the assembly rules (workflow/rules/assembly.smk): training and test manifests."""

from __future__ import annotations

import logging

from ..core.imageset import read_imageset
from .manifest import write_manifest

log = logging.getLogger(__name__)


# Study A


def assemble(real_path: str, synthetic_path: str, out_path: str, alpha: float | None, per_class: int | None,
             base_seed: int, run_seed: int) -> None:
    """A training manifest for one alpha and seed, or the test manifest when ``alpha`` is None."""
    from .alpha import assemble_alpha, assemble_test

    real, synthetic = read_imageset(real_path), read_imageset(synthetic_path)
    if alpha is None:
        m = assemble_test(real, synthetic)
    else:
        m = assemble_alpha(real, synthetic, alpha, per_class, base_seed, run_seed)
    log.info("realised counts per cell: %s", m.attrs["counts"])
    write_manifest(out_path, m)


# Study B


def assemble_supplementation(real_path: str, synthetic_path: str, out_path: str, protocol: str, k: int) -> None:
    from .supplementation import assemble_supplementation as assemble

    m = assemble(protocol, k, read_imageset(real_path, images=False), read_imageset(synthetic_path, images=False))
    log.info("%s k=%d: %s", protocol, k, m.attrs["counts"])
    write_manifest(out_path, m)
