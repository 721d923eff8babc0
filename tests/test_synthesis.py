"""Sampling: one seed per image (batch-size invariant), guidance, seed pools, degenerate samples."""

import numpy as np
import pytest
import torch

from synthetic_simplicity.diffusion.model import build_unet, make_train_scheduler
from synthetic_simplicity.synthesis.sampling import (
    SAMPLERS,
    degenerate_mask,
    iter_samples,
    make_sampler,
    sample_images,
    sample_seeds,
)

# diffusers' DPM-Solver builds an array with a NumPy 2 deprecated call; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.usefixtures("torch_one_thread"),
]

CPU = torch.device("cpu")
CFG = {"block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [],
       "num_train_timesteps": 50, "beta_schedule": "linear"}
SHAPE = (1, 7, 7)  # odd size: sampled at the padded 8x8 and cropped back


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_unet(7, 1, 2, CFG).eval()
    assert m.config.sample_size == 8
    return m


@pytest.fixture(scope="module")
def scheduler_config():
    return dict(make_train_scheduler(CFG).config)


LABELS = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1])
SEEDS = sample_seeds(7, "train", 0, len(LABELS))


def sample(model, scheduler_config, sampler, labels=LABELS, seeds=SEEDS, batch_size=8, guidance=1.0, steps=3):
    s = make_sampler(sampler, scheduler_config, clip_sample=True)
    return sample_images(model, s, labels, seeds, SHAPE, 2, steps, guidance, batch_size, CPU, "fp32", progress=False)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_batch_size_does_not_change_images(model, scheduler_config, sampler):
    one = sample(model, scheduler_config, sampler, batch_size=1)
    eight = sample(model, scheduler_config, sampler, batch_size=8)  # 8 + a ragged batch of 3
    assert one.shape == (len(LABELS), 7, 7) and one.dtype == np.uint8
    assert np.array_equal(one, eight)
    # image i depends only on its own (label, seed), not on its neighbours
    alone = sample(model, scheduler_config, sampler, labels=LABELS[4:5], seeds=SEEDS[4:5])
    assert np.array_equal(alone[0], one[4])
    # and the same call twice gives the same images
    assert np.array_equal(eight, sample(model, scheduler_config, sampler, batch_size=8))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_different_seeds_give_different_images(model, scheduler_config, sampler):
    labels = np.zeros(4, np.int64)
    images = sample(model, scheduler_config, sampler, labels=labels, seeds=sample_seeds(0, "train", 0, 4))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(images[i], images[j])
    other = sample(model, scheduler_config, sampler, labels=labels, seeds=sample_seeds(1, "train", 0, 4))
    assert not np.array_equal(images, other)


def test_label_matters(model, scheduler_config):
    seeds = np.repeat(SEEDS[:1], 2)
    images = sample(model, scheduler_config, "ddim", labels=np.array([0, 1]), seeds=seeds)
    assert not np.array_equal(images[0], images[1])


def test_guidance(model, scheduler_config):
    plain = sample(model, scheduler_config, "ddim", labels=LABELS[:4], seeds=SEEDS[:4])
    guided = sample(model, scheduler_config, "ddim", labels=LABELS[:4], seeds=SEEDS[:4], guidance=2.0)
    assert guided.shape == plain.shape and guided.dtype == np.uint8
    assert not np.array_equal(guided, plain)
    # guided sampling is batch-size invariant too
    guided1 = sample(model, scheduler_config, "ddim", labels=LABELS[:4], seeds=SEEDS[:4], guidance=2.0,
                     batch_size=1)
    assert np.array_equal(guided, guided1)


def test_empty_request(model, scheduler_config):
    out = sample(model, scheduler_config, "ddim", labels=np.zeros(0, np.int64), seeds=np.zeros(0, np.int64))
    assert out.shape == (0, 7, 7) and out.dtype == np.uint8


def test_unknown_sampler(scheduler_config):
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make_sampler("euler", scheduler_config, True)


def test_sampler_shares_the_training_schedule(scheduler_config):
    for name in SAMPLERS:
        s = make_sampler(name, scheduler_config, clip_sample=False)
        assert s.config.num_train_timesteps == 50 and s.config.beta_schedule == "linear"


def test_sample_seeds_pools_disjoint_and_deterministic():
    train = np.concatenate([sample_seeds(0, "train", c, 50) for c in (0, 1)])
    test = np.concatenate([sample_seeds(0, "test", c, 50) for c in (0, 1)])
    assert train.dtype == np.int64 and len(train) == 100
    assert len(set(train)) == 100 and len(set(test)) == 100  # one seed per image
    assert not set(train) & set(test)
    assert np.array_equal(train, np.concatenate([sample_seeds(0, "train", c, 50) for c in (0, 1)]))
    # asking for more images keeps the first ones' seeds
    assert np.array_equal(sample_seeds(0, "train", 1, 80)[:50], train[50:])
    assert not set(sample_seeds(1, "train", 0, 50)) & set(train)
    assert np.all(train >= 0)


def test_degenerate_mask():
    from synthetic_simplicity.data.mnist import load_embedded

    images, labels = load_embedded()
    digits = images[[int(np.flatnonzero(labels == d)[0]) for d in (2, 4, 7)]]
    white = np.full((1, 28, 28), 255, np.uint8)
    mostly_white = digits[:1].copy()
    mostly_white[0, :20] = 255  # > 50 % of pixels saturated
    flat = np.full((1, 28, 28), 17, np.uint8)
    black = np.zeros((1, 28, 28), np.uint8)
    batch = np.concatenate([digits, white, mostly_white, flat, black])
    mask = degenerate_mask(batch, saturated_fraction=0.5, blank_std=4.0)
    assert mask.dtype == bool
    assert mask.tolist() == [False, False, False, True, True, True, True]
    # channels-first images work too
    assert degenerate_mask(batch[:, None], 0.5, 4.0).tolist() == mask.tolist()


def test_resuming_at_a_row_gives_the_same_images(model, scheduler_config):
    """A job killed after some rows restarts at ``start`` and must produce what it would have."""
    sampler = make_sampler("ddim", scheduler_config, clip_sample=True)
    args = (LABELS, SEEDS, SHAPE, 2, 3, 1.0, 3, CPU, "fp32")
    full = sample_images(model, sampler, *args, progress=False)
    tail = np.concatenate(list(iter_samples(model, sampler, *args, start=4, progress=False)))
    assert np.array_equal(tail, full[4:])


def test_condition_vectors_with_guidance(scheduler_config):
    """Study B's continuous conditions: the same vector and seed give the same image, a different
    vector a different one, and guidance (which needs the learned null embedding) runs."""
    torch.manual_seed(0)
    model = build_unet(7, 1, None, CFG, cond_dim=3).eval()
    with torch.no_grad():
        model.class_embedding.net[0].weight.mul_(50)  # make the condition matter in an untrained net
    cond = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1]], np.float32)
    seeds = np.array([5, 5, 5])
    sampler = make_sampler("ddim", scheduler_config, clip_sample=True)
    for guidance in (1.0, 3.0):
        x = sample_images(model, sampler, cond, seeds, SHAPE, None, 3, guidance, 2, CPU, "fp32", progress=False)
        assert x.shape == (3, 7, 7)
        assert np.array_equal(x[0], x[1]) and not np.array_equal(x[0], x[2])


V_ZERO_SNR = CFG | {"beta_schedule": "squaredcos_cap_v2", "rescale_betas_zero_snr": True,
                    "prediction_type": "v_prediction"}


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_takes_the_training_prediction_type_and_schedule(name):
    train = make_train_scheduler(V_ZERO_SNR)
    s = make_sampler(name, dict(train.config), clip_sample=True)
    assert s.config.prediction_type == "v_prediction" and s.config.rescale_betas_zero_snr
    expected = train.alphas_cumprod.clone()
    if name == "dpmsolver++":  # DPM-Solver keeps the last alpha_bar at 2^-24 to stay finite in log-SNR
        expected[-1] = 2.0 ** -24
    torch.testing.assert_close(s.alphas_cumprod, expected)


class FinitenessWatch:
    """The real scheduler, noting whether every intermediate sample it returns is finite."""

    def __init__(self, scheduler):
        self.scheduler, self.finite, self.steps = scheduler, True, 0

    def __getattr__(self, name):
        return getattr(self.scheduler, name)

    def step(self, *args, **kwargs):
        out = self.scheduler.step(*args, **kwargs)
        self.finite &= bool(torch.isfinite(out.prev_sample).all())
        self.steps += 1
        return out


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_v_prediction_on_zero_terminal_snr_samples_finite_images(name, guidance):
    torch.manual_seed(0)
    model = build_unet(7, 1, 2, V_ZERO_SNR).eval()
    watch = FinitenessWatch(make_sampler(name, dict(make_train_scheduler(V_ZERO_SNR).config), clip_sample=True))
    x = sample_images(model, watch, LABELS[:3], SEEDS[:3], SHAPE, 2, 4, guidance, 3, CPU, "fp32", progress=False)
    assert watch.finite and watch.steps == 4 and x.shape == (3, 7, 7)
    assert x.std() > 0  # an image, not a constant


def test_ddim_200_takes_study_b_timesteps():
    """Mediffusion's DDIM200 strides t = 0, 5, ..., 995 (guided-diffusion's space_timesteps)."""
    s = make_sampler("ddim", dict(make_train_scheduler(V_ZERO_SNR | {"num_train_timesteps": 1000}).config), True)
    s.set_timesteps(200)
    assert s.timesteps.tolist() == list(range(995, -1, -5))
