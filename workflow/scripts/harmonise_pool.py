"""Rule harmonise_pool: the synthetic pool with spectrum and histogram matched to the real training split."""

from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.mitigation import jobs

with job_log(snakemake.log[0]):
    jobs.harmonise_pool(
        snakemake.input.real,
        snakemake.input.synthetic,
        snakemake.output.pool,
        snakemake.params.match,
    )
