"""The Snakemake workflow itself: DAG shape, config errors, lint/format, and a tiny end-to-end run.

Snakemake always runs in a temporary --directory, so nothing is written into the repository.
The console scripts are taken from the interpreter's own bin/ so the tests work in any venv.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
SNAKEFMT = BIN / "snakefmt"
SNAKEFILE = REPO / "Snakefile"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
TEST_CONFIG = REPO / "config" / "test.yaml"
# device=cpu: the byte-for-byte determinism check below is a CPU guarantee; every invocation of the
# tiny run passes the same arguments, so Snakemake never sees a changed parameter.
TINY_ARGS = ["--configfile", str(TEST_CONFIG), "--config", "device=cpu", "--cores", "2"]


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the repo's workflow in ``workdir`` without the workflow profile; stdout+stderr merged."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--directory", str(workdir),
           "--workflow-profile", "none", *args]
    return subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


def job_stats(output: str) -> dict[str, int]:
    """The first 'Job stats:' table of a Snakemake run or dry-run, as {rule: count} (no 'total')."""
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        raise AssertionError(f"no 'Job stats:' table in the output:\n{output[-3000:]}") from None
    stats = {}
    for line in lines[start + 3:]:  # skip the header and the dashes
        m = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if not m:
            break
        stats[m[1]] = int(m[2])
    total = stats.pop("total", None)
    assert total == sum(stats.values()), f"malformed job stats table: {stats}, total {total}"
    return stats


def job_resources(output: str, rule: str) -> dict[str, dict[str, str]]:
    """{wildcards: {"threads": n, resource: value}} of every job of ``rule`` in a dry-run's output."""
    jobs = {}
    for block in re.split(r"^rule ", output, flags=re.M)[1:]:
        if block.startswith(f"{rule}:"):
            fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
            jobs[fields.get("wildcards", "")] = {"threads": fields.get("threads", "1")} | dict(
                item.split("=", 1) for item in fields["resources"].split(", "))
    return jobs


def check(result: subprocess.CompletedProcess, rc: int = 0) -> str:
    assert result.returncode == rc, f"exit {result.returncode}:\n{result.stdout[-5000:]}"
    return result.stdout


# --------------------------------------------------------------------------- DAG (dry-runs)


def test_default_dag(tmp_path):
    """Two sampler variants share one generator: it is trained once, and each variant gets its own
    pools, detectability, 5 alphas x 3 seeds of the CNN, the 3 seeds of an alpha trained in one job."""
    out = check(snakemake(tmp_path, "--configfile", str(DEFAULT_CONFIG), "-n"))
    stats = job_stats(out)
    for rule, n in {"train_diffusion": 1, "sample_synthetic": 2, "detectability": 2, "task_reference": 1,
                    "train_classifier_mnist": 10, "assemble_alpha": 30, "evaluate_run": 30, "aggregate_alpha": 1,
                    "aggregate_detectability": 1, "shortcut_summary": 1, "figure_alpha": 1, "figure_samples": 1,
                    "figure_fidelity": 1, "figure_fingerprints": 1, "all": 1}.items():
        assert stats.get(rule) == n, f"{rule}: {stats.get(rule)} jobs, expected {n} ({stats})"
    assert not (tmp_path / "results").exists()


def test_budget_variants_share_one_training_run(tmp_path):
    override = tmp_path / "variants.yaml"
    override.write_text(yaml.safe_dump({"mnist": {"variants": [
        {"name": "short", "steps": 200}, {"name": "long", "steps": 600},
        {"name": "long_ddim", "steps": 600, "sampler": "ddim", "sampling_steps": 20}]}}))
    workdir = tmp_path / "run"
    workdir.mkdir()
    out = check(snakemake(workdir, "--configfile", str(DEFAULT_CONFIG), str(override), "-n", "-p"))
    stats = job_stats(out)
    assert stats["train_diffusion"] == 1 and stats["sample_synthetic"] == 3, stats


def test_single_figure_target(tmp_path):
    # The target goes first: --configfile takes any number of values.
    out = check(snakemake(tmp_path, "results/figures/mnist_alpha.pdf", "--configfile", str(DEFAULT_CONFIG), "-n"))
    stats = job_stats(out)
    assert stats["figure_alpha"] == 1 and stats["train_classifier_mnist"] == 10
    assert "figure_samples" not in stats and "all" not in stats


@pytest.mark.parametrize("unit, runs_per_job", [("one", 1), ("seeds", 3), ("sweep", 15)])
def test_runs_per_job_groups_the_runs_into_jobs(tmp_path, unit, runs_per_job):
    """Every run of the default sweep is an output of exactly one job, whatever the grouping; a job's
    time limit covers its runs."""
    override = f'mnist={{"classifier":{{"runs_per_job":"{unit}"}}}}'
    out = check(snakemake(tmp_path, "--configfile", str(DEFAULT_CONFIG), "-n", "--config", override))
    stats = job_stats(out)
    assert stats["train_classifier_mnist"] == 30 // runs_per_job and stats["evaluate_run"] == 30
    jobs = re.findall(r"rule train_classifier_mnist:\n    input: .*\n    output: (.*)\n(?:.*\n)*?"
                      r"    resources: .*runtime=(\d+)", out)
    models = [path for outputs, _ in jobs for path in outputs.split(", ") if path.endswith("model.pt")]
    assert len(models) == len(set(models)) == 30
    assert {len([p for p in outputs.split(", ") if p.endswith("model.pt")]) for outputs, _ in jobs} == {runs_per_job}
    assert {int(runtime) for _, runtime in jobs} == {60 * runs_per_job}


@pytest.mark.parametrize("override, key", [
    ({"mnist": {"assembly": {"alphas": [0, 1.5]}}}, "mnist.assembly.alphas"),
    ({"mnist": {"data": {"digits": [2, 12]}}}, "mnist.data.digits"),
    ({"mnist": {"diffusion": {"stepz": 3}}}, "stepz"),
    ({"mnist": {"diffusion": {"steps": "many"}}}, "mnist.diffusion.steps"),
    ({"mnist": {"classifier": {"architectures": ["vgg"]}}}, "mnist.classifier.architectures"),
    ({"device": "gpu"}, "device"),
    ({"mnist": {"diffusion": {"gpus": 3}}}, "mnist.diffusion.batch_size"),
], ids=["alpha-range", "digit-range", "unknown-key", "wrong-type", "bad-enum", "device", "gpus-batch"])
def test_config_error_names_key(tmp_path, override, key):
    override_file = tmp_path / "override.yaml"
    override_file.write_text(yaml.safe_dump(override))
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = snakemake(workdir, "--configfile", str(DEFAULT_CONFIG), str(override_file), "-n")
    assert result.returncode != 0, result.stdout
    errors = [line for line in result.stdout.splitlines() if line.startswith("ConfigError")]
    assert len(errors) == 1, result.stdout
    assert key in result.stdout and "see config/README.md" in result.stdout, result.stdout
    assert "Job stats" not in result.stdout and "Building DAG" not in result.stdout
    assert not (workdir / "results").exists()


def test_lint(tmp_path):
    out = check(snakemake(tmp_path, "--configfile", str(DEFAULT_CONFIG), "--lint"))
    assert "good condition" in out


def test_snakefmt():
    result = subprocess.run([str(SNAKEFMT), "--check", "Snakefile", "workflow/"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, f"run `snakefmt Snakefile workflow/`:\n{result.stdout}"


# --------------------------------------------------------------------------- tiny end-to-end run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny preset, run once: (workdir, output, validated config)."""
    from synthetic_simplicity.core.config import validate_config

    workdir = tmp_path_factory.mktemp("tiny")
    out = check(snakemake(workdir, *TINY_ARGS))
    cfg = validate_config(yaml.safe_load(TEST_CONFIG.read_text()) | {"device": "cpu"},
                          REPO / "workflow/schemas/config.schema.yaml")
    return workdir, out, cfg


def alpha_tag(alpha) -> str:
    return f"{alpha:g}"


def run_dirs(workdir: Path, cfg: dict) -> list[Path]:
    m = cfg["mnist"]
    return [workdir / f"results/mnist/variants/{v['name']}/runs/erm/{arch}/alpha{alpha_tag(a)}_seed{s}"
            for v in m["variants"] for arch in v["architectures"] for a in m["assembly"]["alphas"]
            for s in m["classifier"]["seeds"]]


@pytest.fixture(scope="module")
def noop(tiny):
    """A second invocation right after the first."""
    workdir, _, _ = tiny
    return check(snakemake(workdir, *TINY_ARGS))


@pytest.fixture(scope="module")
def rerun(tiny, noop):
    """Delete one run directory and one predictions.csv; dry-run, then rebuild them.

    Returns the dry-run's job stats and output, plus copies of the deleted run's files.
    """
    workdir, _, _ = tiny
    wiped = workdir / "results/mnist/variants/main/runs/erm/cnn/alpha0.5_seed0"
    lost = workdir / "results/mnist/variants/main/runs/erm/resnet18/alpha1_seed0/predictions.csv"
    saved = workdir.parent / "saved_run"
    shutil.copytree(wiped, saved, dirs_exist_ok=True)
    shutil.rmtree(wiped)
    lost.unlink()
    # Snakemake does not regenerate a missing intermediate file while everything downstream of it is
    # present and newer, so the lost files are named as targets next to the default target.
    targets = ["all", str(lost.relative_to(workdir)), str((wiped / "predictions.csv").relative_to(workdir))]
    dry = check(snakemake(workdir, *targets, *TINY_ARGS, "-n"))
    out = check(snakemake(workdir, *targets, *TINY_ARGS))
    return {"stats": job_stats(dry), "dry": dry, "out": out, "wiped": wiped, "lost": lost, "saved": saved}


@pytest.mark.slow
def test_tiny_outputs(tiny):
    workdir, out, cfg = tiny
    figures = workdir / "results/figures"
    for name in ("mnist_alpha.pdf", "mnist_fidelity.pdf", "mnist_fingerprints.pdf"):
        assert (figures / name).read_bytes()[:4] == b"%PDF", name
    from PIL import Image

    with Image.open(figures / "mnist_samples.png") as im:
        im.verify()
    with Image.open(figures / "mnist_samples.png") as im:
        assert im.size[0] > 50 and im.size[1] > 50

    # The partial file is only for resuming; a finished job renames it into place.
    assert not list((workdir / "results/mnist").glob("*.partial"))

    table = pd.read_csv(workdir / "results/mnist/alpha_metrics.csv")
    m = cfg["mnist"]
    cells = table[table["metric"].str.startswith("acc_cell:")]
    for v in m["variants"]:
        for arch in v["architectures"]:
            for alpha in m["assembly"]["alphas"]:
                rows = cells[(cells["variant"] == v["name"]) & (cells["architecture"] == arch)
                             & (cells["alpha"] == float(alpha))]
                assert rows["cell"].nunique() == 4, f"{v['name']} {arch} alpha {alpha}: {rows}"
                assert (rows["n_seeds"] == len(m["classifier"]["seeds"])).all()
                assert rows["mean"].between(0, 1).all()
    assert set(zip(table["variant"], table["architecture"])) == {("main", "cnn"), ("main", "resnet18"),
                                                                 ("early", "cnn")}
    assert sorted(set(table["alpha"])) == [0.0, 0.5, 1.0]


@pytest.mark.slow
def test_tiny_detectability_targets(tiny):
    """Every variant has its detectability record and fingerprints; the summary has a row per variant and
    architecture; the early variant's pool comes from the step-2 snapshot of the one training run."""
    import numpy as np
    import torch

    from synthetic_simplicity.core.imageset import read_imageset

    workdir, _, cfg = tiny
    results = workdir / "results/mnist"
    table = pd.read_csv(results / "detectability.csv")
    assert set(table["variant"]) == {"main", "early"}
    c2st = table[(table["metric"] == "c2st_auroc") & (table["group"] == "pooled")]
    assert len(c2st) == 2 and (c2st["ci_low"] <= c2st["value"]).all() and (c2st["value"] <= c2st["ci_high"]).all()
    assert {"frechet", "frechet_real_floor", "background_level_synthetic", "high_frequency_share_real",
            "task_auroc"} <= set(table["metric"])
    summary = pd.read_csv(results / "shortcut_summary.csv")
    assert set(zip(summary["variant"], summary["architecture"])) == {("main", "cnn"), ("main", "resnet18"),
                                                                     ("early", "cnn")}
    assert summary["mismatched_acc"].between(0, 1).all() and summary["c2st_auroc"].between(0, 1).all()
    with np.load(results / "variants/early/fingerprints.npz") as npz:
        assert {"radius", "0/real/spectrum", "1/synthetic/mean_image"} <= set(npz.files)
    bundle = torch.load(results / "diffusion/model.pt", weights_only=True)
    assert set(bundle["snapshots"]) == {"2"} and bundle["stats"]["steps"] == 4
    early = read_imageset(results / "variants/early/synthetic.h5", images=False)
    main = read_imageset(results / "variants/main/synthetic.h5", images=False)
    assert early.provenance["generator_steps"] == 2 and main.provenance["generator_steps"] == 4
    assert np.array_equal(early.seed, main.seed)  # one noise per row in every variant


@pytest.mark.slow
def test_tiny_run_shows_the_shortcut(tiny):
    """Study A's shape, cheaply: a 4-step generator makes noise, trivially told from real digits, so at
    alpha 0 and 1 the small CNN learns the source. It must fail the two cells whose class/source pairing
    it never saw and pass the two it did."""
    workdir, _, _ = tiny
    table = pd.read_csv(workdir / "results/mnist/alpha_metrics.csv")
    seen = {1.0: ("2·real", "4·synthetic"), 0.0: ("2·synthetic", "4·real")}
    for variant in ("main", "early"):
        cnn = table[(table["variant"] == variant) & (table["architecture"] == "cnn")
                    & table["metric"].str.startswith("acc_cell:")]
        acc = {(row.alpha, row.cell): row["mean"] for _, row in cnn.iterrows()}
        for alpha, matched in seen.items():
            mismatched = [c for c in ("2·real", "2·synthetic", "4·real", "4·synthetic") if c not in matched]
            assert all(acc[(alpha, c)] >= 0.8 for c in matched), (variant, alpha, acc)
            assert all(acc[(alpha, c)] <= 0.2 for c in mismatched), (variant, alpha, acc)


@pytest.mark.slow
def test_tiny_metrics_match_test_manifest(tiny):
    from synthetic_simplicity.assembly.manifest import read_manifest
    from synthetic_simplicity.core.imageset import SPLITS, read_imageset

    workdir, _, cfg = tiny
    manifest = read_manifest(workdir / "results/mnist/variants/main/manifests/test.h5")
    expected = {f"count_cell:{k}": v for k, v in manifest.attrs["counts"].items()}
    assert len(expected) == 4 and min(expected.values()) > 0
    # Every real test image is in the test set; the synthetic test pool is as large as the real one.
    real = read_imageset(workdir / "results/mnist/real.h5")
    for k, name in enumerate(real.class_names):
        n_real = int(((real.split == SPLITS["test"]) & (real.label == k)).sum())
        assert expected[f"count_cell:{name}·real"] == n_real
        assert expected[f"count_cell:{name}·synthetic"] == n_real
    dirs = [d for d in run_dirs(workdir, cfg) if d.parts[-5] == "main"]
    assert len(dirs) == 6
    for d in dirs:
        record = json.loads((d / "metrics.json").read_text())
        counts = {k: v for k, v in record.items() if k.startswith("count_cell:")}
        assert counts == expected, d
        assert record["architecture"] == d.parent.name
        assert 0 <= record["acc_avg"] <= 1 and 0 <= record["acc_wg"] <= record["acc_avg"]


@pytest.mark.slow
def test_tiny_rule_logs(tiny):
    workdir, _, cfg = tiny
    m = cfg["mnist"]
    logs = ["data/mnist_real.log", "diffusion/mnist.log", "evaluation/mnist_aggregate.log",
            "detectability/mnist_task.log", "detectability/mnist_aggregate.log", "detectability/mnist_summary.log",
            "figures/mnist_alpha.log", "figures/mnist_samples.log", "figures/mnist_fidelity.log",
            "figures/mnist_fingerprints.log"]
    for v in m["variants"]:
        name = v["name"]
        logs += [f"synthesis/mnist_{name}.log", f"assembly/mnist_{name}_test.log", f"detectability/mnist_{name}.log"]
        for a in m["assembly"]["alphas"]:
            for s in m["classifier"]["seeds"]:
                logs.append(f"assembly/mnist_{name}_alpha{alpha_tag(a)}_seed{s}.log")
                for arch in v["architectures"]:
                    logs.append(f"evaluation/mnist_{name}_erm_{arch}_alpha{alpha_tag(a)}_seed{s}.log")
            # One classifier job per alpha trains its seeds (classifier.runs_per_job: seeds).
            logs += [f"classifier/mnist_{name}_erm_{arch}_alpha{alpha_tag(a)}.log" for arch in v["architectures"]]
    missing = [p for p in logs if not (workdir / "logs" / p).is_file()]
    assert not missing, f"missing logs: {missing}"
    on_disk = {str(p.relative_to(workdir / "logs")) for p in (workdir / "logs").rglob("*.log")}
    assert on_disk == set(logs)


@pytest.mark.slow
def test_every_torch_file_loads_without_running_code(tiny):
    """model.pt of the generator and of every classifier, and the task reference, load with
    weights_only=True (no pickle code); no checkpoint of a finished job is left."""
    import torch

    workdir, _, cfg = tiny
    files = sorted((workdir / "results").rglob("*.pt"))
    assert {p.name for p in files} == {"model.pt", "task_reference.pt"}
    assert len(files) == 2 + len(run_dirs(workdir, cfg))
    for path in files:
        assert isinstance(torch.load(path, weights_only=True), dict), path


@pytest.mark.slow
def test_tiny_second_invocation_does_nothing(noop):
    assert "Nothing to be done" in noop
    assert "Job stats" not in noop


@pytest.mark.slow
def test_tiny_rerun_only_what_was_lost(rerun):
    stats = rerun["stats"]
    assert stats == {"train_classifier_mnist": 2, "evaluate_run": 2, "aggregate_alpha": 1, "figure_alpha": 1,
                     "shortcut_summary": 1, "figure_fidelity": 1, "all": 1}, rerun["dry"]
    planned = set(re.findall(r"output: (results/mnist/variants/\S+)/model\.pt", rerun["dry"]))
    assert planned == {"results/mnist/variants/main/runs/erm/cnn/alpha0.5_seed0",
                       "results/mnist/variants/main/runs/erm/resnet18/alpha1_seed0"}
    assert job_stats(rerun["out"]) == stats
    assert rerun["lost"].is_file()


@pytest.mark.slow
def test_tiny_rerun_is_deterministic(rerun):
    for name in ("metrics.json", "predictions.csv"):
        before = (rerun["saved"] / name).read_bytes()
        after = (rerun["wiped"] / name).read_bytes()
        assert after == before, f"{name} differs after rerunning with the same config and seed"


# --------------------------------------------------------------------------- kill and resume


LONGER_DIFFUSION = {"mnist": {"diffusion": {"steps": 300, "checkpoint_every": 20}}}
DIFFUSION_MODEL = "results/mnist/diffusion/model.pt"


def diffusion_args(tmp_path, extra: dict | None = None) -> list[str]:
    override = tmp_path / "longer.yaml"
    override.write_text(yaml.safe_dump(LONGER_DIFFUSION))
    files = [str(TEST_CONFIG), str(override)]
    if extra:
        (tmp_path / "extra.yaml").write_text(yaml.safe_dump(extra))
        files.append(str(tmp_path / "extra.yaml"))
    return [DIFFUSION_MODEL, "--configfile", *files, "--config", "device=cpu", "--cores", "1"]


def kill_at_first_checkpoint(workdir: Path, args: list[str]) -> int:
    """Start the diffusion job, SIGKILL Snakemake's whole process group once a checkpoint exists, and
    remove the lock the kill leaves (as users do); returns the step of the newest checkpoint."""
    import signal
    import time

    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--directory", str(workdir), "--workflow-profile", "none", *args]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpts = workdir / "results/mnist/diffusion/checkpoints"
    deadline = time.monotonic() + 300
    while not list(ckpts.glob("step_*.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(ckpts.glob("step_*.pt"))
    assert done, "no checkpoint was written before the deadline"
    assert not (workdir / DIFFUSION_MODEL).exists(), "the run finished before it could be killed; raise steps"
    check(snakemake(workdir, *args, "--unlock"))
    return int(done[-1].stem.split("_")[1])


@pytest.mark.slow
def test_killed_diffusion_job_resumes_from_its_checkpoint(tmp_path):
    """SIGKILL the whole Snakemake process group mid-training; the rerun continues from the newest
    checkpoint and ends with exactly the weights of an uninterrupted run."""
    import torch

    args = diffusion_args(tmp_path)
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    killed.mkdir()
    straight.mkdir()
    killed_at = kill_at_first_checkpoint(killed, args)
    check(snakemake(killed, *args, "--rerun-incomplete"))
    log = (killed / "logs/diffusion/mnist.log").read_text()
    resumed = torch.load(killed / DIFFUSION_MODEL, weights_only=True)["stats"]["resumed_from"]
    assert resumed >= killed_at > 0, log[-2000:]
    assert "resuming from" in log
    # The finished job's checkpoints are gone; model.pt supersedes them.
    assert not (killed / "results/mnist/diffusion/checkpoints").exists()

    check(snakemake(straight, *args))
    a = torch.load(killed / DIFFUSION_MODEL, weights_only=True)["state_dict"]
    b = torch.load(straight / DIFFUSION_MODEL, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_other_digits_never_resume_the_old_generator(tmp_path):
    """The reported bug: a killed 2-vs-4 generator left checkpoints, then the digits changed to 3 vs 8
    in the same directory (same diffusion section and row count). The new generator trains from step 0."""
    import torch

    workdir = tmp_path / "run"
    workdir.mkdir()
    kill_at_first_checkpoint(workdir, diffusion_args(tmp_path))
    args = diffusion_args(tmp_path, {"mnist": {"data": {"digits": [3, 8]}}})
    check(snakemake(workdir, *args, "--rerun-incomplete"))
    log = (workdir / "logs/diffusion/mnist.log").read_text()
    bundle = torch.load(workdir / DIFFUSION_MODEL, weights_only=True)
    assert "resuming" not in log and "other training images" in log, log[-2000:]
    assert bundle["stats"]["resumed_from"] == 0 and bundle["stats"]["steps"] == 300
    assert bundle["class_names"] == ["3", "8"]


def run_files(workdir: Path, run: str) -> dict:
    """A run's metrics and predictions as bytes, and its model's weights, history and counts."""
    import torch

    d = workdir / "results/mnist/variants/main/runs/erm/cnn" / run
    bundle = torch.load(d / "model.pt", weights_only=True)
    return {"metrics": (d / "metrics.json").read_bytes(), "predictions": (d / "predictions.csv").read_bytes(),
            "weights": {k: v.numpy().tobytes() for k, v in bundle["state_dict"].items()},
            "history": bundle["history"], "counts": bundle["train_counts"]}


@pytest.mark.slow
def test_runs_of_a_killed_job_resume_and_match_runs_of_their_own(tiny, tmp_path):
    """Two seeds of one alpha in one job (runs_per_job: seeds), SIGKILLed while the second run trains:
    the rerun reloads the finished run's last checkpoint and resumes the other, and both end exactly as
    when each run is a job of its own (runs_per_job: one), which is how runs were trained before."""
    import signal
    import time

    runs = ["alpha0.5_seed0", "alpha0.5_seed1"]
    targets = [f"results/mnist/variants/main/runs/erm/cnn/{r}/metrics.json" for r in runs]
    results = {}
    for unit in ("seeds", "one"):
        workdir = tmp_path / unit
        shutil.copytree(tiny[0], workdir)  # the tiny run's real images, pools and manifests
        override = tmp_path / f"{unit}.yaml"
        override.write_text(yaml.safe_dump({"mnist": {"classifier": {"seeds": [0, 1], "epochs": 300,
                                                                      "runs_per_job": unit}}}))
        args = [*targets, "--configfile", str(TEST_CONFIG), str(override), "--config", "device=cpu", "--cores", "1"]
        if unit == "seeds":
            env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
            proc = subprocess.Popen([str(SNAKEMAKE), "-s", str(SNAKEFILE), "--directory", str(workdir),
                                     "--workflow-profile", "none", *args], cwd=workdir, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            run_dir = workdir / "results/mnist/variants/main/runs/erm/cnn"
            deadline = time.monotonic() + 300
            while not ((run_dir / runs[0] / "model.pt").exists() and (run_dir / runs[1] / "checkpoint.pt").exists()) \
                    and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            assert not (run_dir / runs[1] / "model.pt").exists(), "the job finished before it was killed; raise epochs"
            assert (run_dir / runs[0] / "checkpoint.pt").exists()  # kept until every run of the job is saved
            check(snakemake(workdir, *args, "--unlock"))
            check(snakemake(workdir, *args, "--rerun-incomplete"))
            log = (workdir / "logs/classifier/mnist_main_erm_cnn_alpha0.5.log").read_text()
            assert f"{runs[0]}/checkpoint.pt at epoch 300" in log, log[-3000:]
            resumed = re.search(rf"{runs[1]}/checkpoint.pt at epoch (\d+)", log)
            assert resumed and 0 < int(resumed[1]) < 300, log[-3000:]
            assert not list(run_dir.glob("*/checkpoint.pt"))
        else:
            out = check(snakemake(workdir, *args))
            assert job_stats(out)["train_classifier_mnist"] == 2
        results[unit] = [run_files(workdir, r) for r in runs]
    assert results["seeds"] == results["one"]


# --------------------------------------------------------------------------- job errors


def test_job_log_shows_an_expected_failure_alone_and_a_bug_with_its_traceback(tmp_path, capsys):
    from synthetic_simplicity.core.errors import PipelineError
    from synthetic_simplicity.core.joblog import job_log

    for error, traceback_expected in ((PipelineError("data.csv: column 'Path' is missing; add it"), False),
                                      (ZeroDivisionError("division by zero"), True)):
        log = tmp_path / f"{type(error).__name__}.log"
        with pytest.raises(SystemExit) as stop:
            with job_log(str(log)):
                raise error
        assert stop.value.code == 1
        screen, text = capsys.readouterr().err, log.read_text()
        assert ("Traceback" in screen) is traceback_expected and ("Traceback" in text) is traceback_expected
        assert screen.strip().splitlines()[-1].endswith(str(error))
        assert text.strip().splitlines()[-1].endswith(str(error))
        if not traceback_expected:
            assert screen.strip() == str(error)
        # The process ends after its job: the interpreter's exit skips a sweep of every object so far.
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
