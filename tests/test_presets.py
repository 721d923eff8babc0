"""Every preset in config/ plans its study (dry run, on fixture trees where it needs data), and the
Study B demo preset, whose numbers the README quotes, runs end to end at a tiny size, also with Study B's
recipes from config/chexpert.yaml."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from synthetic_simplicity.core.config import pool_datasets, validate_config
from synthetic_simplicity.data.fixtures import write_chexpert_tree, write_mimic_tree, write_nifti_tree, write_own_tree
from test_workflow import DEFAULT_CONFIG, REPO, check, job_resources, job_stats, snakemake

PRESETS = sorted(p.name for p in (REPO / "config").glob("*.yaml"))
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory) -> dict:
    """Config sections pointing every registration-only root, and the own-data example's folders,
    at fixture trees in the real layout."""
    data = tmp_path_factory.mktemp("preset_data")
    camus = write_nifti_tree(data / "camus", 5)
    chexpert = write_chexpert_tree(data / "chexpert", 12)
    mimic = write_mimic_tree(data / "mimic", 10)
    own = write_own_tree(data / "own_example", per_class=60)
    return {"camus": {"data": {"root": str(camus)}}, "chexpert": {"sites": {
        "chexpert": {"format": "chexpert", "root": str(chexpert)}, "mimic": {"format": "mimic", "root": str(mimic)}}},
        "own_example": {"data": {"root": str(own / "real")}, "synthetic": {"root": str(own / "synthetic")}}}


@pytest.fixture
def roots(data_roots, tmp_path, request) -> str:
    """The roots a preset's sections need, as a config file (a user section only where the preset has it)."""
    preset = yaml.safe_load((REPO / "config" / request.node.callspec.params["name"]).read_text())
    path = tmp_path / "roots.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in data_roots.items() if k in ("camus", "chexpert") or k in preset}))
    return str(path)


def merged(name: str, roots: str) -> dict:
    from snakemake.utils import update_config

    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for path in (REPO / "config" / name, roots):
        update_config(cfg, yaml.safe_load(open(path)))
    return validate_config(cfg, SCHEMA)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_plans_its_figures(tmp_path, roots, name):
    out = check(snakemake(tmp_path, "-n", "--configfile", str(DEFAULT_CONFIG), str(REPO / "config" / name), roots))
    stats, cfg = job_stats(out), merged(name, roots)
    for dataset in cfg["datasets"]:
        assert f"results/figures/{dataset}_alpha.pdf" in out, name
    for study in cfg["supplementation"]:
        assert f"results/figures/{study}_supplementation.pdf" in out, name
    generated = [d for d in cfg["datasets"] if d not in pool_datasets(cfg)]
    assert stats.get("train_diffusion") == (len(generated) + len(cfg["supplementation"]) or None)
    assert stats.get("import_synthetic") == (len(cfg["datasets"]) - len(generated) or None)
    for wildcards, job in job_resources(out, "train_diffusion").items():  # --gpus=N on SLURM (chexpert: 4)
        dataset = wildcards.removeprefix("dataset=")
        assert int(job["gpu"]) == cfg[dataset]["diffusion"]["gpus"], (name, dataset, job)
    assert not (tmp_path / "results").exists()


TINY_DEMO = {"device": "cpu", "mnist_demo": {
    "sites": {"mnist": {"format": "mnist", "digits": [2, 4], "max_per_class": 30}},
    "data": {"image_size": 12},
    "diffusion": {"steps": 4, "batch_size": 8, "block_out_channels": [8, 16], "checkpoint_every": 2,
                  "grid_per_class": 2},
    "synthesis": {"sampling_steps": 2, "max_degenerate_fraction": 1.0},
    "supplementation": {"k": [0, 1], "synthetic_only_k": [1]},
    "classifier": {"epochs": 2, "batch_size": 16},
    "evaluation": {"bootstrap": 100, "min_positives": 0}}}


@pytest.mark.slow
def test_mnist_supplementation_preset_runs_end_to_end(tmp_path):
    """config/mnist_supplementation.yaml (the README's Study B demo) as a new user runs it, shrunk."""
    tiny = tmp_path / "tiny_demo.yaml"
    tiny.write_text(yaml.safe_dump(TINY_DEMO))
    workdir = tmp_path / "run"
    workdir.mkdir()
    out = check(snakemake(workdir, "--configfile", str(DEFAULT_CONFIG), str(REPO / "config" / "mnist_supplementation.yaml"),
                          str(tiny),
                          "--cores", "2"))
    assert job_stats(out)["train_supplementation"] == 6  # (real only, real + 1 replica, 1 replica alone) x 2 seeds
    for name in ("mnist_demo_supplementation.pdf", "mnist_demo_supplementation_heatmap.pdf"):
        assert (workdir / "results/figures" / name).read_bytes()[:4] == b"%PDF"
    table = pd.read_csv(workdir / "results/mnist_demo/supplementation_auroc.csv")
    macro = table[table["metric"] == "auroc_macro"]
    assert set(zip(macro["protocol"], macro["k"])) == {("real+synthetic", 0), ("real+synthetic", 1),
                                                       ("synthetic only", 1)}
    assert macro["value"].between(0, 1).all() and (macro["n_pos"] > 0).all()


# What config/chexpert.yaml sets for sizes and budgets; the rest of its sections is Study B's recipe.
SIZE_KEYS = {"steps", "batch_size", "checkpoint_every", "sampling_steps", "architectures", "epochs", "pretrained"}


def study_b_recipe(**drop: set) -> dict:
    """The recipe keys of config/chexpert.yaml's generator, sampler and classifier (``drop``: section ->
    keys to leave out), for a tiny run to take over."""
    preset = yaml.safe_load((REPO / "config" / "chexpert.yaml").read_text())["chexpert"]
    return {section: {k: v for k, v in preset[section].items() if k not in SIZE_KEYS | drop.get(section, set())}
            for section in ("diffusion", "synthesis", "classifier")}


@pytest.mark.slow
def test_study_b_recipe_runs_on_the_mnist_demo(tmp_path):
    """The MNIST demo with Study B's generator (v-prediction, cosine zero-terminal-SNR, Lion, DDIM) and
    classifier recipe (Lion, augmentation, Mixup/CutMix, EMA, clipping, early stopping); one label, so
    no label smoothing (Study B's rule needs two or more)."""
    import torch
    from snakemake.utils import update_config

    tiny = yaml.safe_load(yaml.safe_dump(TINY_DEMO))
    update_config(tiny["mnist_demo"], study_b_recipe(classifier={"label_smoothing"}))
    tiny["mnist_demo"]["data"]["val_fraction"] = 0.2
    config = tmp_path / "tiny_recipe.yaml"
    config.write_text(yaml.safe_dump(tiny))
    workdir = tmp_path / "run"
    workdir.mkdir()
    run = "results/mnist_demo/runs/cnn/supplemented_k1_seed0"
    out = check(snakemake(workdir, f"{run}/metrics.json", "--configfile", str(DEFAULT_CONFIG),
                          str(REPO / "config" / "mnist_supplementation.yaml"), str(config), "--cores", "2"))
    assert job_stats(out)["train_supplementation"] == 1
    bundle = torch.load(workdir / "results/mnist_demo/diffusion/model.pt", weights_only=True)
    assert bundle["scheduler_config"]["prediction_type"] == "v_prediction"
    assert bundle["scheduler_config"]["rescale_betas_zero_snr"] and bundle["scheduler_config"]["beta_schedule"] == \
        "squaredcos_cap_v2"
    history = torch.load(workdir / run / "model.pt", weights_only=True)["history"]
    assert len(history["val_loss"]) == history["epochs_run"] == 2 and history["selected_epoch"] in (1, 2)
    record = yaml.safe_load((workdir / run / "metrics.json").read_text())
    assert 0 <= record["internal/auroc_macro"] <= 1
