"""Rule figure_fidelity: mismatched-cell accuracy against the pool's C2ST AUROC, one point per variant."""

from synthetic_simplicity.figures import jobs
from synthetic_simplicity.core.joblog import job_log

with job_log(snakemake.log[0]):
    jobs.figure_fidelity(snakemake.input.summary, snakemake.input.real, snakemake.output.figure)
