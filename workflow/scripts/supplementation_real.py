"""Rules supplementation_real / supplementation_external: one site's images into an image set."""

from synthetic_simplicity.data import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    p = snakemake.params
    jobs.supplementation_real(snakemake.output.real, p.site, p.sites[p.site], p.data, p.seed, threads=snakemake.threads,
                              key=f"{snakemake.wildcards.study}.sites.{p.site}")
