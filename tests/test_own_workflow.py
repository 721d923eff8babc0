"""Study A on a user's own images and own generator, through real Snakemake: config errors, the DAG
(no diffusion or sampling jobs when the pool is the user's), malformed input stopping before any job,
a tiny end-to-end run, and `snakemake --report` holding every figure, table and sample grid."""

from __future__ import annotations

import json
import re
import zipfile

import pandas as pd
import pytest
import yaml

from synthetic_simplicity.core.config import ConfigError, validate_config
from synthetic_simplicity.core.imageset import SOURCES, read_imageset
from synthetic_simplicity.data.fixtures import OWN_CLASSES, write_own_tree, main as fixtures_main
from test_workflow import DEFAULT_CONFIG, REPO, check, job_stats, snakemake

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CLASSES = list(OWN_CLASSES)
TINY = {"device": "cpu", "datasets": ["knee"], "knee": {
    "data": {"classes": CLASSES, "image_size": 12},
    "variants": [{"name": "vendor"}],
    "detectability": {"epochs": 2, "batch_size": 16, "bootstrap": 50},
    "assembly": {"alphas": [0, 0.5, 1]},
    "classifier": {"architectures": ["cnn"], "seeds": [0], "epochs": 3, "batch_size": 16,
                   "methods": ["erm", "reweight"]}}}


def own_config(root, layout: str = "folder", **knee) -> dict:
    """TINY pointed at a tree of ``write_own_tree``: a folder or CSV dataset with the user's pool."""
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    if layout == "folder":
        cfg["knee"]["data"] |= {"format": "folder", "root": str(root / "real"), "subject_regex": "^(s[0-9]+)_"}
        cfg["knee"]["synthetic"] = {"source": "folder", "root": str(root / "synthetic")}
    else:
        cfg["knee"]["data"] |= {"format": "csv", "csv": str(root / "real.csv")}
        cfg["knee"]["synthetic"] = {"source": "csv", "csv": str(root / "synthetic.csv")}
    cfg["knee"] |= knee
    return cfg


def config_file(path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("own_trees")
    return {layout: write_own_tree(root / layout, layout, per_class=30) for layout in ("folder", "csv")}


# ---------------------------------------------------------------- config


def test_listed_dataset_needs_a_section():
    with pytest.raises(ConfigError, match=r"'datasets\[0\]': 'knee' has no section; add a 'knee:' section"):
        validate_config({"datasets": ["knee"]}, SCHEMA)


def test_user_pool_is_one_variant(trees):
    cfg = own_config(trees["folder"], variants=[{"name": "a"}, {"name": "b"}])
    with pytest.raises(ConfigError, match=r"'knee\.variants' lists 2 variants, but synthetic\.source: folder"):
        validate_config(cfg, SCHEMA)


def test_typo_at_top_level_is_not_a_dataset():
    with pytest.raises(ConfigError, match=r"unknown config key 'mnsit'; .*name of your own dataset"):
        validate_config({"mnsit": {"diffusion": {"steps": 3}}}, SCHEMA)


def test_own_section_takes_every_stage_default(trees):
    cfg = validate_config(own_config(trees["folder"]), SCHEMA)
    assert cfg["knee"]["data"]["channels"] == "grey" and cfg["knee"]["data"]["val_fraction"] == 0.1
    assert cfg["knee"]["synthetic"]["test_fraction"] == 0.2
    assert cfg["knee"]["assembly"]["val_fraction"] == cfg["mnist"]["assembly"]["val_fraction"]


@pytest.mark.parametrize("kind", ["own-folder", "own-csv", "own-dicom"])
def test_fixture_writer_prints_a_config_that_validates(tmp_path, capsys, kind):
    """`python -m ...fixtures own-* DIR > my.yaml` gives a config file that runs as it is."""
    fixtures_main([kind, str(tmp_path / "tree"), "--per-class", "30", "--digits", "1", "7"])
    out = capsys.readouterr()
    cfg = validate_config(yaml.safe_load(out.out), SCHEMA)
    assert cfg["datasets"] == ["own"] and cfg["own"]["data"]["classes"] == ["one", "seven"]
    assert "wrote" in out.err and "wrote" not in out.out


# ---------------------------------------------------------------- DAG


@pytest.mark.parametrize("layout", ["folder", "csv"])
def test_user_pool_replaces_the_generator(tmp_path, trees, layout):
    cfg = own_config(trees[layout], layout)
    out = check(snakemake(tmp_path, "-n", "--configfile", str(DEFAULT_CONFIG), config_file(tmp_path / "c.yaml", cfg)))
    stats = job_stats(out)
    assert "train_diffusion" not in stats and "sample_synthetic" not in stats
    assert stats["own_real"] == 1 and stats["import_synthetic"] == 1 and stats["detectability"] == 1
    assert stats["train_classifier_knee"] == 3 * 2  # alphas x methods (one seed, one architecture)
    for name in ("alpha.pdf", "samples.png", "fidelity.pdf", "fingerprints.pdf", "mitigation.pdf"):
        assert f"results/figures/knee_{name}" in out
    assert not (tmp_path / "results").exists()


def test_own_dataset_with_our_generator_trains_one(tmp_path, trees):
    cfg = own_config(trees["folder"])
    del cfg["knee"]["synthetic"]
    stats = job_stats(check(snakemake(tmp_path, "-n", "--configfile", str(DEFAULT_CONFIG),
                                      config_file(tmp_path / "c.yaml", cfg))))
    assert stats["own_real"] == 1 and stats["train_diffusion"] == 1 and stats["sample_synthetic"] == 1
    assert "import_synthetic" not in stats


def test_missing_class_folder_stops_before_any_job(tmp_path, trees):
    cfg = own_config(trees["folder"])
    cfg["knee"]["data"]["classes"] = ["three", "seven"]
    cfg["knee"]["synthetic"]["root"] = str(trees["folder"] / "real")  # checked after the real images
    result = snakemake(tmp_path, "--cores", "1", "--configfile", str(DEFAULT_CONFIG),
                       config_file(tmp_path / "c.yaml", cfg))
    out = check(result, rc=1)
    assert re.search(r"OwnDataError: \S+/real/seven: class folder missing .*set knee\.data\.classes", out), out
    assert "Traceback" not in out and not (tmp_path / "results").exists()


def test_unknown_label_in_pool_csv_stops_before_any_job(tmp_path, trees):
    table = pd.read_csv(trees["csv"] / "synthetic.csv")
    table.loc[[0, 7], "label"] = "nine"
    table.to_csv(tmp_path / "pool.csv", index=False)
    cfg = own_config(trees["csv"], "csv")
    cfg["knee"]["synthetic"] = {"source": "csv", "csv": str(tmp_path / "pool.csv"), "root": str(trees["csv"])}
    out = check(snakemake(tmp_path, "--cores", "1", "--configfile", str(DEFAULT_CONFIG),
                          config_file(tmp_path / "c.yaml", cfg)), rc=1)
    assert re.search(r"pool\.csv: label 'nine' on line\(s\) 2, 9 is not one of the classes", out), out
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- tiny run and report


@pytest.fixture(scope="module")
def own_run(tmp_path_factory, trees):
    workdir = tmp_path_factory.mktemp("own_run")
    args = ["--configfile", str(DEFAULT_CONFIG), config_file(workdir / "own.yaml", own_config(trees["folder"]))]
    out = check(snakemake(workdir, "--cores", "2", *args))
    return workdir, out, args


@pytest.mark.slow
def test_tiny_own_run(own_run):
    workdir, out, _ = own_run
    stats = job_stats(out)
    assert "train_diffusion" not in stats and stats["import_synthetic"] == 1
    real = read_imageset(workdir / "results/knee/real.h5", images=False)
    pool = read_imageset(workdir / "results/knee/variants/vendor/synthetic.h5", images=False)
    assert real.class_names == pool.class_names == CLASSES and (pool.source == SOURCES["synthetic"]).all()
    assert len(real.label) == len(pool.label) == 60
    for name in ("alpha.pdf", "fidelity.pdf", "fingerprints.pdf", "mitigation.pdf"):
        assert (workdir / "results/figures" / f"knee_{name}").read_bytes()[:4] == b"%PDF", name
    detectability = (workdir / "results/knee/detectability.csv").read_text()
    assert "knee,vendor,pooled,c2st_auroc" in detectability


def report_results(html: str) -> tuple[dict, dict]:
    """The report's results (path -> name, caption, labels) and categories, as embedded in its page."""
    found = {}
    for name in ("results", "categories"):
        m = re.search(rf"var {name} = (\{{.*?\}});\n", html, re.S)
        assert m, f"no '{name}' in the report"
        found[name] = json.loads(m[1])
    return found["results"], found["categories"]


EXPECTED = {"Figures": ["results/figures/knee_alpha.pdf", "results/figures/knee_fidelity.pdf",
                        "results/figures/knee_fingerprints.pdf", "results/figures/knee_mitigation.pdf"],
            "Tables": [f"results/knee/{t}.csv" for t in ("alpha_metrics", "detectability", "mitigation_summary",
                                                         "shortcut_summary")],
            "Samples": ["results/figures/knee_samples.png"]}


@pytest.mark.slow
def test_report_holds_every_result_with_captions(own_run):
    workdir, _, args = own_run
    check(snakemake(workdir, *args, "--report", "report.html"))
    html = (workdir / "report.html").read_text()
    results, categories = report_results(html)
    assert {k: sorted(v) for k, v in categories["Study A: knee"].items()} == EXPECTED
    for path in (p for paths in EXPECTED.values() for p in paths):
        entry = results[path]
        assert entry["labels"] == {"result": entry["labels"]["result"], "variants": "vendor", "architectures": "cnn",
                                   "methods": "erm, reweight"}, path
        assert "knee" in entry["caption"] and "{{" not in entry["caption"], path  # config rendered in
        assert "System Message" not in entry["caption"], path  # docutils found no error in the caption
    assert "0, 0.5, 1" in results["results/figures/knee_alpha.pdf"]["caption"]  # the run's alphas
    assert "the user&#x27;s own folder" in results["results/figures/knee_samples.png"]["caption"] or \
        "the user's own folder" in results["results/figures/knee_samples.png"]["caption"]
    assert "ran on: knee" in html and "System Message" not in html  # the front page, rendered


@pytest.mark.slow
def test_report_zip_holds_every_file(own_run):
    workdir, _, args = own_run
    check(snakemake(workdir, *args, "--report", "report.zip"))
    with zipfile.ZipFile(workdir / "report.zip") as z:
        names = z.namelist()
        for path in (p for paths in EXPECTED.values() for p in paths):
            inside = [n for n in names if n.startswith("report/data/raw/") and n.endswith("/" + path.split("/")[-1])]
            assert len(inside) == 1, (path, names)
            assert z.read(inside[0]) == (workdir / path).read_bytes(), path
        assert "report/report.html" in names


@pytest.mark.slow
def test_tiny_rgb_csv_run(tmp_path):
    """RGB images through every stage, from the CSV layout: image sets, classifiers and figures take 3 channels."""
    root = write_own_tree(tmp_path / "tree", "csv", per_class=30, channels="rgb")
    cfg = own_config(root, "csv")
    cfg["knee"]["data"]["channels"] = "rgb"
    cfg["knee"]["classifier"]["methods"] = ["erm"]
    out = check(snakemake(tmp_path, "--cores", "2", "--configfile", str(DEFAULT_CONFIG),
                          config_file(tmp_path / "c.yaml", cfg)))
    assert job_stats(out)["train_classifier_knee"] == 3
    for name in ("real.h5", "variants/vendor/synthetic.h5"):
        assert read_imageset(tmp_path / "results/knee" / name).images.shape == (60, 3, 12, 12), name
    assert (tmp_path / "results/figures/knee_alpha.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "results/figures/knee_samples.png").stat().st_size > 0
