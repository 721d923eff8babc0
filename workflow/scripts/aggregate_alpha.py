"""Rule aggregate_alpha: mean and confidence interval over seeds per alpha, architecture and cell."""

from synthetic_simplicity.evaluation import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.aggregate_alpha(list(snakemake.input.metrics), snakemake.output.table, snakemake.params.ci)
