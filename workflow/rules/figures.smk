# Stage 7: every figure is a file target.


rule figure_alpha:
    input:
        table="results/{dataset}/alpha_metrics.csv",
        detectability="results/{dataset}/detectability.csv",
        real="results/{dataset}/real.h5",
    output:
        figure=report(
            "results/figures/{dataset}_alpha.pdf",
            caption="../report/alpha.rst",
            category=report_category,
            subcategory="Figures",
            labels=report_labels("alpha sweep"),
        ),
    log:
        "logs/figures/{dataset}_alpha.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        ci=lambda wildcards: section(wildcards, "evaluation")["ci"],
    script:
        "../scripts/figure_alpha.py"


rule figure_mitigation:
    input:
        table="results/{dataset}/alpha_metrics.csv",
        detectability="results/{dataset}/detectability.csv",
        real="results/{dataset}/real.h5",
    output:
        figure=report(
            "results/figures/{dataset}_mitigation.pdf",
            caption="../report/mitigation.rst",
            category=report_category,
            subcategory="Figures",
            labels=report_labels("mitigation arms"),
        ),
    log:
        "logs/figures/{dataset}_mitigation.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        ci=lambda wildcards: section(wildcards, "evaluation")["ci"],
        methods=lambda wildcards: methods(wildcards.dataset),
        variants=lambda wildcards: variant_names(wildcards.dataset),
    script:
        "../scripts/figure_mitigation.py"


rule figure_samples:
    input:
        real="results/{dataset}/real.h5",
        synthetic=lambda wildcards: variant_files(wildcards.dataset, "synthetic.h5"),
    output:
        figure=report(
            "results/figures/{dataset}_samples.png",
            caption="../report/samples.rst",
            category=report_category,
            subcategory="Samples",
            labels=report_labels("real and synthetic samples"),
        ),
    log:
        "logs/figures/{dataset}_samples.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        seed=config["seed"],
        variants=lambda wildcards: variant_names(wildcards.dataset),
    script:
        "../scripts/figure_samples.py"


rule figure_fidelity:
    input:
        summary="results/{dataset}/shortcut_summary.csv",
        real="results/{dataset}/real.h5",
    output:
        figure=report(
            "results/figures/{dataset}_fidelity.pdf",
            caption="../report/fidelity.rst",
            category=report_category,
            subcategory="Figures",
            labels=report_labels("shortcut against detectability"),
        ),
    log:
        "logs/figures/{dataset}_fidelity.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/figure_fidelity.py"


rule figure_fingerprints:
    input:
        fingerprints=lambda wildcards: variant_files(
            wildcards.dataset, "fingerprints.npz"
        ),
        real="results/{dataset}/real.h5",
    output:
        figure=report(
            "results/figures/{dataset}_fingerprints.pdf",
            caption="../report/fingerprints.rst",
            category=report_category,
            subcategory="Figures",
            labels=report_labels("fingerprints"),
        ),
    log:
        "logs/figures/{dataset}_fingerprints.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        variants=lambda wildcards: variant_names(wildcards.dataset),
    script:
        "../scripts/figure_fingerprints.py"


rule figure_architectures:
    input:
        tables=expand("results/{dataset}/alpha_metrics.csv", dataset=config["datasets"]),
        reals=expand("results/{dataset}/real.h5", dataset=config["datasets"]),
    output:
        figure=report(
            "results/figures/architectures_alpha.pdf",
            caption="../report/architectures.rst",
            category="Study A: all datasets",
            subcategory="Figures",
            labels={
                "result": "alpha sweep",
                "datasets": ", ".join(config["datasets"]),
            },
        ),
    log:
        "logs/figures/architectures_alpha.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        ci=lambda wildcards: config[config["datasets"][0]]["evaluation"]["ci"],
    script:
        "../scripts/figure_architectures.py"


rule figure_supplementation:
    input:
        table="results/{study}/supplementation_auroc.csv",
    output:
        figure=report(
            "results/figures/{study}_supplementation.pdf",
            caption="../report/supplementation.rst",
            category=report_category,
            subcategory="Figures",
            labels=report_labels("macro AUROC against k"),
        ),
        heatmap=report(
            "results/figures/{study}_supplementation_heatmap.pdf",
            caption="../report/supplementation_heatmap.rst",
            category=report_category,
            subcategory="Figures",
            labels=report_labels("per-label AUROC change"),
        ),
    log:
        "logs/figures/{study}_supplementation.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/figure_supplementation.py"
