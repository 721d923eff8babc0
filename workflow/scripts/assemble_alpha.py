"""Rule assemble_alpha: the training and validation manifests for one alpha and seed."""

from synthetic_simplicity.assembly import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.assemble_alpha(
        snakemake.input.real,
        snakemake.input.synthetic,
        snakemake.output.manifest,
        snakemake.output.val,
        float(snakemake.wildcards.alpha),
        snakemake.params.assembly["per_class"],
        snakemake.params.assembly["val_fraction"],
        snakemake.params.seed,
        int(snakemake.wildcards.seed),
    )
