"""Every mitigation arm through Snakemake on the tiny preset: paths per method, the skipped arm, the
harmonised pool, DFR on ERM's models, the summary table and the figure."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from synthetic_simplicity.core.imageset import SPLITS, read_imageset
from synthetic_simplicity.core.runtime import load_torch
from synthetic_simplicity.evaluation.cells import read_table
from test_workflow import DEFAULT_CONFIG, REPO, check, job_stats, snakemake

TEST_MITIGATION = REPO / "config" / "test_mitigation.yaml"
MITIGATION_PRESET = REPO / "config" / "mnist_mitigation.yaml"
METHODS = ["erm", "reweight", "groupdro", "adversarial", "dfr", "harmonise", "augment", "two_stage"]
ARGS = ["--configfile", str(TEST_MITIGATION), "--cores", "2", "--config", "device=cpu"]  # --config last: more may follow


@pytest.fixture(scope="module")
def arms(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mitigation")
    out = check(snakemake(workdir, *ARGS))
    return workdir, out


def dry_run(workdir, override: str) -> str:
    """A dry run of the tiny preset with one more ``--config`` value."""
    return check(snakemake(workdir, "-n", *ARGS, override))


def run_dir(workdir, method, alpha):
    return workdir / f"results/mnist/variants/main/runs/{method}/cnn/alpha{alpha}_seed0"


def test_preset_dag_runs_every_arm_and_dfr_reuses_erm(tmp_path):
    """The preset: 7 trained arms x 2 variants x 5 alphas x 3 seeds, the seeds of one alpha in one job;
    dfr refits ERM's 30 models, in the same grouping; one harmonised pool per variant; the default run
    has none of it."""
    stats = job_stats(check(snakemake(tmp_path, "--configfile", str(DEFAULT_CONFIG), str(MITIGATION_PRESET), "-n")))
    assert stats["train_classifier_mnist"] == 7 * 2 * 5
    assert stats["train_dfr_mnist"] == 2 * 5 and stats["assemble_balanced"] == 2 * 3
    assert stats["harmonise_pool"] == 2 and stats["evaluate_run"] == 8 * 30
    assert stats["figure_mitigation"] == stats["mitigation_summary"] == 1
    default = job_stats(check(snakemake(tmp_path, "--configfile", str(DEFAULT_CONFIG), "-n")))
    assert not {"train_dfr_mnist", "harmonise_pool", "figure_mitigation", "assemble_balanced"} & set(default)


def test_methods_without_erm_are_refused(tmp_path):
    result = snakemake(tmp_path, "-n", *ARGS, 'mnist={"classifier":{"methods":["dfr"]}}')
    out = check(result, rc=1)
    assert "mnist.classifier.methods" in out and "add erm" in out


@pytest.mark.slow
def test_every_arm_has_its_runs_and_figure(arms):
    workdir, _ = arms
    assert (workdir / "results/figures/mnist_mitigation.pdf").read_bytes()[:4] == b"%PDF"
    table = read_table(workdir / "results/mnist/alpha_metrics.csv")
    assert set(table["method"]) == set(METHODS)
    assert {"acc_real", "acc_synthetic", "acc_mismatched"} <= set(table["metric"])
    summary = read_table(workdir / "results/mnist/mitigation_summary.csv")
    assert summary["method"].tolist()[:8] == METHODS  # config order
    assert len(summary) == 8 * 3
    erm = summary[summary["method"] == "erm"]
    assert (erm["delta_mismatched"].dropna() == 0).all()


@pytest.mark.slow
def test_two_stage_is_skipped_where_a_stage_has_one_class(arms):
    workdir, _ = arms
    for alpha in (0, 1):
        run = run_dir(workdir, "two_stage", alpha)
        assert "synthetic stage would train on 1 class(es) only" in load_torch(run / "model.pt")["skipped"]
        assert pd.read_csv(run / "predictions.csv").empty
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["skipped"] is True and metrics["acc_avg"] is None
        log = workdir / f"logs/classifier/mnist_main_two_stage_cnn_alpha{alpha}.log"
        assert "two_stage is skipped at this alpha" in log.read_text()
    trained = load_torch(run_dir(workdir, "two_stage", 0.5) / "model.pt")
    assert set(trained["history"]) == {"synthetic", "real"}
    summary = read_table(workdir / "results/mnist/mitigation_summary.csv")
    skipped = summary[(summary["method"] == "two_stage") & summary["alpha"].isin([0.0, 1.0])]
    assert (skipped["n_seeds"] == 0).all() and skipped["note"].str.contains("skipped").all()


@pytest.mark.slow
def test_dfr_keeps_erm_features_and_refits_the_head(arms):
    workdir, _ = arms
    erm = load_torch(run_dir(workdir, "erm", 0.5) / "model.pt")["state_dict"]
    dfr = load_torch(run_dir(workdir, "dfr", 0.5) / "model.pt")
    head = [k for k in erm if k.endswith(".weight")][-1]
    for name, tensor in erm.items():
        same = bool((tensor == dfr["state_dict"][name]).all())
        assert same == (name.rsplit(".", 1)[0] != head.rsplit(".", 1)[0]), name
    assert dfr["dfr"]["images"] == 4 * 2 and dfr["dfr"]["counts"] == {"2·real": 2, "2·synthetic": 2,
                                                                      "4·real": 2, "4·synthetic": 2}


@pytest.mark.slow
def test_harmonised_pool_is_the_synthetic_pool_matched_to_real(arms):
    workdir, _ = arms
    base = workdir / "results/mnist/variants/main"
    real, synthetic = read_imageset(base.parent.parent / "real.h5"), read_imageset(base / "synthetic.h5")
    harmonised = read_imageset(base / "harmonised.h5")
    assert harmonised.images.shape == synthetic.images.shape
    assert (harmonised.split == synthetic.split).all() and (harmonised.label == synthetic.label).all()
    real_mean = real.images[real.split == SPLITS["train"]].mean()
    assert abs(harmonised.images.mean() - real_mean) < abs(synthetic.images.mean() - real_mean)
    assert harmonised.provenance["harmonised"]["match"] == ["spectrum", "histogram"]


@pytest.mark.slow
def test_the_shortcut_summary_reads_the_erm_runs_only(arms):
    """Its mismatched accuracy is the mean of ERM's four mismatched cells; fed every arm, it would be NaN."""
    workdir, _ = arms
    summary = read_table(workdir / "results/mnist/shortcut_summary.csv")
    cells = []
    for alpha, names in ((0, ["2·real", "4·synthetic"]), (1, ["2·synthetic", "4·real"])):
        record = json.loads((run_dir(workdir, "erm", alpha) / "metrics.json").read_text())
        cells += [record[f"acc_cell:{name}"] for name in names]
    assert summary["mismatched_acc"].tolist() == [pytest.approx(sum(cells) / 4)]


@pytest.mark.slow
def test_changing_the_arms_or_one_setting_leaves_the_other_runs_alone(arms):
    workdir, _ = arms
    fewer = dry_run(workdir, 'mnist={"classifier":{"methods":["erm","reweight","groupdro"]}}')
    assert "train_classifier_mnist" not in job_stats(fewer) and "train_dfr_mnist" not in job_stats(fewer)
    changed = dry_run(workdir, 'mnist={"mitigation":{"groupdro":{"step_size":0.2}}}')
    planned = set(re.findall(r"runs/(\w+)/cnn/alpha[0-9.]+_seed0/model\.pt", changed))
    assert planned == {"groupdro"}, planned
