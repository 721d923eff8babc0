"""Rule figure_fingerprints: power spectra, histograms and mean differences, real vs every variant."""

from synthetic_simplicity.figures import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.figure_fingerprints(
        dict(zip(snakemake.params.variants, snakemake.input.fingerprints)),
        snakemake.input.real,
        snakemake.output.figure,
    )
