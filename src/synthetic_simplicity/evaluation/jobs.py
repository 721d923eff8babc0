"""Entry points of the evaluation rules (workflow/rules/evaluation.smk): metrics per run and tables over runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..core.atomic import write_csv, write_json
from ..core.imageset import read_header
from ..core.seeds import derive_seed

# Study A


def evaluate_run(predictions_path: str, real_path: str, out_path: str, identity: dict) -> dict:
    from .cells import run_metrics

    _, class_names = read_header(real_path)
    predictions = pd.read_csv(predictions_path)
    record = identity | run_metrics(predictions, class_names, identity.get("alpha"))
    if predictions.empty:  # an arm undefined at this alpha (its training log says why)
        record["skipped"] = True
    write_json(out_path, record)
    return record


def aggregate_alpha(metrics_paths: list[str], out_path: str, ci: float) -> pd.DataFrame:
    from .cells import aggregate, ci_method

    records = [json.loads(Path(p).read_text()) for p in metrics_paths]
    table = aggregate(records, ci)
    table["ci_method"] = ci_method(ci)  # the interval is named in the table itself
    write_csv(out_path, table)
    return table


# Study B


def evaluate_supplementation_run(predictions_path: str, out_path: str, identity: dict) -> dict:
    """Per-label and macro AUROC of one run on every test set (no resampling; see the aggregate)."""
    from .auroc import run_auroc

    predictions = pd.read_csv(predictions_path)
    labels = [c[2:] for c in predictions.columns if c.startswith("y:")]
    record = dict(identity)
    for test_set, frame in predictions.groupby("test_set", sort=False):
        record |= {f"{test_set}/{k}": v for k, v in run_auroc(frame, labels).items()}
    write_json(out_path, record)
    return record


def aggregate_supplementation(predictions_paths: list[str], runs: list[dict], out_path: str, evaluation: dict,
                              seed: int) -> pd.DataFrame:
    """Table of AUROC with patient-bootstrap CIs and p-values against real only (k = 0); ``evaluation``
    is the study's evaluation section (ci, bootstrap, point, p_adjust, min_positives)."""
    from ..assembly.supplementation import protocol_name
    from .auroc import supplementation_table

    table_runs, labels = [], None
    for path, run in zip(predictions_paths, runs):
        predictions = pd.read_csv(path, dtype={"subject": str})
        labels = [c[2:] for c in predictions.columns if c.startswith("y:")]
        for test_set, frame in predictions.groupby("test_set", sort=False):
            table_runs.append({"arch": run["arch"], "protocol": protocol_name(run["protocol"]), "k": run["k"],
                               "seed": run["seed"], "test_set": test_set, "frame": frame.reset_index(drop=True)})
    table = supplementation_table(table_runs, labels, evaluation["bootstrap"], evaluation["ci"],
                                  derive_seed(seed, "bootstrap"), point=evaluation["point"],
                                  p_adjust=evaluation["p_adjust"], min_positives=evaluation["min_positives"])
    write_csv(out_path, table)
    return table
