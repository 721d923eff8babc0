# Stage 3: synthetic training and test pools, one seed per image.


rule sample_synthetic:
    input:
        real="results/{dataset}/real.h5",
        model="results/{dataset}/diffusion/model.pt",
    output:
        synthetic="results/{dataset}/synthetic.h5",
    log:
        "logs/synthesis/{dataset}.log",
    benchmark:
        "results/benchmarks/synthesis/{dataset}.tsv"
    retries: 2  # a killed attempt keeps its finished batches and samples only the rest
    conda:
        "../../envs/torch.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        synthesis=lambda wildcards: section(wildcards, "synthesis"),
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/sample_synthetic.py"
