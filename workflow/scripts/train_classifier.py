"""Rule train_classifier: one classifier and its per-image test predictions."""

from synthetic_simplicity.classifier import jobs
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    jobs.train_classifier(
        snakemake.input.real,
        snakemake.input.synthetic,
        snakemake.input.train,
        snakemake.input.val,
        snakemake.input.test,
        snakemake.output.model,
        snakemake.output.predictions,
        w.arch,
        snakemake.params.classifier,
        f"{w.dataset}.classifier",
        derive_seed(snakemake.params.seed, w.dataset, "classifier", w.arch, w.alpha, w.seed),
        snakemake.params.device,
        snakemake.params.checkpoint,
        method=w.method,
        settings=snakemake.params.settings,
        threads=snakemake.threads,
    )
