"""The scale estimate (benchmarks/scale_estimate.py) costs the jobs the DAG really plans."""

from __future__ import annotations

import argparse
import importlib.util

from test_workflow import DEFAULT_CONFIG, REPO, check, job_stats, snakemake


def scale_estimate():
    spec = importlib.util.spec_from_file_location("scale_estimate", REPO / "benchmarks/scale_estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_mnist_estimate_counts_the_planned_jobs(tmp_path):
    """config/mnist_gpu.yaml under each grouping: as many classifier jobs and runs, sampling and
    detectability jobs as Snakemake plans for it."""
    est = scale_estimate()
    args = argparse.Namespace(mnist_per_digit=500)
    for unit in ("seeds", "sweep"):
        p = est.protocol("mnist", est.protocol_config("mnist", unit), args)
        override = f'mnist={{"classifier":{{"runs_per_job":"{unit}"}}}}'
        stats = job_stats(check(snakemake(tmp_path, "-n", "--configfile", str(DEFAULT_CONFIG),
                                          str(REPO / "config/mnist_gpu.yaml"), "--config", override)))
        assert len(p["stages"]["classifiers"]) == stats["train_classifier_mnist"], (unit, stats)
        assert p["runs"] == stats["evaluate_run"] == 50
        assert len(p["stages"]["sampling"]) == stats["sample_synthetic"]
        assert len(p["stages"]["detectability"]) == stats["detectability"] + stats["task_reference"]
