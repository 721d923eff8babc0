# Stage 1: real images into the HDF5 image-set contract, split into train/test.


rule mnist_real:
    output:
        real="results/mnist/real.h5",
    log:
        "logs/data/mnist_real.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        data=config["mnist"]["data"],
        seed=config["seed"],
    script:
        "../scripts/mnist_real.py"


rule camus_real:
    input:
        camus_root,
    output:
        real="results/camus/real.h5",
    log:
        "logs/data/camus_real.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        data=config["camus"]["data"],
        seed=config["seed"],
    script:
        "../scripts/camus_real.py"


# A Study A dataset of the user's own images: folder or CSV, split by subject when known.
rule own_real:
    output:
        real="results/{dataset}/real.h5",
    log:
        "logs/data/{dataset}_real.log",
    wildcard_constraints:
        dataset=names_pattern(own_datasets(config)),
    conda:
        "../../envs/analysis.yaml"
    threads: 4
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        data=lambda wildcards: config[wildcards.dataset]["data"],
        listing=own_listing,
        seed=config["seed"],
    script:
        "../scripts/own_real.py"


# Study B: each site's real images with 14 findings and 22-number conditions, split by patient.
rule supplementation_real:
    input:
        site_root,
    output:
        real="results/{study}/real.h5",
    log:
        "logs/data/{study}_real.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        site=lambda wildcards: config[wildcards.study]["train_site"],
        sites=lambda wildcards: config[wildcards.study]["sites"],
        data=lambda wildcards: config[wildcards.study]["data"],
        seed=config["seed"],
    script:
        "../scripts/supplementation_real.py"


use rule supplementation_real as supplementation_external with:
    output:
        real="results/{study}/external/{site}.h5",
    log:
        "logs/data/{study}_external_{site}.log",
    params:
        site=lambda wildcards: wildcards.site,
        sites=lambda wildcards: config[wildcards.study]["sites"],
        data=lambda wildcards: config[wildcards.study]["data"],
        seed=config["seed"],
