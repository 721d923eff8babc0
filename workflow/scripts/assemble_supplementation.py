"""Rule assemble_supplementation: the training manifest of one protocol and k."""

from synthetic_simplicity.assembly import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    w = snakemake.wildcards
    jobs.assemble_supplementation(snakemake.input.real, snakemake.input.synthetic, snakemake.output.manifest,
                                    w.protocol, int(w.k))
