"""Study B's classifier recipe: augmentation and Mixup/CutMix keep the label semantics, label smoothing is
Study B's rule, EMA and early stopping resume exactly, Lion trains, ConvNeXt loads local weights."""

import logging

import numpy as np
import pytest
import torch

from synthetic_simplicity.classifier.augment import augment, mix, random_affine, recipe_batch, smooth_labels
from synthetic_simplicity.classifier.training import ADDED_KEYS, mean_loss, train_classifier
from synthetic_simplicity.core.errors import PipelineError

CPU = torch.device("cpu")
STUDY_B_AUGMENT = {"hflip": 0.5, "vflip": 0.5, "noise_p": 0.5, "noise_std": 0.3, "affine_p": 0.5, "rotate": 0.4,
                   "scale": 0.1, "translate": 12 / 256}
STUDY_B_MIX = {"mixup_alpha": 1.0, "cutmix_alpha": 1.0, "prob": 0.5, "switch_prob": 0.5}
OFF = dict(ADDED_KEYS)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def batch():
    """8 images 16x16 with 3 labels, one of them unknown (NaN) in two rows."""
    g = gen(1)
    x = torch.rand((8, 1, 16, 16), generator=g) * 2 - 1
    y = (torch.rand((8, 3), generator=g) < 0.5).float()
    y[[1, 6], 2] = float("nan")
    return x, y


def test_flips_noise_and_affine_keep_the_targets(batch):
    x, y = batch
    every = {k: (1.0 if k in ("hflip", "vflip", "noise_p", "affine_p") else v) for k, v in STUDY_B_AUGMENT.items()}
    out, targets = recipe_batch(x, y, gen(), OFF | {"augment": every})
    torch.testing.assert_close(targets, y, equal_nan=True)  # bit for bit, NaN included
    assert out.shape == x.shape and not torch.allclose(out, x)
    # each part alone: a flip is the flipped image; a zero-range affine is the identity
    one = dict.fromkeys(("hflip", "vflip", "noise_p", "affine_p"), 0.0)
    assert torch.equal(augment(x, gen(), STUDY_B_AUGMENT | one | {"hflip": 1.0}), x.flip(-1))
    assert torch.equal(augment(x, gen(), STUDY_B_AUGMENT | one | {"vflip": 1.0}), x.flip(-2))
    torch.testing.assert_close(random_affine(x, gen(), 0.0, 0.0, 0.0), x)
    assert torch.equal(augment(x, gen(), STUDY_B_AUGMENT | one), x)  # probabilities 0: untouched


def test_noise_std_is_drawn_up_to_noise_std_per_image():
    x = torch.zeros((64, 1, 32, 32))
    out = augment(x, gen(), dict.fromkeys(("hflip", "vflip", "affine_p"), 0.0) | {"noise_p": 1.0, "noise_std": 0.3})
    std = out.flatten(1).std(1)
    assert std.max() < 0.33 and std.min() < 0.05 and 0.1 < std.mean() < 0.2  # U(0, 0.3): mean 0.15


def test_affine_shift_stays_within_the_range():
    """A bright square moved by translation only: its centre moves at most translate x side."""
    x = -torch.ones((32, 1, 40, 40))
    x[:, :, 16:24, 16:24] = 1
    out = random_affine(x, gen(), rotate=0.0, scale=0.0, translate=0.1)
    w = (out + 1).clamp(min=0)[:, 0]
    grid = torch.arange(40.0)
    cy = (w.sum(2) * grid).sum(1) / w.sum((1, 2))
    cx = (w.sum(1) * grid).sum(1) / w.sum((1, 2))
    assert (cy - 19.5).abs().max() <= 4.01 and (cx - 19.5).abs().max() <= 4.01
    assert (cx - 19.5).min() < -1 and (cx - 19.5).max() > 1  # both directions are drawn


def test_augmentation_is_a_function_of_the_generator(batch):
    x, y = batch
    cfg = OFF | {"augment": STUDY_B_AUGMENT, "mix": STUDY_B_MIX, "label_smoothing": 0.1}
    a, b, c = (recipe_batch(x, y, gen(s), cfg) for s in (3, 3, 4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].nan_to_num(-9), b[1].nan_to_num(-9))
    assert not torch.equal(a[0], c[0])


def test_mixup_mixes_targets_with_the_weight_of_the_images(batch):
    x, y = batch
    out, targets = mix(x, y, gen(), STUDY_B_MIX | {"cutmix_alpha": 0.0, "prob": 1.0})
    partner = x.flip(0)
    lam = ((out - partner) / (x - partner)).flatten()
    lam = lam[(x - partner).abs().flatten() > 0.1]
    assert lam.std() < 1e-4 and 0 < lam.mean() < 1  # one lam for the whole batch
    torch.testing.assert_close(targets, lam.mean() * y + (1 - lam.mean()) * y.flip(0), equal_nan=True,
                               atol=1e-4, rtol=0)
    assert torch.isnan(targets[[1, 6], 2]).all()  # a mix with an unknown label stays unknown
    assert not torch.isnan(targets[[0, 2], 2]).any()


def test_cutmix_mixes_targets_by_the_pasted_area():
    x = torch.arange(1.0, 9.0).view(8, 1, 1, 1).expand(8, 1, 16, 16).clone()  # image i is all i + 1
    y = torch.eye(8)[:, :3].clone()
    seen = 0
    for seed in range(20):
        out, targets = mix(x, y, gen(seed), STUDY_B_MIX | {"mixup_alpha": 0.0, "prob": 1.0})
        pasted = (out == x.flip(0)).flatten(1).float().mean(1)  # share of each image from its partner
        assert torch.equal(((out == x) | (out == x.flip(0))).all().view(1), torch.tensor([True]))
        assert pasted.std() == 0  # one box for the batch
        torch.testing.assert_close(targets, (1 - pasted[:, None]) * y + pasted[:, None] * y.flip(0))
        seen += bool(0 < pasted[0] < 1)
    assert seen >= 10


def test_mix_probability_and_class_indices(batch):
    x, y = batch
    out, targets = mix(x, y, gen(), STUDY_B_MIX | {"prob": 0.0})
    assert out is x and targets is y
    with pytest.raises(ValueError, match="multi-label"):
        mix(x, torch.zeros(8, dtype=torch.long), gen(), STUDY_B_MIX | {"prob": 1.0})


def test_label_smoothing_is_study_b_rule():
    y = torch.tensor([[1.0] * 7 + [0.0] * 6 + [float("nan")]])
    s = smooth_labels(y, 0.1)
    torch.testing.assert_close(s[0, 0], torch.tensor(1 - 0.1 + 2 * 0.1 / 14))  # 0.914
    torch.testing.assert_close(s[0, 7], torch.tensor(0.1 / 14))  # 0.0071
    assert torch.isnan(s[0, 13])


@pytest.fixture(scope="module")
def multilabel():
    """48 images at 16x16: label 0 = bright square, label 1 = bright bottom band, label 2 unknown on a quarter."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=(48, 3)).astype(np.float32)
    images = rng.integers(0, 60, size=(48, 16, 16), dtype=np.uint8)
    images[y[:, 0] == 1, 4:10, 4:10] = 230
    images[y[:, 1] == 1, 13:, :] = 230
    y[::4, 2] = np.nan
    return images, y


RECIPE = {"epochs": 12, "batch_size": 8, "optimizer": "lion", "learning_rate": 3e-4, "weight_decay": 3e-4,
          "precision": "fp32", "no_decay_1d": True, "grad_clip": 1.0, "ema_decay": 0.9, "augment": STUDY_B_AUGMENT,
          "mix": STUDY_B_MIX, "label_smoothing": 0.1, "selection": "best_val_loss", "patience": 2}


def fit(data, path, val, **changes):
    images, y = data
    return train_classifier(images, y, 3, "cnn", RECIPE | changes, 0, CPU, "fp32", path, val=val, progress=False)


def assert_state_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_full_recipe_with_ema_and_early_stopping_resumes_exactly_after_a_kill(tmp_path, multilabel):
    """Validation labels inverted: the better the model learns, the worse its validation loss, so it
    stops early. A run killed after 2 epochs and resumed ends bit for bit as the uninterrupted one."""
    images, y = multilabel
    val = (images, 1 - y)
    straight, history = fit(multilabel, tmp_path / "s.pt", val)
    assert history["epochs_run"] == history["best_epoch"] + 2 < 12
    ckpt = tmp_path / "k.pt"
    fit(multilabel, ckpt, val, epochs=2)  # what a kill after epoch 2 leaves on disk
    resumed, again = fit(multilabel, ckpt, val)
    assert again == history
    assert_state_equal(resumed, straight)
    # the EMA weights are the ones validated and returned
    no_ema, _ = fit(multilabel, tmp_path / "n.pt", val, ema_decay=None)
    assert not torch.equal(no_ema[0].weight, straight[0].weight)


def test_ema_weights_are_validated_and_returned(tmp_path, multilabel):
    images, y = multilabel
    val = (images[:16], y[:16])
    model, history = fit(multilabel, tmp_path / "a.pt", val, epochs=3, selection="last", patience=None)
    loss = mean_loss(model, val[0], torch.as_tensor(val[1]), 32, CPU, "fp32")
    assert loss == pytest.approx(history["val_loss"][-1], abs=1e-6)


def test_lion_and_the_recipe_learn_the_labels(tmp_path, multilabel):
    from synthetic_simplicity.classifier.training import predict
    from synthetic_simplicity.evaluation.auroc import auroc

    images, y = multilabel
    model, _ = fit(multilabel, tmp_path / "a.pt", None, epochs=15, selection="last", patience=None,
                   augment=STUDY_B_AUGMENT | {"vflip": 0.0, "hflip": 0.0}, learning_rate=1e-3, ema_decay=0.8)
    probs = predict(model, images, 16, CPU, "fp32", multilabel=True)
    assert auroc(y[:, 0], probs[:, 0]) > 0.9 and auroc(y[:, 1], probs[:, 1]) > 0.9


def test_recipe_keys_at_their_defaults_train_as_before(tmp_path, multilabel, caplog):
    """Naming the added keys at their defaults changes neither the resume key nor the weights."""
    images, y = multilabel
    base = {"epochs": 2, "batch_size": 8, "optimizer": "adamw", "learning_rate": 0.01, "weight_decay": 1e-4,
            "precision": "fp32"}
    a, _ = train_classifier(images, y, 3, "cnn", base, 0, CPU, "fp32", tmp_path / "a.pt", progress=False)
    with caplog.at_level(logging.INFO, logger="synthetic_simplicity.classifier.training"):
        train_classifier(images, y, 3, "cnn", base | ADDED_KEYS, 0, CPU, "fp32", tmp_path / "a.pt", progress=False)
    assert "at epoch 2" in caplog.text  # the checkpoint written without the keys is this run's
    c, _ = train_classifier(images, y, 3, "cnn", base | ADDED_KEYS, 0, CPU, "fp32", tmp_path / "c.pt",
                            progress=False)
    assert_state_equal(a, c)


def test_label_smoothing_on_one_label_names_the_key(tmp_path, multilabel):
    images, y = multilabel
    with pytest.raises(PipelineError, match=r"'mnist_demo\.classifier\.label_smoothing' needs two or more labels"):
        train_classifier(images, y[:, :1], 1, "cnn", RECIPE, 0, CPU, "fp32", tmp_path / "a.pt", val=(images, y[:, :1]),
                         section="mnist_demo.classifier", progress=False)


def _small_convnext_base_state(layout: str) -> dict:
    """A few ImageNet-shaped ConvNeXt-Base tensors (RGB stem, first block, 1000-class head) in torchvision's
    or timm's naming, random values: what a user's local file holds, without its 350 MB."""
    g = gen(5)
    shapes = {"stem_w": (128, 3, 4, 4), "stem_b": (128,), "dw": (128, 1, 7, 7), "fc1": (512, 128),
              "gamma": (128,), "head": (1000, 1024)}
    t = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    if layout == "torchvision":
        return {"features.0.0.weight": t["stem_w"], "features.0.0.bias": t["stem_b"],
                "features.1.0.block.0.weight": t["dw"], "features.1.0.block.3.weight": t["fc1"],
                "features.1.0.layer_scale": t["gamma"].view(128, 1, 1), "classifier.2.weight": t["head"]}
    return {"stem.0.weight": t["stem_w"], "stem.0.bias": t["stem_b"], "stages.0.blocks.0.conv_dw.weight": t["dw"],
            "stages.0.blocks.0.mlp.fc1.weight": t["fc1"], "stages.0.blocks.0.gamma": t["gamma"],
            "head.fc.weight": t["head"]}


@pytest.mark.parametrize("layout", ["torchvision", "timm"])
def test_convnext_base_starts_from_a_local_state_dict_with_a_grey_stem(tmp_path, caplog, layout):
    state = _small_convnext_base_state(layout)
    torch.save(state, tmp_path / "w.pt")
    tv = _small_convnext_base_state("torchvision")
    cfg = {"epochs": 0, "batch_size": 2, "optimizer": "lion", "learning_rate": 1e-5, "weight_decay": 3e-4,
           "precision": "fp32", "pretrained": str(tmp_path / "w.pt")}
    with caplog.at_level(logging.INFO, logger="synthetic_simplicity.classifier.models"):
        model, _ = train_classifier(np.zeros((2, 32, 32), np.uint8), np.zeros((2, 14), np.float32), 14,
                                    "convnext_base", cfg, 0, CPU, "fp32", tmp_path / "c.pt", progress=False)
    assert torch.equal(model.features[0][0].weight, tv["features.0.0.weight"].sum(1, keepdim=True))
    assert torch.equal(model.features[0][0].bias, tv["features.0.0.bias"])
    assert torch.equal(model.features[1][0].block[0].weight, tv["features.1.0.block.0.weight"])
    assert torch.equal(model.features[1][0].block[3].weight, tv["features.1.0.block.3.weight"])
    assert torch.equal(model.features[1][0].layer_scale, tv["features.1.0.layer_scale"])
    assert model.classifier[2].weight.shape == (14, 1024)  # the task head stays fresh
    assert not torch.equal(model.classifier[2].weight, tv["classifier.2.weight"][:14])
    assert "5 tensors loaded" in caplog.text
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, 64, 64)).shape == (1, 14)
