# synthetic-simplicity: wiring only. Stages live in workflow/rules/, logic in src/synthetic_simplicity/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# The front page of `snakemake --report results/report.html` (captions beside each result).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/diffusion.smk"
include: "workflow/rules/synthesis.smk"
include: "workflow/rules/detectability.smk"
include: "workflow/rules/assembly.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/mitigation.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        all_targets(),
