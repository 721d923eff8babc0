"""Rule figure_supplementation: macro AUROC vs k, and the per-label change against real only."""

from synthetic_simplicity.figures import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    study = snakemake.wildcards.study
    jobs.figure_supplementation(snakemake.input.table, snakemake.output.figure, snakemake.output.heatmap,
                                  f"{study}: Study B supplementation")
