"""benchmarks/gpu_check.py in its CPU mode on the tiny preset: every figure it promises is printed."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_prints_every_figure_on_the_cpu(tmp_path):
    shrink = 'mnist={"variants":[{"name":"main"}],"classifier":{"architectures":["cnn"]}}'
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--device", "cpu", "--workdir", str(tmp_path),
         "--configfile", str(ROOT / "config/test.yaml"), "--set", shrink, "--targets", "results/mnist/alpha_metrics.csv",
         "--cores", "2", "--loop-epochs", "1", "--loop-steps", "2", "--rounds", "1", "--threads", "1",
         "--json", str(tmp_path / "check.json")],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "environment:" in text and "device cpu" in text
    # per stage: jobs' wall time, images/s and peak memory, for the three timed stages
    for stage, work in (("diffusion", "diffusion training"), ("synthesis", "sampling"),
                        ("classifier", "classifier training")):
        row = re.search(rf"^{stage}\s+(\d+)\s+([\d.]+)\s+{work}\s+(\d+)\s+([\d.]+)\s+n/a\s+(\d+)$", text, re.M)
        assert row, f"no {stage} row in\n{text}"
        jobs, wall, images, rate, rss = row.groups()
        assert int(jobs) >= 1 and float(wall) > 0 and int(images) > 0 and float(rate) > 0 and int(rss) > 0
    assert re.search(r"^end to end \(snakemake\): [\d.]+ s$", text, re.M)
    for loop in ("classifier", "diffusion"):
        assert re.search(rf"^{loop}\s+cpu fp32: pipeline [\d.]+ images/s, bare [\d.]+ images/s, ratio [\d.]+ ", text,
                         re.M), text
    assert "metrics identical: yes (" in text  # the same config and seed on the CPU give the same bytes
    assert re.search(r"^warnings about ops without a deterministic kernel: 0$", text, re.M)
    assert re.search(r"^total, set-up included: [\d.]+ min", text, re.M)
    summary = json.loads((tmp_path / "check.json").read_text())
    assert summary["repeat"]["identical"] and summary["repeat"]["files"] >= 7
    assert {r["work"] for r in summary["default_run"]["stages"]} >= {"diffusion training", "sampling",
                                                                     "classifier training"}
