"""The tiny preset on a real single-node SLURM, through profiles/slurm: GPU requests, per-job SLURM
logs, and a training job cancelled mid-way that resumes from its checkpoint.

Opt-in (it installs system packages and starts daemons as root): SS_SLURM_TEST=1. CI sets it and
runs this module last, under `timeout -s KILL`, then `cluster.sh stop` again in case the kill
came first. The cluster's /etc/slurm/slurm.conf is removed when the module ends, so later Snakemake
calls do not wait ~9 s for a controller that is gone (the plugin asks `scontrol` at every start).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEFILE = REPO / "Snakefile"
TEST_CONFIG = REPO / "config" / "test.yaml"
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
GPU_RULES = {"train_diffusion", "sample_synthetic", "train_classifier_mnist", "task_reference", "detectability"}
CPU_RULES = {"mnist_real", "assemble_alpha", "assemble_test"}  # submitted, no GPU
LOCAL_RULES = {"evaluate_run", "aggregate_alpha", "figure_alpha", "figure_samples", "aggregate_detectability",
               "shortcut_summary", "figure_fidelity", "figure_fingerprints"}

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def sh(*cmd, env=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running single-node SLURM; yields the environment its clients need. Stopped by PID at the end."""
    if os.environ.get("SS_SLURM_TEST") != "1":
        pytest.skip("set SS_SLURM_TEST=1 to install SLURM (apt, root) and run the tiny preset on it")
    if os.geteuid() != 0:
        pytest.skip("a local SLURM needs root (apt packages, slurmd)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed in this venv")
    installed = sh("bash", CLUSTER, "install", timeout=660)
    if installed.returncode != 0:
        pytest.skip(f"cannot install the SLURM packages on this machine: {installed.stdout[-500:]}")

    state = Path(os.environ.get("SLURM_TEST_DIR") or tmp_path_factory.mktemp("slurm"))
    env = dict(os.environ, SLURM_TEST_DIR=str(state), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    try:
        started = sh("bash", CLUSTER, "start", env=env, timeout=120)
        assert started.returncode == 0, started.stdout
        yield env
    finally:
        stopped = sh("bash", CLUSTER, "stop", env=env, timeout=60)
        print(stopped.stdout)
        for name in ("munged", "slurmctld", "slurmd"):
            assert not (state / "run" / f"{name}.pid").exists(), f"{name} still has a PID file"


def scontrol_jobs(env) -> list[dict[str, str]]:
    """Every job slurmctld still holds (MinJobAge keeps finished ones), one dict per job."""
    out = sh("timeout", "20", "scontrol", "-o", "show", "job", env=env).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs.append(fields)
    return jobs


def rule_of(job: dict[str, str]) -> str:
    """The plugin puts rule_<rule> or rule_<rule>_wildcards_<...> into the job comment."""
    m = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", job.get("Comment", ""))
    return m[1] if m else job.get("Comment", "")


def test_tiny_preset_on_slurm(cluster, tmp_path):
    import torch

    env = cluster
    t0 = time.monotonic()
    work = tmp_path / "run"
    work.mkdir()
    # Long enough diffusion training to be cancelled between two checkpoints.
    override = tmp_path / "longer.yaml"
    override.write_text(yaml.safe_dump({"mnist": {"diffusion": {"steps": 300, "checkpoint_every": 20}}}))
    cmd = [
        str(BIN / "snakemake"), "-s", str(SNAKEFILE), "--directory", str(work),
        "--workflow-profile", str(REPO / "profiles" / "slurm"),
        "--configfile", str(TEST_CONFIG), str(override), "--config", "device=cpu",
        # Test-only overrides of the profile for a DB-less 2-core node:
        "--slurm-status-command", "squeue",  # no slurmdbd, so no sacct
        "--slurm-init-seconds-before-status-checks", "2",
        "--jobs", "2", "--local-cores", "1", "--latency-wait", "5",
        "--set-threads", "train_diffusion=1", "sample_synthetic=1",
        "--default-resources", "mem_mb=500", "runtime=10",
    ]
    log = (tmp_path / "snakemake.log").open("w")
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    # If this process is SIGKILLed (CI's timeout), `cluster.sh stop` still finds and stops the run.
    pidfile = Path(env["SLURM_TEST_DIR"]) / "run" / "snakemake.pid"
    pidfile.write_text(str(proc.pid))
    try:
        # Wait for the diffusion job's first checkpoint, then cancel that SLURM job.
        ckpts = work / "results/mnist/diffusion/checkpoints"
        deadline = time.monotonic() + 420
        while not list(ckpts.glob("step_*.pt")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        running = [j for j in scontrol_jobs(env) if rule_of(j) == "train_diffusion" and j["JobState"] == "RUNNING"]
        assert running, f"no running diffusion job:\n{(tmp_path / 'snakemake.log').read_text()[-3000:]}"
        job_id = running[0]["JobId"]
        killed_at = max(int(p.stem.split("_")[1]) for p in ckpts.glob("step_*.pt"))
        sh("timeout", "20", "scancel", job_id, env=env)
        # The rule's retries resubmit it (attempt 2); the run then goes on to the figures.
        rc = proc.wait(timeout=1200)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        pidfile.unlink(missing_ok=True)
        log.close()
    output = (tmp_path / "snakemake.log").read_text()
    wall = time.monotonic() - t0
    print(f"SLURM run: {wall:.0f} s; diffusion job {job_id} cancelled after checkpoint step {killed_at}")
    if rc != 0:  # A user would rerun after a failed run; the test wants the retry to have done it.
        pytest.fail(f"snakemake exit {rc}:\n{output[-5000:]}")

    # The figure, built through SLURM.
    assert (work / "results/figures/mnist_alpha.pdf").stat().st_size > 0
    assert (work / "results/figures/mnist_samples.png").stat().st_size > 0

    # The cancelled training resumed from its checkpoint, not from step 0.
    dlog = (work / "logs/diffusion/mnist.log").read_text()
    stats = torch.load(work / "results/mnist/diffusion/model.pt", weights_only=True)["stats"]
    print(f"diffusion resumed_from={stats['resumed_from']} steps={stats['steps']}")
    assert "resuming from" in dlog, dlog[-2000:]
    assert stats["resumed_from"] >= killed_at > 0 and stats["steps"] == 300, stats

    # What SLURM saw: every job of this run, with its rule in the comment.
    jobs = [j for j in scontrol_jobs(env) if j.get("Comment", "").startswith("rule_")]
    by_rule: dict[str, list[dict[str, str]]] = {}
    for j in jobs:
        by_rule.setdefault(rule_of(j), []).append(j)
    assert set(by_rule) == GPU_RULES | CPU_RULES, sorted(by_rule)  # localrules never reach SLURM
    assert not set(by_rule) & LOCAL_RULES
    for rule, js in by_rule.items():
        for j in js:
            gpu = "gpu:1" in j.get("TresPerJob", "") or "gres/gpu=1" in j.get("TRES", "")
            assert gpu == (rule in GPU_RULES), f"{rule} job {j['JobId']}: TresPerJob={j.get('TresPerJob')}"
    assert len(by_rule["train_classifier_mnist"]) == 9  # main: cnn + resnet18, early: cnn; 3 alphas each
    assert len(by_rule["sample_synthetic"]) == 2 and len(by_rule["detectability"]) == 2
    states = sorted(j["JobState"] for j in by_rule["train_diffusion"])
    assert states == ["CANCELLED", "COMPLETED"], states
    retry = next(j for j in by_rule["train_diffusion"] if j["JobState"] == "COMPLETED")
    assert int(retry["JobId"]) > int(job_id)
    first = next(j for j in by_rule["train_diffusion"] if j["JobState"] == "CANCELLED")
    mem = {k: int(j["MinMemoryNode"].rstrip("M")) for k, j in (("first", first), ("retry", retry))}
    assert mem["retry"] > mem["first"], mem  # mem_mb = 4000 * attempt
    print(f"diffusion --mem per attempt: {mem}")

    # The plugin's per-job SLURM logs, named by job id.
    logs = {p.stem for p in (work / ".snakemake/slurm_logs").rglob("*.log")}
    completed = {j["JobId"] for j in jobs if j["JobState"] == "COMPLETED"}
    assert completed <= logs, sorted(completed - logs)

    # A second invocation finds nothing to do.
    again = sh(*cmd, env=env, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout, again.stdout[-3000:]
    print(f"SLURM test wall time: {time.monotonic() - t0:.0f} s")


def test_generator_on_two_gpus_on_slurm(cluster, tmp_path):
    """diffusion.gpus: 2 is one sbatch job with --gpus=2, inside which two training processes (gloo,
    device cpu here) share each step's batch."""
    import torch

    env = cluster
    work = tmp_path / "run"
    work.mkdir()
    cmd = [
        str(BIN / "snakemake"), "results/mnist/diffusion/model.pt", "-s", str(SNAKEFILE), "--directory", str(work),
        "--workflow-profile", str(REPO / "profiles" / "slurm"),
        "--configfile", str(TEST_CONFIG), "--config", "device=cpu", 'mnist={"diffusion": {"gpus": 2}}',
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--jobs", "2", "--local-cores", "1", "--latency-wait", "5",
        "--set-threads", "train_diffusion=2",  # the rule's 4 per GPU do not fit the 2-core test node
        "--default-resources", "mem_mb=500", "runtime=10",
    ]
    done = sh(*cmd, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-5000:]
    jobs = [j for j in scontrol_jobs(env) if rule_of(j) == "train_diffusion" and j.get("WorkDir") == str(work)]
    assert [j["JobState"] for j in jobs] == ["COMPLETED"], jobs
    assert "gpu:2" in jobs[0].get("TresPerJob", ""), jobs[0]
    assert "training on 2 processes" in (work / "logs/diffusion/mnist.log").read_text()
    assert torch.load(work / "results/mnist/diffusion/model.pt", weights_only=True)["stats"]["steps"] == 4
