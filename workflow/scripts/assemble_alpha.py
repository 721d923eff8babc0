"""Rule assemble_alpha: the training manifest for one alpha and seed."""

from synthetic_simplicity.assembly import jobs
from synthetic_simplicity.core.joblog import start_log

start_log(snakemake.log[0])
jobs.assemble(
    snakemake.input.real,
    snakemake.input.synthetic,
    snakemake.output.manifest,
    float(snakemake.wildcards.alpha),
    snakemake.params.per_class,
    snakemake.params.seed,
    int(snakemake.wildcards.seed),
)
