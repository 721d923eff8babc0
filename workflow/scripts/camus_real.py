"""Rule camus_real: CAMUS 2CH/4CH frames into the image-set contract, split by patient."""

from synthetic_simplicity.data import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.camus_real(snakemake.output.real, snakemake.params.data, snakemake.params.seed)
