"""Rule figure_alpha: accuracy per cell against alpha, one panel per architecture."""

from synthetic_simplicity.figures import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.figure_alpha(
        snakemake.input.table,
        snakemake.input.detectability,
        snakemake.input.real,
        snakemake.output.figure,
        snakemake.params.ci,
    )
