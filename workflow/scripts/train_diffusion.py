"""Rule train_diffusion: the class-conditional DDPM, resumable from its checkpoints, on as many
processes as the job has GPUs (resources gpu, from diffusion.gpus)."""

from synthetic_simplicity.diffusion import jobs
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed

with job_log(snakemake.log[0]):
    jobs.train_diffusion(
        snakemake.input.real,
        snakemake.output.model,
        snakemake.output.grid,
        snakemake.params.diffusion,
        f"{snakemake.wildcards.dataset}.diffusion",
        derive_seed(snakemake.params.seed, snakemake.wildcards.dataset, "diffusion"),
        snakemake.params.device,
        snakemake.params.checkpoints,
        threads=snakemake.threads,
        snapshots=snakemake.params.snapshots,
        gpus=snakemake.resources.gpu,
    )
