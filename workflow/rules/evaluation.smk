# Stage 6: metrics per run (one JSON each) and the aggregate table over seeds.


rule evaluate_run:
    input:
        predictions="results/{dataset}/variants/{variant}/runs/{method}/{arch}/alpha{alpha}_seed{seed}/predictions.csv",
        real="results/{dataset}/real.h5",
    output:
        metrics="results/{dataset}/variants/{variant}/runs/{method}/{arch}/alpha{alpha}_seed{seed}/metrics.json",
    log:
        "logs/evaluation/{dataset}_{variant}_{method}_{arch}_alpha{alpha}_seed{seed}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/evaluate_run.py"


rule aggregate_alpha:
    input:
        metrics=run_metrics,
    output:
        table=report(
            "results/{dataset}/alpha_metrics.csv",
            caption="../report/alpha_metrics.rst",
            category=report_category,
            subcategory="Tables",
            labels=report_labels("per-cell accuracy"),
        ),
    log:
        "logs/evaluation/{dataset}_aggregate.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        ci=lambda wildcards: section(wildcards, "evaluation")["ci"],
    script:
        "../scripts/aggregate_alpha.py"


rule evaluate_supplementation_run:
    input:
        predictions="results/{study}/runs/{arch}/{protocol}_k{k}_seed{seed}/predictions.csv",
    output:
        metrics="results/{study}/runs/{arch}/{protocol}_k{k}_seed{seed}/metrics.json",
    log:
        "logs/evaluation/{study}_{arch}_{protocol}_k{k}_seed{seed}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/evaluate_supplementation_run.py"


# Patient-level bootstrap CIs and p-values against real only need every run of a test set at once.
rule aggregate_supplementation:
    input:
        predictions=lambda wildcards: [
            f"{supplementation_run_dir(wildcards.study, run)}/predictions.csv"
            for run in supplementation_runs(wildcards.study)
        ],
        metrics=lambda wildcards: [
            f"{supplementation_run_dir(wildcards.study, run)}/metrics.json"
            for run in supplementation_runs(wildcards.study)
        ],
    output:
        table=report(
            "results/{study}/supplementation_auroc.csv",
            caption="../report/supplementation_auroc.rst",
            category=report_category,
            subcategory="Tables",
            labels=report_labels("per-label AUROC"),
        ),
    log:
        "logs/evaluation/{study}_supplementation.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        runs=lambda wildcards: supplementation_runs(wildcards.study),
        evaluation=lambda wildcards: config[wildcards.study]["evaluation"],
        seed=config["seed"],
    script:
        "../scripts/aggregate_supplementation.py"
