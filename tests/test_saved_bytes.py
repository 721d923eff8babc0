"""Saved bundles: the same content gives the same bytes, whichever process wrote it, so two runs of a
deterministic job can be compared file by file."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from synthetic_simplicity.core.runtime import atomic_torch_save, load_torch

WRITE = ("import sys, torch; from synthetic_simplicity.core.runtime import atomic_torch_save; "
         "atomic_torch_save({'w': torch.arange(6.0).view(2, 3), 'name': 'run'}, sys.argv[1])")


def test_bundle_bytes_do_not_depend_on_the_writing_process(tmp_path):
    for name in ("a.pt", "b.pt"):  # two processes (two PIDs, so two temporary file names)
        subprocess.run([sys.executable, "-c", WRITE, str(tmp_path / name)], check=True)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(load_torch(tmp_path / "a.pt")["w"], torch.arange(6.0).view(2, 3))
    assert not list(tmp_path.glob(".*partial*"))


def test_refused_bundle_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match=r"bundle\['x'\] is a numpy"):
        atomic_torch_save({"x": np.zeros(2)}, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []
