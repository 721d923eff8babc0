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
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        diffusion=lambda wildcards: section(wildcards, "diffusion"),
        seed=config["seed"],
        device=config["device"],
        checkpoints=lambda wildcards: f"results/{wildcards.dataset}/diffusion/checkpoints",
        snapshots=lambda wildcards: snapshot_steps(wildcards.dataset),
    script:
        "../scripts/train_diffusion.py"
