"""Rule train_dfr_<dataset>: the ERM models of one job's runs (classifier.runs_per_job), each with its last
layer refitted on a balanced held-out set, in one process."""

from synthetic_simplicity.classifier.jobs import job_seeds
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.mitigation import jobs

w = snakemake.wildcards
# The ERM runs' seeds, in the same order as the rule's outputs (workflow/rules/common.smk: job_paths).
seeds = job_seeds(snakemake.config[w.dataset], snakemake.params.seed, w.dataset, w.arch, w.get("alpha"), w.get("seed"))
runs = [
    jobs.DfrRun(*paths)
    for paths in zip(snakemake.input.erm, snakemake.input.balanced, snakemake.output.model,
                     snakemake.output.predictions, seeds, strict=True)
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
