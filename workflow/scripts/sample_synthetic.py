"""Rule sample_synthetic: synthetic training and test pools, one seed per image."""

from synthetic_simplicity.synthesis import jobs
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed

with job_log(snakemake.log[0]):
    jobs.sample_synthetic(
        snakemake.input.real,
        snakemake.input.model,
        snakemake.output.synthetic,
        snakemake.params.synthesis,
        derive_seed(snakemake.params.seed, snakemake.wildcards.dataset, "synthesis"),
        snakemake.params.device,
        threads=snakemake.threads,
        steps=snakemake.params.steps,
    )
