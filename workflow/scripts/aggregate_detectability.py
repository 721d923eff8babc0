"""Rule aggregate_detectability: one tidy table of every variant's detectability numbers."""

from synthetic_simplicity.detectability import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.aggregate_detectability(
        list(snakemake.input.records), snakemake.input.task, snakemake.output.table
    )
