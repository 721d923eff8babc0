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


# One rule per Study A dataset, each job refitting the runs of one classifier job (classifier.runs_per_job).
for dataset in study_a_datasets(config):
    job_file = job_name(dataset, "dfr")

    rule:
        name:
            f"train_dfr_{dataset}"
        input:
            erm=job_paths(
                dataset,
                "results/{dataset}/variants/{variant}/runs/erm/{arch}/alpha{alpha}_seed{seed}/model.pt",
            ),
            real="results/{dataset}/real.h5",
            synthetic="results/{dataset}/variants/{variant}/synthetic.h5",
            balanced=job_paths(
                dataset,
                "results/{dataset}/variants/{variant}/manifests/balanced_seed{seed}.h5",
            ),
            test="results/{dataset}/variants/{variant}/manifests/test.h5",
        output:
            model=job_paths(
                dataset,
                "results/{dataset}/variants/{variant}/runs/dfr/{arch}/alpha{alpha}_seed{seed}/model.pt",
            ),
            predictions=job_paths(
                dataset,
                "results/{dataset}/variants/{variant}/runs/dfr/{arch}/alpha{alpha}_seed{seed}/predictions.csv",
            ),
        log:
            f"logs/mitigation/{job_file}.log",
        benchmark:
            f"results/benchmarks/mitigation/{job_file}.tsv"
        wildcard_constraints:
            dataset=dataset,
        retries: 2  # a killed attempt refits from the ERM models again (seconds)
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            gpu=1,
            mem_mb=lambda wildcards, attempt: 3000 * attempt,
            runtime=job_minutes(dataset, 20),
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
