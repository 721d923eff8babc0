"""Rule mnist_real: real MNIST digits into the image-set contract."""

from synthetic_simplicity import stages
from synthetic_simplicity.joblog import start_log

start_log(snakemake.log[0])
stages.mnist_real(snakemake.output.real, snakemake.params.data, snakemake.params.seed)
