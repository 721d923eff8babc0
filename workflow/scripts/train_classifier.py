"""Rule train_classifier_<dataset>: the classifier runs of one job (classifier.runs_per_job) in one process,
each with its own model, per-image test predictions and derived seed."""

from synthetic_simplicity.classifier import jobs
from synthetic_simplicity.core.config import job_runs
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed

w = snakemake.wildcards
# The same list, in the same order, as the rule's outputs (workflow/rules/common.smk: job_paths).
tags = job_runs(snakemake.config[w.dataset], w.get("alpha"), w.get("seed"))
runs = [
    jobs.Run(train, val, model, predictions,
             derive_seed(snakemake.params.seed, w.dataset, "classifier", w.arch, alpha, seed))
    for (alpha, seed), train, val, model, predictions in zip(
        tags, snakemake.input.train, snakemake.input.val, snakemake.output.model, snakemake.output.predictions,
        strict=True)
]
with job_log(snakemake.log[0]):
    jobs.train_classifiers(
        snakemake.input.real,
        snakemake.input.synthetic,
        snakemake.input.test,
        runs,
        w.arch,
        snakemake.params.classifier,
        f"{w.dataset}.classifier",
        snakemake.params.device,
        method=w.method,
        settings=snakemake.params.settings,
        threads=snakemake.threads,
    )
