# Stage 2: the class-conditional generator, trained on the real training split only.


rule train_diffusion:
    input:
        real="results/{dataset}/real.h5",
    output:
        model=protected("results/{dataset}/diffusion/model.pt"),
        grid=report(
            "results/{dataset}/diffusion/samples_grid.png",
            caption="../report/diffusion_grid.rst",
            category=report_category,
            subcategory="Samples",
            labels=report_labels("generator samples"),
        ),
    log:
        "logs/diffusion/{dataset}.log",
    benchmark:
        "results/benchmarks/diffusion/{dataset}.tsv"
    retries: 2  # a killed attempt resumes from its latest checkpoint
    conda:
        "../../envs/torch.yaml"
    threads: lambda wildcards: 4 * diffusion_gpus(wildcards)
    resources:
        # one training process per GPU (diffusion.gpus); on SLURM this becomes --gpus=N
        gpu=diffusion_gpus,
        mem_mb=lambda wildcards, attempt: 4000 * attempt * diffusion_gpus(wildcards),
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        diffusion=diffusion_settings,
        seed=config["seed"],
        device=config["device"],
        checkpoints=lambda wildcards: f"results/{wildcards.dataset}/diffusion/checkpoints",
        snapshots=lambda wildcards: snapshot_steps(wildcards.dataset),
    script:
        "../scripts/train_diffusion.py"
