"""Rule own_real: the user's real images of two classes into the image-set contract."""

from synthetic_simplicity.data import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.own_real(snakemake.output.real, snakemake.wildcards.dataset, snakemake.params.data, snakemake.params.seed,
                  threads=snakemake.threads)
