"""Rule import_synthetic: the user's own synthetic images as a variant's training and test pools."""

from synthetic_simplicity.data import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    p = snakemake.params
    jobs.import_synthetic(snakemake.input.real, snakemake.output.synthetic, snakemake.wildcards.dataset,
                          p.synthetic, p.data, p.assembly, p.seed, threads=snakemake.threads)
