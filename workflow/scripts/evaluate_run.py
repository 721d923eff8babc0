"""Rule evaluate_run: accuracy per cell, worst cell and balanced accuracy for one run."""

from synthetic_simplicity.evaluation import jobs
from synthetic_simplicity.core.joblog import job_log

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    jobs.evaluate_run(
        snakemake.input.predictions,
        snakemake.input.real,
        snakemake.output.metrics,
        {"dataset": w.dataset, "variant": w.variant, "method": w.method, "architecture": w.arch, "alpha": float(w.alpha), "seed": int(w.seed)},
    )
