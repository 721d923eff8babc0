"""Rule shortcut_summary: per variant and architecture, detectability beside the alpha sweep's shortcut."""

from synthetic_simplicity.detectability import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.shortcut_summary(
        list(snakemake.input.metrics),
        snakemake.input.detectability,
        snakemake.input.real,
        snakemake.output.table,
        snakemake.params.ci,
    )
