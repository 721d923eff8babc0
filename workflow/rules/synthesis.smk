# Stage 3: synthetic training and test pools per generator variant, one seed per image.


rule sample_synthetic:
    input:
        real="results/{dataset}/real.h5",
        model="results/{dataset}/diffusion/model.pt",
    output:
        synthetic="results/{dataset}/variants/{variant}/synthetic.h5",
    log:
        "logs/synthesis/{dataset}_{variant}.log",
    benchmark:
        "results/benchmarks/synthesis/{dataset}_{variant}.tsv"
    retries: 2  # a killed attempt keeps its finished batches and samples only the rest
    conda:
        "../../envs/torch.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        synthesis=lambda wildcards: variant_synthesis(
            config[wildcards.dataset], variant(wildcards)["name"]
        ),
        steps=lambda wildcards: variant(wildcards)["steps"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/sample_synthetic.py"


# Study B: k replicas of every real training row (same condition, own seed), up to the largest k.
rule sample_replicas:
    input:
        real="results/{study}/real.h5",
        model="results/{study}/diffusion/model.pt",
    output:
        replicas="results/{study}/replicas.h5",
    log:
        "logs/synthesis/{study}_replicas.log",
    benchmark:
        "results/benchmarks/synthesis/{study}_replicas.tsv"
    retries: 2  # a killed attempt keeps the sampled rows and samples only the rest
    conda:
        "../../envs/torch.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 1440 * attempt,
    params:
        synthesis=lambda wildcards: config[wildcards.study]["synthesis"],
        replicas=lambda wildcards: replicas_needed(wildcards.study),
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/sample_replicas.py"
