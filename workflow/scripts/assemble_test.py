"""Rule assemble_test: every real and synthetic test image, four cells."""

from synthetic_simplicity.assembly import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.assemble_test(snakemake.input.real, snakemake.input.synthetic, snakemake.output.manifest)
