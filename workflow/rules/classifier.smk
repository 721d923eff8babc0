# Stage 5: one classifier per variant, method, architecture, alpha and seed; per-image predictions on the
# test set. dfr only refits ERM's last layer (workflow/rules/mitigation.smk). A job trains
# classifier.runs_per_job of them in one process, so start-up, imports and CUDA set-up are paid once
# (docs/decisions.md); outputs are fixed when the workflow is read and the seeds and alphas are per
# dataset, so each Study A dataset has its own rule: train_classifier_<dataset>.
for dataset in study_a_datasets(config):
    job_file = job_name(dataset)

    rule:
        name:
            f"train_classifier_{dataset}"
        input:
            real="results/{dataset}/real.h5",
            synthetic=training_pool,
            train=job_paths(
                dataset,
                "results/{dataset}/variants/{variant}/manifests/alpha{alpha}_seed{seed}.h5",
            ),
            val=job_paths(
                dataset,
                "results/{dataset}/variants/{variant}/manifests/alpha{alpha}_seed{seed}_val.h5",
            ),
            test="results/{dataset}/variants/{variant}/manifests/test.h5",
        output:
            model=job_paths(
                dataset,
                "results/{dataset}/variants/{variant}/runs/{method}/{arch}/alpha{alpha}_seed{seed}/model.pt",
            ),
            predictions=job_paths(
                dataset,
                "results/{dataset}/variants/{variant}/runs/{method}/{arch}/alpha{alpha}_seed{seed}/predictions.csv",
            ),
        log:
            f"logs/classifier/{job_file}.log",
        benchmark:
            f"results/benchmarks/classifier/{job_file}.tsv"
        wildcard_constraints:
            dataset=dataset,
            method="|".join(m for m in METHODS if m != "dfr"),
        retries: 2  # a killed attempt resumes every run from its last finished epoch
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            gpu=1,
            mem_mb=lambda wildcards, attempt: 3000 * attempt,
            runtime=job_minutes(dataset, 60),
        params:
            classifier=classifier_settings,
            settings=lambda wildcards: section(wildcards, "mitigation").get(
                wildcards.method
            ),
            seed=config["seed"],
            device=config["device"],
        script:
            "../scripts/train_classifier.py"


# Study B: a 14-label classifier per protocol, k and seed; probabilities on every test set.
rule train_supplementation:
    input:
        unpack(supplementation_test_inputs),
        real=supplementation_real_input,
        synthetic="results/{study}/replicas.h5",
        train="results/{study}/manifests/{protocol}_k{k}.h5",
        val="results/{study}/real.h5",
    output:
        model="results/{study}/runs/{arch}/{protocol}_k{k}_seed{seed}/model.pt",
        predictions="results/{study}/runs/{arch}/{protocol}_k{k}_seed{seed}/predictions.csv",
    log:
        "logs/classifier/{study}_{arch}_{protocol}_k{k}_seed{seed}.log",
    benchmark:
        "results/benchmarks/classifier/{study}_{arch}_{protocol}_k{k}_seed{seed}.tsv"
    retries: 2  # a killed attempt resumes from its last finished epoch
    conda:
        "../../envs/torch.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 720 * attempt,
    params:
        classifier=lambda wildcards: config[wildcards.study]["classifier"],
        seed=config["seed"],
        device=config["device"],
        checkpoint=lambda wildcards: (
            f"results/{wildcards.study}/runs/{wildcards.arch}/"
            f"{wildcards.protocol}_k{wildcards.k}_seed{wildcards.seed}/checkpoint.pt"
        ),
    script:
        "../scripts/train_supplementation.py"
