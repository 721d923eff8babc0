"""Rule train_dfr: the ERM model of the same run with its last layer refitted on a balanced held-out set."""

from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed
from synthetic_simplicity.mitigation import jobs

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    jobs.train_dfr(
        snakemake.input.erm,
        snakemake.input.real,
        snakemake.input.synthetic,
        snakemake.input.balanced,
        snakemake.input.test,
        snakemake.output.model,
        snakemake.output.predictions,
        snakemake.params.classifier,
        snakemake.params.dfr,
        snakemake.params.device,
        derive_seed(snakemake.params.seed, w.dataset, "classifier", w.arch, w.alpha, w.seed),
        threads=snakemake.threads,
    )
