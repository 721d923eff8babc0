"""Rule train_supplementation: one multi-label classifier and its test-set probabilities."""

from synthetic_simplicity.classifier import jobs
from synthetic_simplicity.core.joblog import job_log
from synthetic_simplicity.core.seeds import derive_seed

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    tests = {name[len("test_") :]: path for name, path in snakemake.input.items() if name.startswith("test_")}
    jobs.train_supplementation(
        snakemake.input.real,
        snakemake.input.synthetic,
        snakemake.input.train,
        snakemake.input.val,
        tests,
        snakemake.output.model,
        snakemake.output.predictions,
        w.arch,
        snakemake.params.classifier,
        f"{w.study}.classifier",
        derive_seed(snakemake.params.seed, w.study, "classifier", w.arch, w.protocol, w.k, w.seed),
        snakemake.params.device,
        snakemake.params.checkpoint,
        threads=snakemake.threads,
    )
