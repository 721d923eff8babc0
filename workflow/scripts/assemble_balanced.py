"""Rule assemble_balanced: a held-out set balanced over class x source, for last-layer retraining."""

from synthetic_simplicity.assembly import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.assemble_balanced(
        snakemake.input.real,
        snakemake.input.synthetic,
        snakemake.output.manifest,
        snakemake.params.per_cell,
        snakemake.params.assembly["val_fraction"],
        snakemake.params.seed,
        int(snakemake.wildcards.seed),
    )
