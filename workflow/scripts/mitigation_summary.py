"""Rule mitigation_summary: every arm's worst-cell, mismatched-cell and real accuracy beside ERM's."""

from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.mitigation import jobs

with job_log(snakemake.log[0]):
    jobs.mitigation_summary(
        list(snakemake.input.metrics),
        snakemake.output.table,
        snakemake.params.ci,
        snakemake.params.methods,
    )
