"""Rule mnist_real: real MNIST digits into the image-set contract."""

from synthetic_simplicity.data import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.mnist_real(snakemake.output.real, snakemake.params.data, snakemake.params.seed)
