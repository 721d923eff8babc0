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
    wildcard_constraints:
        dataset=names_pattern(
            [d for d in study_a_datasets(config) if d not in pool_datasets(config)]
        ),
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


# A user's own synthetic images as the variant's pools: no generator is trained or sampled.
rule import_synthetic:
    input:
        real="results/{dataset}/real.h5",
    output:
        synthetic="results/{dataset}/variants/{variant}/synthetic.h5",
    log:
        "logs/synthesis/{dataset}_{variant}.log",
    wildcard_constraints:
        dataset=names_pattern(pool_datasets(config)),
    conda:
        "../../envs/analysis.yaml"
    threads: 4
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        synthetic=lambda wildcards: config[wildcards.dataset]["synthetic"],
        data=lambda wildcards: config[wildcards.dataset]["data"],
        # only what the pool-size check needs: a new alpha list does not re-import the pool
        assembly=lambda wildcards: {
            k: config[wildcards.dataset]["assembly"][k]
            for k in ("per_class", "val_fraction")
        },
        listing=own_pool_listing,
        seed=config["seed"],
    script:
        "../scripts/import_synthetic.py"


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
