# Config validation, wildcard constraints, input functions and target lists.
from pathlib import Path

from synthetic_simplicity.config import validate_config

_validated = validate_config(
    config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
)
config.clear()
config.update(_validated)


# Cheap jobs run on the submit host on a cluster instead of waiting in the queue.
localrules:
    all,
    evaluate_run,
    aggregate_alpha,
    figure_alpha,
    figure_samples,
    figure_architectures,


wildcard_constraints:
    dataset="mnist|camus",
    alpha=r"[0-9]+(\.[0-9]+)?",
    seed=r"[0-9]+",
    arch="cnn|resnet18",


def section(wildcards, name):
    """One stage's settings for the dataset in the wildcards."""
    return config[wildcards.dataset][name]


def alpha_tag(alpha):
    """How an alpha appears in paths: 0, 0.25, 1."""
    return f"{alpha:g}"


def run_dirs(dataset):
    cfg = config[dataset]
    return [
        f"results/{dataset}/runs/{arch}/alpha{alpha_tag(a)}_seed{s}"
        for arch in cfg["classifier"]["architectures"]
        for a in cfg["assembly"]["alphas"]
        for s in cfg["classifier"]["seeds"]
    ]


def camus_root(wildcards):
    """Checked while the DAG is built, so a missing CAMUS download stops the run before any job."""
    from synthetic_simplicity.camus import detect_layout

    detect_layout(config["camus"]["data"]["root"])
    return []


def run_metrics(wildcards):
    return [f"{d}/metrics.json" for d in run_dirs(wildcards.dataset)]


def all_targets():
    targets = [
        f"results/figures/{d}_{kind}"
        for d in config["datasets"]
        for kind in ("alpha.pdf", "samples.png")
    ] + [f"results/{d}/alpha_metrics.csv" for d in config["datasets"]]
    if len(config["datasets"]) > 1:
        targets.append("results/figures/architectures_alpha.pdf")
    return targets
