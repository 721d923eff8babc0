"""Rule sample_replicas: the synthetic pool of Study B, sampled once up to the largest k."""

from synthetic_simplicity.synthesis import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.sample_replicas(
        snakemake.input.real,
        snakemake.input.model,
        snakemake.output.replicas,
        snakemake.params.synthesis,
        snakemake.params.replicas,
        snakemake.params.seed,
        snakemake.params.device,
        threads=snakemake.threads,
    )
