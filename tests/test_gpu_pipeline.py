"""The GPU input pipeline's CPU-testable parts (issue 15): fp16 loss scaling with exact resume, the
divergence rule under it, channels-last and torch.compile options, bulk loss reads, perf records,
and the precision rule. The CUDA paths themselves have not run on a GPU (README "GPU")."""

import logging
import math

import numpy as np
import pytest
import torch

from synthetic_simplicity.classifier.training import predict, train_classifier
from synthetic_simplicity.core import runtime
from synthetic_simplicity.core.errors import TrainingDivergedError
from synthetic_simplicity.diffusion.training import train_diffusion

CPU = torch.device("cpu")
CFG = {"epochs": 2, "batch_size": 16, "optimizer": "adamw", "learning_rate": 0.01, "weight_decay": 0.0001,
       "precision": "fp16"}
DIFFUSION = {"steps": 6, "batch_size": 4, "learning_rate": 0.002, "weight_decay": 0.0, "warmup_steps": 2,
             "block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [], "num_train_timesteps": 50,
             "beta_schedule": "linear", "ema_decay": 0.9, "label_dropout": 0.5, "precision": "fp16",
             "checkpoint_every": 1, "keep_checkpoints": 2, "grid_per_class": 1}

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def classify(squares, path, precision="fp16", **changes):
    images, labels = squares
    return train_classifier(images, labels, 2, "cnn", CFG | {"precision": precision} | changes, 0, CPU, precision,
                            path, progress=False)


def assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_precision_auto_follows_the_hardware(monkeypatch):
    cuda = torch.device("cuda")
    for capability, expected in (((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert runtime.resolve_precision("auto", cuda) == expected, capability
    assert runtime.resolve_precision("auto", CPU) == ("bf16" if runtime._cpu_has_amx() else "fp32")
    for explicit in ("fp32", "bf16", "fp16"):
        assert runtime.resolve_precision(explicit, CPU) == explicit
    assert runtime.grad_scaler(CPU, "fp32") is None and runtime.grad_scaler(CPU, "bf16") is None
    assert runtime.grad_scaler(CPU, "fp16").is_enabled()


@pytest.mark.parametrize("grad_clip", [None, 1.0])
def test_fp16_classifier_keeps_its_loss_scale_in_the_checkpoint_and_resumes_exactly(tmp_path, squares, grad_clip):
    ckpt = tmp_path / "ckpt.pt"
    classify(squares, ckpt, epochs=1, grad_clip=grad_clip)
    saved = torch.load(ckpt, weights_only=True)["scaler"]
    assert saved["scale"] > 0 and "_growth_tracker" in saved
    resumed, history = classify(squares, ckpt, epochs=2, grad_clip=grad_clip)
    straight, again = classify(squares, tmp_path / "straight.pt", epochs=2, grad_clip=grad_clip)
    assert_state_equal(resumed.state_dict(), straight.state_dict())
    # the scaler's state moves every step (growth tracker): a resume that dropped it would differ here
    assert torch.load(ckpt, weights_only=True)["scaler"] == torch.load(tmp_path / "straight.pt", weights_only=True)["scaler"]
    assert history == again and all(math.isfinite(v) for v in history["train_loss"])
    images, labels = squares
    assert (predict(straight, images, 16, CPU, "fp16").argmax(1) == labels).mean() >= 0.9
    classify(squares, tmp_path / "fp32.pt", precision="fp32", epochs=1)
    assert "scaler" not in torch.load(tmp_path / "fp32.pt", weights_only=True)  # fp32 checkpoints as before


def test_fp16_diffusion_keeps_its_loss_scale_in_the_checkpoint_and_resumes_exactly(tmp_path, squares):
    images, labels = squares

    def run(ckpt_dir, steps):
        return train_diffusion(images, labels, 2, DIFFUSION | {"steps": steps}, 5, CPU, "fp16", ckpt_dir,
                               progress=False)

    run(tmp_path / "a", 3)
    assert torch.load(tmp_path / "a" / "step_00000003.pt", weights_only=True)["scaler"]["scale"] > 0
    resumed, straight = run(tmp_path / "a", 6), run(tmp_path / "b", 6)
    assert resumed["stats"]["resumed_from"] == 3
    assert_state_equal(resumed["state_dict"], straight["state_dict"])
    last = [torch.load(d / "step_00000006.pt", weights_only=True)["scaler"] for d in (tmp_path / "a", tmp_path / "b")]
    assert last[0] == last[1] and last[0]["_growth_tracker"] == 6
    assert math.isfinite(straight["stats"]["final_loss"])


def test_fp16_skips_non_finite_steps_and_stops_after_ten_in_a_row(tmp_path, squares):
    """A learning rate of 1e9 overflows fp16 at once: each such step is skipped by the loss scaler,
    and ten in a row stop the job with the key to change, as in fp32."""
    images, labels = squares
    with pytest.raises(TrainingDivergedError, match=r"\(10 steps in a row.*'mnist\.classifier\.learning_rate'"):
        train_classifier(images, labels, 2, "cnn", CFG | {"epochs": 6, "learning_rate": 1e9}, 0, CPU, "fp16",
                         tmp_path / "x.pt", section="mnist.classifier", progress=False)
    with pytest.raises(TrainingDivergedError, match=r"\(10 steps in a row.*'mnist\.diffusion\.learning_rate'"):
        train_diffusion(images, labels, 2, DIFFUSION | {"steps": 30, "learning_rate": 1e12}, 5, CPU, "fp16",
                        tmp_path / "d", section="mnist.diffusion", progress=False)


def test_loss_record_reads_in_bulk_on_cuda_and_skips_only_under_loss_scaling():
    def raise_at(value, step):
        raise TrainingDivergedError(f"{value} at {step}")

    losses = [torch.tensor(v) for v in (1.0, float("nan"), 2.0, 3.0)]
    plain = runtime.LossRecord(CPU, scaled=False)
    assert plain.every == 1
    assert plain.add(losses[0], 16) and plain.read(raise_at) == [(1.0, 16)]
    plain.add(losses[1], 16)
    with pytest.raises(TrainingDivergedError, match="nan at 1"):
        plain.read(raise_at)

    scaled = runtime.LossRecord(torch.device("cuda"), scaled=True)  # a device name; nothing runs on CUDA
    assert scaled.every == 100
    assert not any(scaled.add(x, 8) for x in losses)  # no read due before 100 steps
    assert scaled.read(raise_at) == [(1.0, 8), (2.0, 8), (3.0, 8)] and scaled.skipped == 1
    for _ in range(runtime.MAX_SKIPPED_IN_A_ROW - 1):
        scaled.add(torch.tensor(float("inf")))
    scaled.read(raise_at)  # nine in a row are skipped steps
    scaled.add(torch.tensor(float("inf")))
    with pytest.raises(TrainingDivergedError, match=f"inf at {4 + runtime.MAX_SKIPPED_IN_A_ROW - 1}"):
        scaled.read(raise_at)


def test_channels_last_trains_the_same_model_up_to_rounding(tmp_path, squares):
    images, _ = squares
    plain, _ = classify(squares, tmp_path / "a.pt", precision="fp32")
    nhwc, _ = classify(squares, tmp_path / "b.pt", precision="fp32", channels_last=True)
    conv = next(m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()  # model.pt in the usual layout
    assert np.allclose(predict(plain, images, 16, CPU, "fp32"), predict(nhwc, images, 16, CPU, "fp32"), atol=1e-4)
    assert runtime.use_channels_last("auto", CPU, "bf16") is False  # the CPU keeps its layout
    assert runtime.use_channels_last("auto", torch.device("cuda"), "bf16") is True
    assert runtime.use_channels_last("auto", torch.device("cuda"), "fp32") is False


def test_perf_record_of_a_training_run_is_logged_and_read_back(tmp_path, squares, caplog):
    with caplog.at_level(logging.INFO, logger="synthetic_simplicity.core.runtime"):
        classify(squares, tmp_path / "a.pt", precision="fp32", epochs=2)
    (record,) = runtime.read_perf(caplog.text)
    assert record["stage"] == "classifier training" and record["images"] == 2 * 40
    assert record["images_per_s"] > 0 and record["cpu_peak_rss_mib"] > 0 and "gpu_peak_mib" not in record


def test_in_memory_images_stay_on_the_host_for_the_cpu(squares):
    images, _ = squares
    assert runtime.resident(images, CPU) is images
    index = np.array([3, 1, 3])
    assert np.array_equal(runtime.take(images, index), images[index])
    assert np.array_equal(runtime.take(images, torch.as_tensor(index)), images[index])


@pytest.mark.slow
def test_compiled_classifier_trains_the_same_model_with_plain_state_keys(tmp_path, squares):
    """torch.compile on the CPU (inductor needs a C++ compiler; without one the model runs eagerly)."""
    images, _ = squares
    eager, _ = classify(squares, tmp_path / "a.pt", precision="fp32", epochs=1)
    compiled, _ = classify(squares, tmp_path / "b.pt", precision="fp32", epochs=1, compile=True)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # no "_orig_mod." prefix
    assert np.allclose(predict(eager, images, 16, CPU, "fp32"), predict(compiled, images, 16, CPU, "fp32"),
                       atol=1e-4)


def test_loader_workers_of_study_a_do_not_change_the_model(tmp_path, squares):
    """classifier.loader_workers for in-memory (Study A) sets: the same batches, the same model."""
    plain, _ = classify(squares, tmp_path / "a.pt", precision="fp32", epochs=1)
    workers, _ = classify(squares, tmp_path / "b.pt", precision="fp32", epochs=1, loader_workers=2)
    assert_state_equal(plain.state_dict(), workers.state_dict())


def test_fp16_perf_record_names_non_finite_loss_steps_and_the_final_loss_scale(tmp_path, squares, caplog):
    with caplog.at_level(logging.INFO, logger="synthetic_simplicity.core.runtime"):
        classify(squares, tmp_path / "a.pt", epochs=1)
    (record,) = runtime.read_perf(caplog.text)
    assert record["precision"] == "fp16" and record["nonfinite_loss_steps"] == 0
    assert record["loss_scale"] == torch.load(tmp_path / "a.pt", weights_only=True)["scaler"]["scale"]
