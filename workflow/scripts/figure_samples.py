"""Rule figure_samples: real images and every variant's synthetic ones, per class."""

from synthetic_simplicity.figures import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.figure_samples(
        snakemake.input.real,
        dict(zip(snakemake.params.variants, snakemake.input.synthetic)),
        snakemake.output.figure,
        snakemake.params.seed,
    )
