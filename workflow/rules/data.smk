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
