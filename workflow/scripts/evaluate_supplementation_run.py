"""Rule evaluate_supplementation_run: per-label and macro AUROC of one run, one JSON record."""

from synthetic_simplicity.evaluation import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    w = snakemake.wildcards
    jobs.evaluate_supplementation_run(
        snakemake.input.predictions,
        snakemake.output.metrics,
        {"dataset": w.study, "arch": w.arch, "protocol": w.protocol, "k": int(w.k), "seed": int(w.seed)},
    )
