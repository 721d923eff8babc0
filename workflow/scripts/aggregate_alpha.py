"""Rule aggregate_alpha: mean and confidence interval over seeds per alpha, architecture and cell."""

from synthetic_simplicity import stages
from synthetic_simplicity.joblog import start_log

start_log(snakemake.log[0])
stages.aggregate_alpha(list(snakemake.input.metrics), snakemake.output.table, snakemake.params.ci)
