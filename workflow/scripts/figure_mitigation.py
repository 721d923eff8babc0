"""Rule figure_mitigation: worst-cell, mismatched-cell and real accuracy against alpha, one line per arm."""

from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.figures import jobs

with job_log(snakemake.log[0]):
    jobs.figure_mitigation(
        snakemake.input.table,
        snakemake.input.detectability,
        snakemake.input.real,
        snakemake.output.figure,
        snakemake.params.ci,
        snakemake.params.methods,
        snakemake.params.variants,
    )
