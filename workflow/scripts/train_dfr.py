"""Rule train_dfr_<dataset>: the ERM models of one job's runs (classifier.runs_per_job), each with its last
layer refitted on a balanced held-out set, in one process."""

from synthetic_simplicity.core.config import job_runs
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed
from synthetic_simplicity.mitigation import jobs

w = snakemake.wildcards
# The same list, in the same order, as the rule's outputs (workflow/rules/common.smk: job_paths).
tags = job_runs(snakemake.config[w.dataset], w.get("alpha"), w.get("seed"))
runs = [
    jobs.DfrRun(erm, balanced, model, predictions,
                derive_seed(snakemake.params.seed, w.dataset, "classifier", w.arch, alpha, seed))
    for (alpha, seed), erm, balanced, model, predictions in zip(
        tags, snakemake.input.erm, snakemake.input.balanced, snakemake.output.model, snakemake.output.predictions,
        strict=True)
]
with job_log(snakemake.log[0]):
    jobs.train_dfr(
        snakemake.input.real,
        snakemake.input.synthetic,
        snakemake.input.test,
        runs,
        snakemake.params.classifier,
        snakemake.params.dfr,
        snakemake.params.device,
        threads=snakemake.threads,
    )
