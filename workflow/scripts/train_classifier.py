"""Rule train_classifier_<dataset>: the classifier runs of one job (classifier.runs_per_job) in one process,
each with its own model, per-image test predictions and derived seed."""

from synthetic_simplicity.classifier import jobs
from synthetic_simplicity.core.joblog import job_log

w = snakemake.wildcards
# In the same order as the rule's outputs (workflow/rules/common.smk: job_paths).
seeds = jobs.job_seeds(snakemake.config[w.dataset], snakemake.params.seed, w.dataset, w.arch, w.get("alpha"),
                       w.get("seed"))
runs = [
    jobs.Run(*paths)
    for paths in zip(snakemake.input.train, snakemake.input.val, snakemake.output.model, snakemake.output.predictions,
                     seeds, strict=True)
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
