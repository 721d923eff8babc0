# Mitigation arms (classifier.methods) beyond the ERM training of workflow/rules/classifier.smk: the
# harmonised synthetic pool, last-layer retraining of the ERM models, and the table of every arm.


rule harmonise_pool:
    input:
        real="results/{dataset}/real.h5",
        synthetic="results/{dataset}/variants/{variant}/synthetic.h5",
    output:
        pool="results/{dataset}/variants/{variant}/harmonised.h5",
    log:
        "logs/mitigation/{dataset}_{variant}_harmonise.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        match=lambda wildcards: section(wildcards, "mitigation")["harmonise"]["match"],
    script:
        "../scripts/harmonise_pool.py"


rule train_dfr:
    input:
        erm=lambda wildcards: f"{run_dir(wildcards, 'erm')}/model.pt",
        real="results/{dataset}/real.h5",
        synthetic="results/{dataset}/variants/{variant}/synthetic.h5",
        balanced="results/{dataset}/variants/{variant}/manifests/balanced_seed{seed}.h5",
        test="results/{dataset}/variants/{variant}/manifests/test.h5",
    output:
        model="results/{dataset}/variants/{variant}/runs/dfr/{arch}/alpha{alpha}_seed{seed}/model.pt",
        predictions="results/{dataset}/variants/{variant}/runs/dfr/{arch}/alpha{alpha}_seed{seed}/predictions.csv",
    log:
        "logs/mitigation/{dataset}_{variant}_dfr_{arch}_alpha{alpha}_seed{seed}.log",
    benchmark:
        "results/benchmarks/mitigation/{dataset}_{variant}_dfr_{arch}_alpha{alpha}_seed{seed}.tsv"
    retries: 2  # a killed attempt refits from the ERM model again (seconds)
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 3000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    params:
        classifier=classifier_settings,
        dfr=lambda wildcards: section(wildcards, "mitigation")["dfr"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/train_dfr.py"


rule mitigation_summary:
    input:
        metrics=run_metrics,
    output:
        table=report(
            "results/{dataset}/mitigation_summary.csv",
            caption="../report/mitigation_summary.rst",
            category=report_category,
            subcategory="Tables",
            labels=report_labels("mitigation summary"),
        ),
    log:
        "logs/mitigation/{dataset}_summary.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        ci=lambda wildcards: section(wildcards, "evaluation")["ci"],
        methods=lambda wildcards: methods(wildcards.dataset),
    script:
        "../scripts/mitigation_summary.py"
