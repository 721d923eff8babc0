"""Rule sample_synthetic: synthetic training and test pools, one seed per image."""

from synthetic_simplicity import stages
from synthetic_simplicity.joblog import start_log
from synthetic_simplicity.seeds import derive_seed

start_log(snakemake.log[0])
stages.sample_synthetic(
    snakemake.input.real,
    snakemake.input.model,
    snakemake.output.synthetic,
    snakemake.params.synthesis,
    derive_seed(snakemake.params.seed, snakemake.wildcards.dataset, "synthesis"),
    snakemake.params.device,
    threads=snakemake.threads,
)
