"""Rule detectability_replicas: C2ST and image statistics of Study B's replica pool, by patient halves."""

from synthetic_simplicity.detectability import jobs
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    jobs.replica_detectability(
        snakemake.input.real,
        snakemake.input.replicas,
        snakemake.output.record,
        snakemake.output.table,
        snakemake.params.detectability,
        derive_seed(snakemake.params.seed, w.study, "c2st"),
        snakemake.params.device,
        snakemake.params.checkpoint,
        threads=snakemake.threads,
    )
