"""Rule detectability: C2ST, Fréchet distances and image statistics of one variant's synthetic pool."""

from synthetic_simplicity.detectability import jobs
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    jobs.detectability(
        snakemake.input.real,
        snakemake.input.synthetic,
        snakemake.input.reference,
        snakemake.output.record,
        snakemake.output.fingerprints,
        snakemake.params.detectability,
        {"dataset": w.dataset, "variant": w.variant},
        derive_seed(snakemake.params.seed, w.dataset, "c2st"),
        snakemake.params.device,
        snakemake.params.checkpoint,
        threads=snakemake.threads,
    )
