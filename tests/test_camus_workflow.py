"""CAMUS through the whole pipeline on a generated, format-true fixture tree."""

from __future__ import annotations

import pytest
import torch

from synthetic_simplicity.data.fixtures import write_nifti_tree
from synthetic_simplicity.core.imageset import SPLITS, read_imageset
from test_workflow import DEFAULT_CONFIG, REPO, TEST_CONFIG, check, job_stats, snakemake

TEST_CAMUS = REPO / "config" / "test_camus.yaml"


def camus_args(root) -> list[str]:
    # The README's --config pattern, with a number: Snakemake hands nested values over as strings.
    return ["--configfile", str(TEST_CAMUS), "--config", "device=cpu",
            f'camus={{"data":{{"root":"{root}","image_size":20}}}}', "--cores", "2"]


@pytest.fixture(scope="module")
def camus_run(tmp_path_factory):
    root = write_nifti_tree(tmp_path_factory.mktemp("camus_data"), 12)
    workdir = tmp_path_factory.mktemp("camus_run")
    out = check(snakemake(workdir, *camus_args(root)))
    return workdir, root, out


@pytest.mark.slow
def test_camus_alpha_sweep_produces_its_figures(camus_run):
    workdir, _, _ = camus_run
    assert (workdir / "results/figures/camus_alpha.pdf").read_bytes()[:4] == b"%PDF"
    assert (workdir / "results/figures/camus_samples.png").stat().st_size > 0
    real = read_imageset(workdir / "results/camus/real.h5")
    assert real.class_names == ["2CH", "4CH"]
    assert real.images.shape[1:] == (20, 20)  # the command line's number, not the preset's 16


@pytest.mark.slow
def test_camus_splits_are_patient_disjoint_and_the_generator_saw_training_patients_only(camus_run):
    workdir, _, _ = camus_run
    real = read_imageset(workdir / "results/camus/real.h5")
    patients = {name: set(real.subject[real.split == code]) for name, code in SPLITS.items()}
    assert patients["train"] and patients["test"]
    assert not patients["train"] & patients["test"]
    assert not patients["train"] & patients["val"] and not patients["val"] & patients["test"]
    bundle = torch.load(workdir / "results/camus/diffusion/model.pt", weights_only=True)
    assert set(bundle["trained_on"]["subjects"]) == patients["train"]
    assert bundle["trained_on"]["n_images"] == int((real.split == SPLITS["train"]).sum())


@pytest.mark.slow
def test_both_datasets_side_by_side(camus_run, tmp_path):
    """architectures_alpha.pdf: MNIST and CAMUS x both architectures, one picture."""
    _, root, _ = camus_run
    args = ["results/figures/architectures_alpha.pdf", "--configfile", str(TEST_CONFIG), str(TEST_CAMUS),
            "--config", "device=cpu", 'datasets=["mnist","camus"]', f'camus={{"data":{{"root":"{root}"}}}}',
            "--cores", "2"]
    check(snakemake(tmp_path, *args))
    assert (tmp_path / "results/figures/architectures_alpha.pdf").read_bytes()[:4] == b"%PDF"


def test_unset_camus_root_stops_before_any_job(tmp_path):
    res = snakemake(tmp_path, "--configfile", str(DEFAULT_CONFIG), "--config", 'datasets=["camus"]', "-n")
    assert res.returncode != 0
    assert "camus.data.root" in res.stdout and "creatis.insa-lyon.fr" in res.stdout
    assert "Job stats" not in res.stdout
    assert not (tmp_path / "results").exists()


def test_wrong_camus_root_names_what_it_found(tmp_path):
    (tmp_path / "not_camus").mkdir()
    (tmp_path / "not_camus" / "readme.txt").write_text("hello")
    res = snakemake(tmp_path, "--configfile", str(DEFAULT_CONFIG), "--config", 'datasets=["camus"]',
                    f'camus={{"data":{{"root":"{tmp_path / "not_camus"}"}}}}', "-n")
    assert res.returncode != 0
    assert "readme.txt" in res.stdout and "camus.data.root" in res.stdout


def test_camus_dag(tmp_path):
    root = write_nifti_tree(tmp_path / "data", 3)
    out = check(snakemake(tmp_path, *camus_args(root), "-n"))
    stats = job_stats(out)
    assert stats["camus_real"] == 1 and stats["train_classifier_camus"] == 6 and "mnist_real" not in stats


@pytest.mark.parametrize("defect, says", [("missing_cfg", "Info_2CH.cfg: view info file is missing"),
                                          ("3d_still", "patient0001_2CH_ED.nii.gz: a still must be 2-D"),
                                          ("corrupt_file", "patient0001_2CH_ED.nii.gz: unreadable NIfTI file")])
def test_a_malformed_tree_ends_the_data_job_with_its_message_alone(tmp_path, defect, says):
    root = write_nifti_tree(tmp_path / "data", 4, defect=defect)
    out = check(snakemake(tmp_path, "results/camus/real.h5", *camus_args(root)), rc=1)
    shown = [line for line in out.splitlines() if says in line]
    log = (tmp_path / "logs/data/camus_real.log").read_text().strip().splitlines()
    assert len(shown) == 1 and shown[0] == log[-1] and "Traceback" not in out, out
    assert not (tmp_path / "results/camus/real.h5").exists()
