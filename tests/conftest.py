"""Shared fixtures."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models run fastest on one thread (and do not fight a busy machine for cores)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def squares():
    """40 tiny images: class 1 has a bright square, class 0 does not (plus noise)."""
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    images = rng.integers(0, 60, size=(40, 12, 12), dtype=np.uint8)
    images[labels == 1, 3:9, 3:9] = 230
    return images, labels
