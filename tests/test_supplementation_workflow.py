"""Study B through the whole pipeline on generated, format-true CheXpert and MIMIC-CXR-JPG trees."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from synthetic_simplicity.assembly.manifest import read_manifest
from synthetic_simplicity.data.fixtures import write_chexpert_tree, write_mimic_tree
from synthetic_simplicity.core.imageset import SPLITS, read_imageset
from test_workflow import REPO, check, job_stats, snakemake

TEST_PRESET = REPO / "config" / "test_supplementation.yaml"


def roots_config(tmp_path, chexpert_root, mimic_root) -> str:
    path = tmp_path / "roots.yaml"
    sites = {"chexpert": {"format": "chexpert", "root": str(chexpert_root),
                          "demographics": str(chexpert_root / "CHEXPERT DEMO.csv")},
             "mimic": {"format": "mimic", "root": str(mimic_root),
                       "demographics": str(mimic_root / "hosp" / "patients.csv.gz")}}
    path.write_text(yaml.safe_dump({"device": "cpu", "chexpert": {"sites": sites}}))
    return str(path)


@pytest.fixture(scope="module")
def cxr_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("cxr_data")
    chexpert_root = write_chexpert_tree(data / "chexpert", 40)
    mimic_root = write_mimic_tree(data / "mimic", 30)
    workdir = tmp_path_factory.mktemp("cxr_run")
    args = ["--configfile", str(TEST_PRESET), roots_config(data, chexpert_root, mimic_root), "--cores", "2"]
    out = check(snakemake(workdir, *args))
    return workdir, args, out


@pytest.mark.slow
def test_supplementation_figures_and_table(cxr_run):
    workdir, _, out = cxr_run
    for name in ("chexpert_supplementation.pdf", "chexpert_supplementation_heatmap.pdf"):
        assert (workdir / "results/figures" / name).read_bytes()[:4] == b"%PDF"
    table = pd.read_csv(workdir / "results/chexpert/supplementation_auroc.csv")
    macro = table[table["metric"] == "auroc_macro"]
    assert set(macro["test_set"]) == {"internal", "mimic"}
    got = set(zip(macro["protocol"], macro["k"]))
    assert got == {("real+synthetic", 0), ("real+synthetic", 1), ("real+synthetic", 2), ("synthetic only", 2),
                   ("external mixing (mimic)", 0), ("external mixing (mimic)", 1)}
    reference = macro[(macro["protocol"] == "real+synthetic") & (macro["k"] == 0)]
    assert reference["p_value"].isna().all() and macro.drop(reference.index)["p_value"].between(0, 1).all()
    assert (macro["ci_low"] <= macro["value"]).all() and (macro["value"] <= macro["ci_high"]).all()
    assert table["ci_method"].str.contains("percentile bootstrap over patients").all()
    labels = table[table["metric"].str.startswith("auroc:")]
    assert (labels["n_pos"] + labels["n_neg"] == labels["n_images"]).all()  # what each number stands on
    assert len(table[table["metric"].str.startswith("auroc:")]["metric"].unique()) == 14
    assert job_stats(out)["train_supplementation"] == 6


@pytest.mark.slow
def test_generator_and_splits_respect_patients(cxr_run):
    workdir, _, _ = cxr_run
    real = read_imageset(workdir / "results/chexpert/real.h5", images=False)
    patients = {name: set(real.subject[real.split == code]) for name, code in SPLITS.items()}
    assert patients["train"] and patients["test"]
    assert not patients["train"] & patients["test"] and not patients["val"] & (patients["train"] | patients["test"])
    bundle = torch.load(workdir / "results/chexpert/diffusion/model.pt", weights_only=True)
    for model in (workdir / "results/chexpert/runs").rglob("model.pt"):
        assert torch.load(model, weights_only=True)["class_names"] == real.class_names
    assert set(bundle["trained_on"]["subjects"]) == patients["train"]
    assert bundle["cond_dim"] == 22 and real.cond.shape[1] == 22 and real.labels.shape[1] == 14


@pytest.mark.slow
def test_replicas_are_sampled_once_and_reused_for_smaller_k(cxr_run):
    workdir, _, _ = cxr_run
    real = read_imageset(workdir / "results/chexpert/real.h5", images=False)
    replicas = read_imageset(workdir / "results/chexpert/replicas.h5", images=False)
    train_rows = np.flatnonzero(real.split == SPLITS["train"])
    assert len(replicas) == 2 * len(train_rows)  # the largest k in the preset is 2
    np.testing.assert_array_equal(replicas.cond, real.cond[replicas.origin])  # each copy keeps its row's condition
    assert len(set(replicas.seed)) == len(replicas)
    manifests = workdir / "results/chexpert/manifests"
    k1, k2 = (read_manifest(manifests / f"supplemented_k{k}.h5") for k in (1, 2))
    synthetic = {k: set(m.index[m.pool == 1]) for k, m in ((1, k1), (2, k2))}
    assert synthetic[1] < synthetic[2] and len(synthetic[1]) == len(train_rows)
    mixed = read_manifest(manifests / "mixed-mimic_k1.h5")
    mimic = read_imageset(workdir / "results/chexpert/external/mimic.h5", images=False)
    assert set(mixed.index[mixed.pool == 0]) == set(np.flatnonzero(mimic.split == SPLITS["train"]))


@pytest.mark.slow
@pytest.mark.slow
def test_replica_pool_detectability_splits_patients(cxr_run):
    """The replica C2ST trains on one patient half and is scored on the other; the row is in the table."""
    from synthetic_simplicity.detectability.jobs import patient_halves

    workdir = cxr_run[0]
    record = json.loads((workdir / "results/chexpert/replica_detectability.json").read_text())
    pooled = record["c2st"]["pooled"]
    assert 0 <= pooled["ci_low"] <= pooled["auroc"] <= pooled["ci_high"] <= 1
    assert record["c2st"]["n_train"] > 0 and record["c2st"]["n_test"] > 0
    table = pd.read_csv(workdir / "results/chexpert/replica_detectability.csv")
    assert set(table["variant"]) == {"replicas"} and "c2st_auroc" in set(table["metric"])
    halves = patient_halves(np.array(["p1", "p2", "p1", "p3", "p2"]), 7)
    assert halves[0] == halves[2] and halves[1] == halves[4] and set(halves) <= {0, 1}
    assert not (workdir / "results/chexpert/c2st_checkpoint.pt").exists()


def test_run_records_and_rerun_does_nothing(cxr_run):
    workdir, args, _ = cxr_run
    record = json.loads((workdir / "results/chexpert/runs/cnn/supplemented_k1_seed0/metrics.json").read_text())
    assert record["protocol"] == "supplemented" and record["k"] == 1
    assert 0 <= record["internal/auroc_macro"] <= 1 and 0 <= record["mimic/auroc_macro"] <= 1
    assert "Nothing to be done" in check(snakemake(workdir, *args, "-n"))


def test_chexpert_preset_plans_study_b(tmp_path):
    """config/chexpert.yaml plans Study B's full protocol: one generator, one replica pool of max k,
    and one ConvNeXt-Base per protocol x k (5 supplemented, 4 synthetic-only, 3 external mixing)."""
    chexpert_root = write_chexpert_tree(tmp_path / "chexpert", 12)
    mimic_root = write_mimic_tree(tmp_path / "mimic", 10)
    workdir = tmp_path / "run"
    workdir.mkdir()
    out = check(snakemake(workdir, "-n", "--configfile", str(REPO / "config" / "config.yaml"),
                          str(REPO / "config" / "chexpert.yaml"), roots_config(tmp_path, chexpert_root, mimic_root)))
    stats = job_stats(out)
    for rule, n in {"supplementation_real": 1, "supplementation_external": 1, "train_diffusion": 1,
                    "sample_replicas": 1, "assemble_supplementation": 12, "train_supplementation": 12,
                    "evaluate_supplementation_run": 12, "aggregate_supplementation": 1}.items():
        assert stats.get(rule) == n, f"{rule}: {stats.get(rule)} jobs, expected {n} ({stats})"
    assert not [r for r in stats if r.startswith("train_classifier")] and "mnist_real" not in stats
    assert "results/chexpert/runs/convnext_base/mixed-mimic_k5_seed0/metrics.json" in out


def test_missing_site_root_stops_before_any_job(tmp_path):
    out = check(snakemake(tmp_path, "-n", "--configfile", str(TEST_PRESET)), rc=1)
    last = out.strip().splitlines()[-1]
    assert last.startswith("CxrError: config key 'chexpert.sites.chexpert.root' is not set"), out
    assert "Traceback" not in out and "Job stats" not in out
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("site", ["chexpert", "mimic"])
def test_empty_or_wrong_site_root_says_what_was_expected_and_found(tmp_path, site):
    data = tmp_path / "data"
    roots = {"chexpert": write_chexpert_tree(data / "chexpert", 4), "mimic": write_mimic_tree(data / "mimic", 4)}
    wrong = data / "empty"
    wrong.mkdir()
    (wrong / "readme.txt").write_text("not the download")
    roots[site] = wrong
    workdir = tmp_path / "run"
    workdir.mkdir()
    out = check(snakemake(workdir, "-n", "--configfile", str(TEST_PRESET),
                          roots_config(tmp_path, roots["chexpert"], roots["mimic"])), rc=1)
    last = out.strip().splitlines()[-1]
    expected = {"chexpert": "expected train.csv in it", "mimic": "expected mimic-cxr-2.0.0-metadata.csv.gz"}[site]
    assert last.startswith(f"CxrError: config key 'chexpert.sites.{site}.root' = '{wrong}': {expected}"), out
    assert "found 1 entry: readme.txt" in last and "Traceback" not in out
    assert not (workdir / "results").exists()


@pytest.mark.parametrize("profile", ["none", "default"])
def test_a_missing_jpeg_ends_the_data_job_with_its_message_alone(tmp_path, profile):
    """The data job's expected failure: the message naming the file is the last line the job prints and
    the last line of its log, with no traceback, with or without the workflow profile."""
    from test_workflow import BIN, SNAKEFILE, SNAKEMAKE
    import os
    import subprocess

    data = tmp_path / "data"
    chexpert_root, mimic_root = write_chexpert_tree(data / "chexpert", 4), write_mimic_tree(data / "mimic", 4)
    train = pd.read_csv(chexpert_root / "CheXpert-v1.0-small" / "train.csv")
    (chexpert_root / train.Path.iloc[0]).unlink()
    workdir = tmp_path / "run"
    workdir.mkdir()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--directory", str(workdir), "results/chexpert/real.h5",
           "--configfile", str(TEST_PRESET), roots_config(tmp_path, chexpert_root, mimic_root), "--cores", "1"]
    if profile == "none":
        cmd += ["--workflow-profile", "none"]
    res = subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert res.returncode != 0
    message = f"{chexpert_root / train.Path.iloc[0]}: image listed in"
    log = (workdir / "logs/data/chexpert_real.log").read_text().strip().splitlines()
    assert log[-1].startswith(message) and "Traceback" not in "\n".join(log)
    shown = [line for line in res.stdout.splitlines() if message in line]
    assert len(shown) == 1 and shown[0] == log[-1], res.stdout
    assert "Traceback" not in res.stdout
    assert not (workdir / "results/chexpert/real.h5").exists()


def test_unknown_site_name_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"chexpert": {"external_tests": ["emory"]}}))
    out = check(snakemake(tmp_path, "-n", "--configfile", str(TEST_PRESET), str(bad)), rc=1)
    assert "config key 'chexpert.external_tests[0]': 'emory' is not one of chexpert.sites" in out


@pytest.mark.slow
def test_study_b_recipe_runs_on_the_fixture_trees(tmp_path):
    """config/test_supplementation.yaml with the recipes of config/chexpert.yaml (14 labels, so label
    smoothing too), for one supplemented classifier."""
    from test_presets import study_b_recipe

    data = tmp_path / "data"
    chexpert_root, mimic_root = write_chexpert_tree(data / "chexpert", 40), write_mimic_tree(data / "mimic", 30)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"chexpert": study_b_recipe()}))
    workdir = tmp_path / "run"
    workdir.mkdir()
    run = "results/chexpert/runs/cnn/supplemented_k1_seed0"
    out = check(snakemake(workdir, f"{run}/metrics.json", "--configfile", str(TEST_PRESET),
                          roots_config(data, chexpert_root, mimic_root), str(recipe), "--cores", "2"))
    assert job_stats(out)["train_supplementation"] == 1
    bundle = torch.load(workdir / "results/chexpert/diffusion/model.pt", weights_only=True)
    assert bundle["scheduler_config"]["prediction_type"] == "v_prediction" and bundle["cond_dim"] == 22
    model = torch.load(workdir / run / "model.pt", weights_only=True)
    assert model["history"]["epochs_run"] == len(model["history"]["val_loss"]) == 2
    record = json.loads((workdir / run / "metrics.json").read_text())
    assert 0 <= record["internal/auroc_macro"] <= 1 and 0 <= record["mimic/auroc_macro"] <= 1
