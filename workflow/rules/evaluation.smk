# Stage 6: metrics per run (one JSON each) and the aggregate table over seeds.


rule evaluate_run:
    input:
        predictions="results/{dataset}/runs/{arch}/alpha{alpha}_seed{seed}/predictions.csv",
        real="results/{dataset}/real.h5",
    output:
        metrics="results/{dataset}/runs/{arch}/alpha{alpha}_seed{seed}/metrics.json",
    log:
        "logs/evaluation/{dataset}_{arch}_alpha{alpha}_seed{seed}.log",
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
        table="results/{dataset}/alpha_metrics.csv",
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
