# Stage 4: manifests (rows of the real and synthetic pools), one per variant, alpha and seed, and the test set.


rule assemble_alpha:
    input:
        real="results/{dataset}/real.h5",
        synthetic="results/{dataset}/variants/{variant}/synthetic.h5",
    output:
        manifest="results/{dataset}/variants/{variant}/manifests/alpha{alpha}_seed{seed}.h5",
        val="results/{dataset}/variants/{variant}/manifests/alpha{alpha}_seed{seed}_val.h5",
    log:
        "logs/assembly/{dataset}_{variant}_alpha{alpha}_seed{seed}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        assembly=lambda wildcards: section(wildcards, "assembly"),
        seed=config["seed"],
    script:
        "../scripts/assemble_alpha.py"


# Last-layer retraining (method dfr): the same number of held-out images in every class x source cell.
rule assemble_balanced:
    input:
        real="results/{dataset}/real.h5",
        synthetic="results/{dataset}/variants/{variant}/synthetic.h5",
    output:
        manifest="results/{dataset}/variants/{variant}/manifests/balanced_seed{seed}.h5",
    log:
        "logs/assembly/{dataset}_{variant}_balanced_seed{seed}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        assembly=lambda wildcards: section(wildcards, "assembly"),
        per_cell=lambda wildcards: section(wildcards, "mitigation")["dfr"]["per_cell"],
        seed=config["seed"],
    script:
        "../scripts/assemble_balanced.py"


rule assemble_test:
    input:
        real="results/{dataset}/real.h5",
        synthetic="results/{dataset}/variants/{variant}/synthetic.h5",
    output:
        manifest="results/{dataset}/variants/{variant}/manifests/test.h5",
    log:
        "logs/assembly/{dataset}_{variant}_test.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/assemble_test.py"


# Study B: real + k replicas per row, k replicas alone, or another site's real rows + k replicas.
rule assemble_supplementation:
    input:
        real=supplementation_real_input,
        synthetic="results/{study}/replicas.h5",
    output:
        manifest="results/{study}/manifests/{protocol}_k{k}.h5",
    log:
        "logs/assembly/{study}_{protocol}_k{k}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/assemble_supplementation.py"
