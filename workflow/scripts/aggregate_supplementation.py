"""Rule aggregate_supplementation: AUROC table with bootstrap CIs and p-values against real only."""

from synthetic_simplicity.evaluation import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    p = snakemake.params
    jobs.aggregate_supplementation(snakemake.input.predictions, p.runs, snakemake.output.table, p.evaluation, p.seed)
