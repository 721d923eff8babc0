# Stage 4b: how detectable every synthetic pool is, what gives it away, and how much the alpha sweep
# exploits it (C2ST, Fréchet distance, image statistics; config/README.md: detectability).


rule task_reference:
    input:
        real="results/{dataset}/real.h5",
    output:
        model="results/{dataset}/detectability/task_reference.pt",
        metrics="results/{dataset}/detectability/task.json",
    log:
        "logs/detectability/{dataset}_task.log",
    benchmark:
        "results/benchmarks/detectability/{dataset}_task.tsv"
    retries: 2  # a killed attempt resumes from its last finished epoch
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 3000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        detectability=lambda wildcards: section(wildcards, "detectability"),
        seed=config["seed"],
        device=config["device"],
        checkpoint=lambda wildcards: f"results/{wildcards.dataset}/detectability/task_checkpoint.pt",
    script:
        "../scripts/task_reference.py"


rule detectability:
    input:
        real="results/{dataset}/real.h5",
        synthetic="results/{dataset}/variants/{variant}/synthetic.h5",
        reference="results/{dataset}/detectability/task_reference.pt",
    output:
        record="results/{dataset}/variants/{variant}/detectability.json",
        fingerprints="results/{dataset}/variants/{variant}/fingerprints.npz",
    log:
        "logs/detectability/{dataset}_{variant}.log",
    benchmark:
        "results/benchmarks/detectability/{dataset}_{variant}.tsv"
    retries: 2  # a killed attempt resumes from its last finished epoch
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 3000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        detectability=lambda wildcards: section(wildcards, "detectability"),
        seed=config["seed"],
        device=config["device"],
        checkpoint=lambda wildcards: (
            f"{variant_dir(wildcards.dataset, wildcards.variant)}/c2st_checkpoint.pt"
        ),
    script:
        "../scripts/detectability.py"


rule aggregate_detectability:
    input:
        records=lambda wildcards: variant_files(wildcards.dataset, "detectability.json"),
        task="results/{dataset}/detectability/task.json",
    output:
        table=report(
            "results/{dataset}/detectability.csv",
            caption="../report/detectability.rst",
            category=report_category,
            subcategory="Tables",
            labels=report_labels("detectability"),
        ),
    log:
        "logs/detectability/{dataset}_aggregate.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/aggregate_detectability.py"


rule shortcut_summary:
    input:
        metrics=erm_metrics,
        detectability="results/{dataset}/detectability.csv",
        real="results/{dataset}/real.h5",
    output:
        table=report(
            "results/{dataset}/shortcut_summary.csv",
            caption="../report/shortcut_summary.rst",
            category=report_category,
            subcategory="Tables",
            labels=report_labels("shortcut summary"),
        ),
    log:
        "logs/detectability/{dataset}_summary.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        ci=lambda wildcards: section(wildcards, "evaluation")["ci"],
    script:
        "../scripts/shortcut_summary.py"


# Study B: the replica pool against the real training rows it copies, split by patient halves.
rule detectability_replicas:
    input:
        real="results/{study}/real.h5",
        replicas="results/{study}/replicas.h5",
    output:
        record="results/{study}/replica_detectability.json",
        table=report(
            "results/{study}/replica_detectability.csv",
            caption="../report/replica_detectability.rst",
            category=report_category,
            subcategory="Tables",
            labels=report_labels("replica detectability"),
        ),
    log:
        "logs/detectability/{study}_replicas.log",
    benchmark:
        "results/benchmarks/detectability/{study}_replicas.tsv"
    retries: 2  # a killed attempt resumes from its last finished epoch
    conda:
        "../../envs/torch.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        detectability=lambda wildcards: config[wildcards.study]["detectability"],
        seed=config["seed"],
        device=config["device"],
        checkpoint=lambda wildcards: f"results/{wildcards.study}/c2st_checkpoint.pt",
    script:
        "../scripts/detectability_replicas.py"
