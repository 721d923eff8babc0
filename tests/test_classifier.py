"""Classifiers: architectures, deterministic and resumable training, the predictions contract."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from synthetic_simplicity.classifier.models import ARCHITECTURES, build_classifier
from synthetic_simplicity.classifier.training import (
    RESUMABLE_KEYS,
    iter_batches,
    predict,
    predictions_frame,
    train_classifier,
)
from synthetic_simplicity.core.imageset import H5Images, ImageSet, write_imageset
from synthetic_simplicity.core.runtime import images_to_tensor

CPU = torch.device("cpu")
CFG = {"epochs": 2, "batch_size": 16, "optimizer": "adamw", "learning_rate": 0.01, "weight_decay": 0.0001,
       "precision": "fp32"}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def train(squares, path, arch="cnn", seed=0, **changes):
    images, labels = squares
    return train_classifier(images, labels, 2, arch, CFG | changes, seed, CPU, "fp32", path, progress=False)[0]


def assert_state_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_build_classifier_logits(arch):
    torch.manual_seed(0)
    model = build_classifier(arch, 1, 14).eval()
    with torch.no_grad():
        logits = model(torch.zeros(2, 1, 32, 32))
    assert logits.shape == (2, 14)
    limit = {"cnn": 30_000, "resnet18": 12e6, "densenet121": 8e6, "convnext_tiny": 29e6, "convnext_base": 89e6}
    assert sum(p.numel() for p in model.parameters()) < limit[arch]


def test_unknown_architecture_names_the_key():
    with pytest.raises(ValueError, match=r"classifier\.architectures") as e:
        build_classifier("vit", 1, 2)
    assert "'vit'" in str(e.value) and "cnn" in str(e.value)


def test_training_is_deterministic_and_learns(tmp_path, squares):
    images, labels = squares
    a = train(squares, tmp_path / "a.pt")
    b = train(squares, tmp_path / "b.pt")
    assert_state_equal(a, b)
    pa, pb = predict(a, images, 16, CPU, "fp32"), predict(b, images, 16, CPU, "fp32")
    assert np.array_equal(pa, pb)
    assert pa.shape == (40, 2) and np.allclose(pa.sum(1), 1, atol=1e-5)
    assert (pa.argmax(1) == labels).mean() >= 0.9  # the bright square is easy
    other = train(squares, tmp_path / "c.pt", seed=1)
    assert not np.array_equal(predict(other, images, 16, CPU, "fp32"), pa)


def test_predict_is_batch_size_invariant(tmp_path, squares):
    images, _ = squares
    model = train(squares, tmp_path / "a.pt", epochs=1)
    assert np.allclose(predict(model, images, 7, CPU, "fp32"), predict(model, images, 40, CPU, "fp32"), atol=1e-6)


@pytest.mark.parametrize("arch", ["cnn", "resnet18"])
def test_extending_epochs_resumes(tmp_path, squares, caplog, arch):
    assert "epochs" in RESUMABLE_KEYS
    ckpt = tmp_path / "ckpt.pt"
    train(squares, ckpt, arch, epochs=1)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    with caplog.at_level(logging.INFO, logger="synthetic_simplicity.classifier.training"):
        resumed = train(squares, ckpt, arch, epochs=2)
    assert "at epoch 1" in caplog.text  # it resumed instead of starting over
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    straight = train(squares, tmp_path / "straight.pt", arch, epochs=2)
    assert_state_equal(resumed, straight)


def test_finished_checkpoint_is_reused(tmp_path, squares, caplog):
    ckpt = tmp_path / "ckpt.pt"
    first = train(squares, ckpt)
    with caplog.at_level(logging.INFO, logger="synthetic_simplicity.classifier.training"):
        again = train(squares, ckpt)
    assert "at epoch 2" in caplog.text
    assert_state_equal(first, again)


def test_checkpoint_beyond_the_budget_is_not_used(tmp_path, squares):
    ckpt = tmp_path / "ckpt.pt"
    train(squares, ckpt, epochs=2)
    fewer = train(squares, ckpt, epochs=1)  # must not return the 2-epoch model
    assert_state_equal(fewer, train(squares, tmp_path / "one.pt", epochs=1))


def test_checkpoint_of_another_config_is_ignored(tmp_path, squares, caplog):
    ckpt = tmp_path / "ckpt.pt"
    train(squares, ckpt, epochs=1, learning_rate=0.05)
    with caplog.at_level(logging.INFO, logger="synthetic_simplicity.classifier.training"):
        model = train(squares, ckpt, epochs=1)
    assert "resuming" not in caplog.text
    assert_state_equal(model, train(squares, tmp_path / "fresh.pt", epochs=1))


def test_checkpoint_of_other_training_images_is_never_used(tmp_path, squares, caplog):
    """A manifest that names other images (or gives them other labels) with the same count starts over."""
    images, labels = squares
    ckpt = tmp_path / "ckpt.pt"
    train(squares, ckpt, epochs=1)
    for other in ((images[::-1].copy(), labels), (images, 1 - labels)):
        with caplog.at_level(logging.INFO, logger="synthetic_simplicity.classifier.training"):
            model = train(other, ckpt, epochs=2)
        assert "resuming" not in caplog.text
        assert_state_equal(model, train(other, tmp_path / f"fresh{len(caplog.records)}.pt", epochs=2))
        caplog.clear()


def test_predictions_frame_contract():
    pool = np.array([0, 0, 1, 1], np.uint8)
    index = np.array([5, 2, 9, 0])
    label = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.123456789, 0.876543211]])
    frame = predictions_frame(pool, index, label, probs)
    assert list(frame.columns) == ["pool", "index", "label", "source", "pred", "prob_0", "prob_1"]
    assert frame["pool"].tolist() == ["real", "real", "synthetic", "synthetic"]
    assert frame["source"].tolist() == [0, 0, 1, 1]
    assert frame["index"].tolist() == [5, 2, 9, 0] and frame["label"].tolist() == [0, 1, 0, 1]
    assert frame["pred"].tolist() == [0, 1, 1, 1]
    assert frame["prob_0"].iloc[3] == pytest.approx(0.123457, abs=1e-9)
    assert len(frame) == 4


def test_predictions_frame_csv_round_trip(tmp_path):
    probs = np.array([[0.25, 0.75], [0.5, 0.5]])
    frame = predictions_frame(np.array([1, 0]), np.array([3, 4]), np.array([1, 0]), probs)
    frame.to_csv(tmp_path / "p.csv", index=False)
    back = pd.read_csv(tmp_path / "p.csv")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


@pytest.fixture(scope="module")
def multilabel():
    """48 images at 32x32 (DenseNet/ConvNeXt need 32): label 0 = bright square, label 1 = bright
    bottom band, independent; label 1 is uncertain (-1 -> NaN under "ignore") on a quarter of rows."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=(48, 2)).astype(np.float32)
    images = rng.integers(0, 60, size=(48, 32, 32), dtype=np.uint8)
    images[y[:, 0] == 1, 8:20, 8:20] = 230
    images[y[:, 1] == 1, 26:, :] = 230
    targets = y.copy()
    targets[::4, 1] = np.nan
    return images, y, targets


@pytest.mark.parametrize("arch", ["cnn", "densenet121", "convnext_tiny"])
def test_multilabel_training_streams_from_hdf5(tmp_path, multilabel, arch):
    """BCE over two labels with NaN targets masked, images read on demand from an image-set file."""
    from synthetic_simplicity.core.imageset import H5Images, ImageSet, write_imageset
    from synthetic_simplicity.evaluation.auroc import auroc

    images, y, targets = multilabel
    write_imageset(tmp_path / "s.h5", ImageSet(images=images, label=None, labels=y, source=np.zeros(48),
                                               split=np.zeros(48), dataset="toy", class_names=["square", "band"]))
    stream = H5Images(tmp_path / "s.h5")
    cfg = CFG | {"epochs": 12 if arch == "cnn" else 3, "learning_rate": 0.01 if arch == "cnn" else 0.001}
    model, _ = train_classifier(stream, targets, 2, arch, cfg, 0, CPU, "fp32", tmp_path / "c.pt", progress=False)
    probs = predict(model, stream, 16, CPU, "fp32", multilabel=True)
    assert probs.shape == (48, 2) and ((probs > 0) & (probs < 1)).all()
    assert not np.allclose(probs.sum(1), 1)  # independent sigmoids, not a softmax
    if arch == "cnn":  # the others only have to run here; three epochs are too few to judge them
        assert auroc(y[:, 0], probs[:, 0]) > 0.9 and auroc(y[:, 1], probs[:, 1]) > 0.9
    in_memory, _ = train_classifier(images, targets, 2, arch, cfg, 0, CPU, "fp32", tmp_path / "m.pt", progress=False)
    assert_state_equal(model, in_memory)  # streaming changes nothing about training


def test_loader_workers_do_not_change_the_model(tmp_path, multilabel):
    images, _, targets = multilabel
    cfg = CFG | {"epochs": 1}
    a, _ = train_classifier(images, targets, 2, "cnn", cfg, 0, CPU, "fp32", tmp_path / "a.pt", progress=False)
    b, _ = train_classifier(images, targets, 2, "cnn", cfg | {"loader_workers": 2}, 0, CPU, "fp32",
                            tmp_path / "b.pt", progress=False)
    assert_state_equal(a, b)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_sends_uint8_batches_in_the_sampler_order(tmp_path, workers):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (10, 5, 4), dtype=np.uint8)
    n = len(images)
    write_imageset(tmp_path / "s.h5", ImageSet(images=images, label=np.zeros(n, np.int64), source=np.zeros(n, np.uint8),
                                               split=np.zeros(n, np.uint8), dataset="t", class_names=["a", "b"]))
    batches = [np.array([7, 2, 7]), np.array([0]), np.array([9, 8, 3, 4])]
    got = list(iter_batches(H5Images(tmp_path / "s.h5"), batches, workers))
    assert [x.dtype for x in got] == [torch.uint8] * 3
    for b, x in zip(batches, got):
        np.testing.assert_array_equal(x.numpy(), images[b])


def test_images_to_tensor_maps_0_255_to_unit_range_without_touching_its_input():
    images = np.array([[[0, 255], [51, 204]]], np.uint8)
    x = images_to_tensor(images)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, 0], torch.tensor([[-1.0, 1.0], [-0.6, 0.6]]))
    t = torch.from_numpy(images.copy())
    torch.testing.assert_close(images_to_tensor(t, CPU), x)
    assert t.dtype == torch.uint8 and np.array_equal(t.numpy(), images)
    rgb = np.zeros((2, 3, 4, 4), np.uint8)
    assert images_to_tensor(rgb).shape == (2, 3, 4, 4)


def test_pretrained_weights_adapt_an_rgb_stem_and_keep_a_fresh_head(tmp_path, caplog):
    from torchvision.models import resnet18

    torch.manual_seed(3)
    rgb = resnet18(weights=None)  # ImageNet layout: 3-channel stem, 1000-class head
    torch.save(rgb.state_dict(), tmp_path / "rgb.pt")
    cfg = CFG | {"epochs": 0, "pretrained": str(tmp_path / "rgb.pt")}
    images = np.zeros((4, 32, 32), np.uint8)
    with caplog.at_level(logging.INFO, logger="synthetic_simplicity.classifier.models"):
        model, _ = train_classifier(images, np.zeros((4, 3), np.float32), 3, "resnet18", cfg, 0, CPU, "fp32",
                                    tmp_path / "c.pt", progress=False)
    assert torch.equal(model.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(model.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)
    assert model.fc.weight.shape == (3, 512)
    assert "kept fresh" in caplog.text
    with pytest.raises(FileNotFoundError, match="classifier.pretrained"):
        train_classifier(images, np.zeros((4, 3), np.float32), 3, "resnet18", cfg | {"pretrained": "/nope.pt"}, 0,
                         CPU, "fp32", tmp_path / "d.pt", progress=False)


def test_validation_loss_selects_the_best_epoch(tmp_path, squares):
    images, labels = squares
    val = (images[::2], labels[::2])
    cfg = CFG | {"epochs": 4, "selection": "best_val_loss"}
    model, history = train_classifier(images, labels, 2, "cnn", cfg, 0, CPU, "fp32", tmp_path / "a.pt", val=val,
                                      progress=False)
    assert len(history["val_loss"]) == len(history["train_loss"]) == history["epochs_run"] == 4
    best = int(np.argmin(history["val_loss"])) + 1
    assert history["best_epoch"] == history["selected_epoch"] == best
    # the returned weights are those of the best epoch: a run that stops there ends the same
    short, _ = train_classifier(images, labels, 2, "cnn", CFG | {"epochs": best}, 0, CPU, "fp32", tmp_path / "b.pt",
                                val=val, progress=False)
    assert_state_equal(model, short)
    last, hist_last = train_classifier(images, labels, 2, "cnn", CFG | {"epochs": 4}, 0, CPU, "fp32",
                                       tmp_path / "c.pt", val=val, progress=False)
    assert hist_last["selected_epoch"] == 4 and hist_last["val_loss"] == history["val_loss"]


def test_early_stopping_after_patience_epochs_and_exact_resume(tmp_path, squares):
    """Validation labels flipped: the better the model learns, the worse its validation loss."""
    images, labels = squares
    val = (images, 1 - labels)
    cfg = CFG | {"epochs": 12, "selection": "best_val_loss", "patience": 2}
    straight, history = train_classifier(images, labels, 2, "cnn", cfg, 0, CPU, "fp32", tmp_path / "s.pt", val=val,
                                         progress=False)
    assert history["epochs_run"] == history["best_epoch"] + 2 < 12
    # killed after 2 epochs (a 2-epoch budget leaves the same checkpoint), then resumed with the full budget
    ckpt = tmp_path / "k.pt"
    train_classifier(images, labels, 2, "cnn", cfg | {"epochs": 2}, 0, CPU, "fp32", ckpt, val=val, progress=False)
    resumed, again = train_classifier(images, labels, 2, "cnn", cfg, 0, CPU, "fp32", ckpt, val=val, progress=False)
    assert again == history
    assert_state_equal(resumed, straight)


def test_selection_without_validation_images_names_the_keys(tmp_path, squares):
    from synthetic_simplicity.core.errors import PipelineError

    images, labels = squares
    for change in ({"selection": "best_val_loss"}, {"patience": 3}):
        with pytest.raises(PipelineError, match=r"'mnist\.classifier\.(selection|patience)|val_fraction"):
            train_classifier(images, labels, 2, "cnn", CFG | change, 0, CPU, "fp32", tmp_path / "x.pt",
                             section="mnist.classifier", progress=False)


def test_diverging_loss_stops_with_the_key_to_change(tmp_path, squares):
    from synthetic_simplicity.core.errors import TrainingDivergedError

    images, labels = squares
    with pytest.raises(TrainingDivergedError, match=r"config key 'mnist\.classifier\.learning_rate' \(now 1e\+09\)"):
        train_classifier(images, labels, 2, "cnn", CFG | {"learning_rate": 1e9, "epochs": 3}, 0, CPU, "fp32",
                         tmp_path / "x.pt", section="mnist.classifier", progress=False)
