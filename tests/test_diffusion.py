"""Diffusion training: bit-identical resume, config-guarded checkpoints, pruning, padding."""

import logging

import numpy as np
import pytest
import torch

from synthetic_simplicity.core.runtime import load_torch
from synthetic_simplicity.diffusion.model import (
    build_unet,
    crop_to,
    diffusion_target,
    load_generator,
    make_train_scheduler,
    pad_to,
    padded_size,
)
from synthetic_simplicity.diffusion.training import ADDED_KEYS, RESUMABLE_KEYS, train_diffusion

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny_cfg(**changes) -> dict:
    cfg = {"steps": 4, "batch_size": 4, "learning_rate": 0.002, "weight_decay": 0.0, "warmup_steps": 2,
           "block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [],
           "num_train_timesteps": 50, "beta_schedule": "linear", "ema_decay": 0.9, "label_dropout": 0.5,
           "precision": "fp32", "checkpoint_every": 1, "keep_checkpoints": 2, "grid_per_class": 1}
    return cfg | changes


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 8, 8), dtype=np.uint8)
    labels = np.arange(12) % 2
    return images, labels


def train(data, ckpt_dir, snapshots=(), **changes):
    images, labels = data
    return train_diffusion(images, labels, 2, tiny_cfg(**changes), seed=5, device=CPU, precision="fp32",
                           ckpt_dir=ckpt_dir, progress=False, snapshots=snapshots)


def assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def steps_on_disk(d) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in d.glob("step_*.pt"))


def test_resume_is_bit_identical(tmp_path, data):
    a, b = tmp_path / "a", tmp_path / "b"
    first = train(data, a, steps=2)
    assert first["stats"]["resumed_from"] == 0 and first["stats"]["steps"] == 2
    assert steps_on_disk(a) == [1, 2]
    resumed = train(data, a, steps=4)  # the budget is extended: resumes from step 2
    assert resumed["stats"]["resumed_from"] == 2 and resumed["stats"]["steps"] == 4
    straight = train(data, b, steps=4)
    assert straight["stats"]["resumed_from"] == 0
    assert_state_equal(resumed["state_dict"], straight["state_dict"])
    assert resumed["hash"] == straight["hash"] == first["hash"]
    assert not torch.equal(first["state_dict"]["conv_in.weight"], straight["state_dict"]["conv_in.weight"])
    # a finished run asked again trains nothing and returns the same weights
    again = train(data, b, steps=4)
    assert again["stats"]["resumed_from"] == 4 and again["stats"]["steps_per_s"] is None
    assert_state_equal(again["state_dict"], straight["state_dict"])


def test_resumable_keys_leave_the_hash(tmp_path, data):
    assert {"steps", "checkpoint_every", "keep_checkpoints"} <= set(RESUMABLE_KEYS)
    a = train(data, tmp_path / "a", steps=1)
    b = train(data, tmp_path / "b", steps=1, checkpoint_every=5, keep_checkpoints=1, grid_per_class=3)
    assert a["hash"] == b["hash"]
    assert train(data, tmp_path / "c", steps=1, label_dropout=0.25)["hash"] != a["hash"]


def test_checkpoint_of_another_config_is_ignored(tmp_path, data, caplog):
    d = tmp_path / "ckpt"
    other = train(data, d, steps=5, learning_rate=0.01)  # leaves steps 4 and 5 of another config
    assert steps_on_disk(d) == [4, 5]
    with caplog.at_level(logging.WARNING, logger="synthetic_simplicity.diffusion.training"):
        mine = train(data, d, steps=2)
    assert mine["stats"]["resumed_from"] == 0 and mine["hash"] != other["hash"]
    assert "different diffusion config" in caplog.text
    straight = train(data, tmp_path / "fresh", steps=2)
    assert_state_equal(mine["state_dict"], straight["state_dict"])
    # the stale step-4/5 checkpoints must not outrank (and prune) this run's own checkpoints
    assert steps_on_disk(d) == [1, 2]
    assert all(load_torch(p)["hash"] == mine["hash"] for p in d.glob("step_*.pt"))
    assert train(data, d, steps=3)["stats"]["resumed_from"] == 2


def test_checkpoint_of_other_training_images_is_never_used(tmp_path, data, caplog):
    """Same config, seed and row count, other images (another digit pair) or other labels: start over."""
    images, labels = data
    d = tmp_path / "ckpt"
    train((images, labels), d, steps=2)  # a killed 4-step run of the first data set leaves steps 1 and 2
    for other in ((255 - images, labels), (images, 1 - labels)):
        with caplog.at_level(logging.WARNING, logger="synthetic_simplicity.diffusion.training"):
            mine = train(other, d, steps=4)
        assert mine["stats"]["resumed_from"] == 0 and "other training images" in caplog.text
        assert_state_equal(mine["state_dict"], train(other, tmp_path / f"fresh{len(caplog.records)}", steps=4)["state_dict"])
        caplog.clear()


def test_checkpoint_beyond_the_budget_is_not_used(tmp_path, data):
    d = tmp_path / "ckpt"
    train(data, d, steps=4)  # leaves steps 3 and 4
    fewer = train(data, d, steps=2)
    assert fewer["stats"]["resumed_from"] == 0 and fewer["stats"]["steps"] == 2
    assert_state_equal(fewer["state_dict"], train(data, tmp_path / "fresh", steps=2)["state_dict"])


def test_checkpoints_load_without_running_code(tmp_path, data):
    d = tmp_path / "ckpt"
    bundle = train(data, d, steps=2)
    for path in d.glob("step_*.pt"):
        state = torch.load(path, weights_only=True)
        assert state["hash"] == bundle["hash"] and set(state) == {"step", "hash", "model", "optimizer", "ema", "snapshots"}


def test_only_keep_checkpoints_remain(tmp_path, data):
    d = tmp_path / "ckpt"
    train(data, d, steps=4, keep_checkpoints=2)
    assert steps_on_disk(d) == [3, 4]
    assert not list(d.glob("*.partial"))
    d1 = tmp_path / "one"
    train(data, d1, steps=3, keep_checkpoints=1, checkpoint_every=2)
    assert steps_on_disk(d1) == [3]  # the final step is always saved


def test_snapshot_is_the_model_of_a_shorter_run(tmp_path, data):
    """Variants that differ only in budget share one run: its step-2 snapshot is what a 2-step run gives."""
    long = train(data, tmp_path / "long", steps=4, snapshots=[2, 4, 9])
    short = train(data, tmp_path / "short", steps=2)
    assert set(long["snapshots"]) == {"2"}  # the final step is the bundle itself; 9 lies beyond the budget
    assert_state_equal(long["snapshots"]["2"], short["state_dict"])
    assert not torch.equal(long["snapshots"]["2"]["conv_in.weight"], long["state_dict"]["conv_in.weight"])
    from synthetic_simplicity.diffusion.model import GeneratorBudgetError, generator_hash, generator_steps

    assert generator_steps(long) == [2, 4]
    assert generator_hash(long, 2) != generator_hash(long, 4) == generator_hash(long) != generator_hash(short)
    assert generator_hash(short) == f"{short['hash']}@2" and short["hash"] == long["hash"]  # budget-free
    assert_state_equal(load_generator(long, CPU, 2).state_dict(), short["state_dict"])
    with pytest.raises(GeneratorBudgetError, match="no snapshot after 3 steps"):
        load_generator(long, CPU, 3)


def test_snapshots_survive_a_resume_and_a_checkpoint_without_them_is_not_used(tmp_path, data, caplog):
    resumed_dir, straight_dir = tmp_path / "a", tmp_path / "b"
    train(data, resumed_dir, steps=3, snapshots=[2], keep_checkpoints=5)
    resumed = train(data, resumed_dir, steps=4, snapshots=[2])
    assert resumed["stats"]["resumed_from"] == 3
    straight = train(data, straight_dir, steps=4, snapshots=[2])
    assert_state_equal(resumed["snapshots"]["2"], straight["snapshots"]["2"])
    # Asking for a snapshot before the newest checkpoint that it lacks: that checkpoint cannot serve.
    train(data, tmp_path / "c", steps=3, keep_checkpoints=1)
    with caplog.at_level(logging.WARNING):
        late = train(data, tmp_path / "c", steps=4, snapshots=[1])
    assert late["stats"]["resumed_from"] == 0 and set(late["snapshots"]) == {"1"}
    assert "snapshot" in caplog.text
    # The old budget becomes a snapshot of an extended run (README: raise steps to extend): the checkpoint
    # at that step holds its EMA, so the snapshot is taken from it.
    old = train(data, tmp_path / "d", steps=3)
    extended = train(data, tmp_path / "d", steps=4, snapshots=[3])
    assert extended["stats"]["resumed_from"] == 3
    assert_state_equal(extended["snapshots"]["3"], old["state_dict"])


def test_bundle_loads_as_generator(tmp_path, data):
    bundle = train(data, tmp_path, steps=1)
    assert bundle["image_shape"] == [1, 8, 8] and bundle["num_classes"] == 2
    model = load_generator(bundle, CPU)
    assert not model.training and model.config.num_class_embeds == 3  # two classes + the null class
    x = torch.zeros(2, 1, 8, 8)
    out = model(x, torch.tensor([3, 3]), class_labels=torch.tensor([0, 2])).sample
    assert out.shape == (2, 1, 8, 8)


def test_padded_size():
    # n_blocks - 1 down-samplings need a multiple of 2**(n_blocks - 1)
    assert padded_size(28, 3) == 28  # 28 -> 14 -> 7
    assert padded_size(28, 4) == 32
    assert padded_size(26, 3) == 28
    assert padded_size(12, 2) == 12 and padded_size(13, 3) == 16
    assert padded_size(8, 1) == 8


@pytest.mark.parametrize("size, blocks", [(28, [8, 8, 8]), (26, [8, 8, 8]), (28, [8, 8, 8, 8]), (13, [8, 16])])
def test_unet_runs_at_the_padded_size(size, blocks):
    model = build_unet(size, 1, 2, tiny_cfg(block_out_channels=blocks)).eval()
    p = padded_size(size, len(blocks))
    assert model.config.sample_size == p and p >= size
    with torch.no_grad():
        out = model(torch.zeros(1, 1, p, p), 3, class_labels=torch.tensor([1])).sample
    assert out.shape == (1, 1, p, p)


@pytest.mark.parametrize("h, w, size", [(28, 28, 32), (12, 12, 16), (5, 7, 8), (8, 8, 8)])
def test_pad_crop_round_trip(h, w, size):
    x = torch.rand(2, 1, h, w) * 2 - 1
    padded = pad_to(x, size)
    assert padded.shape == (2, 1, size, size)
    assert torch.equal(crop_to(padded, h, w), x)
    border = padded.clone()
    top, left = (size - h) // 2, (size - w) // 2
    border[..., top:top + h, left:left + w] = -1.0
    assert torch.all(border == -1.0)  # padding is black background


def test_build_unet_block_types():
    cfg = tiny_cfg(block_out_channels=[8, 16, 16], attention_levels=[1])
    model = build_unet(28, 1, 2, cfg)
    assert model.config.sample_size == 28 and model.config.num_class_embeds == 3
    assert model.config.down_block_types == ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D")
    assert model.config.up_block_types == ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")


def test_vector_conditions_train_from_hdf5_and_resume_bit_identically(tmp_path, data):
    """Study B: 22-number conditions, images streamed from an image-set file, null = a NaN row."""
    from synthetic_simplicity.core.imageset import H5Images, ImageSet, write_imageset

    images, _ = data
    n = len(images)
    cond = np.random.default_rng(1).random((n, 22)).astype(np.float32)
    write_imageset(tmp_path / "real.h5", ImageSet(images=images, label=None, labels=np.zeros((n, 1), np.float32),
                                                  source=np.zeros(n), split=np.zeros(n), dataset="cxr",
                                                  class_names=["finding"]))
    stream = H5Images(tmp_path / "real.h5")

    def run(ckpt, steps):
        return train_diffusion(stream, cond, None, tiny_cfg(steps=steps, checkpoint_every=2), seed=5, device=CPU,
                               precision="fp32", ckpt_dir=ckpt, progress=False)

    whole = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "b", 4)
    assert resumed["stats"]["resumed_from"] == 2
    assert_state_equal(whole["state_dict"], resumed["state_dict"])
    assert whole["cond_dim"] == 22 and whole["num_classes"] is None

    model = load_generator(whole, CPU)
    null = torch.full((1, 22), float("nan"))
    with torch.no_grad():
        emb = model.class_embedding(torch.cat([torch.as_tensor(cond[:1]), null]))
    assert torch.equal(emb[1], model.class_embedding.null)  # the learned null embedding
    assert not torch.equal(emb[0], emb[1])
    # An unknown age (NaN) is projected with the learned "unknown" entry, never as decade 0.
    projection = model.class_embedding
    with torch.no_grad():
        projection.unknown[0] = 3.5
        unknown_age, as_zero, as_35 = torch.as_tensor(cond[:1]).repeat(3, 1)
        unknown_age[0], as_zero[0], as_35[0] = float("nan"), 0.0, 3.5
        out = projection(torch.stack([unknown_age, as_zero, as_35]))
    assert torch.allclose(out[0], out[2]) and not torch.allclose(out[0], out[1])


def test_diverging_loss_stops_with_the_key_to_change(tmp_path, data):
    from synthetic_simplicity.core.errors import TrainingDivergedError

    images, labels = data
    with pytest.raises(TrainingDivergedError, match=r"config key 'mnist\.diffusion\.learning_rate' \(now 1e\+12\)"):
        train_diffusion(images, labels, 2, tiny_cfg(steps=6, learning_rate=1e12), seed=5, device=CPU,
                        precision="fp32", ckpt_dir=tmp_path / "c", section="mnist.diffusion", progress=False)


# Study B's generator recipe (issue 16)
STUDY_B = {"beta_schedule": "squaredcos_cap_v2", "rescale_betas_zero_snr": True, "prediction_type": "v_prediction",
           "optimizer": "lion", "learning_rate": 1e-3, "weight_decay": 5e-4, "no_decay_1d": True, "grad_clip": 1.0,
           "ema_warmup": False, "warmup_steps": 0}


def test_v_prediction_target_is_diffusers_velocity():
    sched = make_train_scheduler({"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                                  "rescale_betas_zero_snr": True, "prediction_type": "v_prediction"})
    assert sched.alphas_cumprod[-1] == 0  # zero terminal SNR: x_T is pure noise
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand((6, 1, 8, 8), generator=g) * 2 - 1, torch.randn((6, 1, 8, 8), generator=g)
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(diffusion_target("v_prediction", x0, noise, a), sched.get_velocity(x0, noise, t))
    assert torch.equal(diffusion_target("v_prediction", x0, noise, a)[-1], -x0[-1])  # v at t = T is -x0
    assert torch.equal(diffusion_target("epsilon", x0, noise, a), noise)
    with pytest.raises(ValueError, match="prediction_type 'sample'"):
        diffusion_target("sample", x0, noise, a)


def test_added_keys_at_their_defaults_train_as_before(tmp_path, data):
    """A config that names the recipe keys at their defaults is the run of one that predates them:
    same resume key (old checkpoints resume) and the same weights."""
    before = train(data, tmp_path / "a", steps=3)
    named = train(data, tmp_path / "b", steps=3, **ADDED_KEYS)
    assert named["hash"] == before["hash"]
    assert_state_equal(named["state_dict"], before["state_dict"])
    assert train(data, tmp_path / "c", steps=1, prediction_type="v_prediction")["hash"] != before["hash"]


def test_study_b_recipe_trains_and_resumes_bit_identically(tmp_path, data):
    """v-prediction on the cosine zero-terminal-SNR schedule, Lion, clipping and a constant-decay EMA."""
    whole = train(data, tmp_path / "a", steps=4, **STUDY_B)
    assert whole["scheduler_config"]["prediction_type"] == "v_prediction"
    assert whole["scheduler_config"]["rescale_betas_zero_snr"] and np.isfinite(whole["stats"]["final_loss"])
    train(data, tmp_path / "b", steps=2, **STUDY_B)
    resumed = train(data, tmp_path / "b", steps=4, **STUDY_B)
    assert resumed["stats"]["resumed_from"] == 2
    assert_state_equal(whole["state_dict"], resumed["state_dict"])
    adamw = train(data, tmp_path / "c", steps=4, **STUDY_B | {"optimizer": "adamw"})
    assert not torch.equal(adamw["state_dict"]["conv_in.weight"], whole["state_dict"]["conv_in.weight"])


def test_lion_moves_every_weight_by_the_learning_rate_and_spares_1d_from_decay():
    """Lion's update is lr * sign(momentum); with no_decay_1d only matrices and kernels decay."""
    from synthetic_simplicity.core.optim import build_optimizer

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.GroupNorm(1, 2), torch.nn.Flatten(),
                                torch.nn.LazyLinear(1))
    model(torch.zeros(1, 1, 5, 5))
    before = [p.detach().clone() for p in model.parameters()]
    opt = build_optimizer("lion", model.parameters(), lr=0.01, weight_decay=10.0, no_decay_1d=True)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 10.0]
    model(torch.randn(4, 1, 5, 5)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, b, g in zip(model.parameters(), before, grads):
        decay = 1 - 0.01 * 10.0 if p.ndim > 1 else 1.0  # decoupled: p <- p (1 - lr wd) - lr sign(.)
        torch.testing.assert_close(p.detach(), b * decay - 0.01 * torch.sign(0.1 * g))
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        build_optimizer("adam", model.parameters(), 0.1, 0.0)
