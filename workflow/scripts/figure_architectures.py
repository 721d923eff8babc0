"""Rule figure_architectures: every enabled dataset x architecture, side by side."""

from synthetic_simplicity.figures import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.figure_architectures(
        list(snakemake.input.tables), list(snakemake.input.reals), snakemake.output.figure, snakemake.params.ci
    )
