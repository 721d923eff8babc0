"""Rule figure_samples: real and synthetic images side by side, per class."""

from synthetic_simplicity.figures import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.figure_samples(snakemake.input.real, snakemake.input.synthetic, snakemake.output.figure, snakemake.params.seed)
