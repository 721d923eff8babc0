"""Rule task_reference: the class task on real images with the detectability budget (its AUROC, and the
feature space of the Fréchet distances)."""

from synthetic_simplicity.detectability import jobs
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    jobs.task_reference(
        snakemake.input.real,
        snakemake.output.model,
        snakemake.output.metrics,
        snakemake.params.detectability,
        derive_seed(snakemake.params.seed, w.dataset, "task reference"),
        snakemake.params.device,
        snakemake.params.checkpoint,
        threads=snakemake.threads,
    )
