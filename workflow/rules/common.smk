# Config validation, wildcard constraints, input functions and target lists.
from pathlib import Path

from synthetic_simplicity.core.config import (
    alpha_tag,
    job_runs,
    own_datasets,
    pool_datasets,
    study_a_datasets,
    validate_config,
    variant_synthesis,
)
from synthetic_simplicity.core.errors import PipelineError
from synthetic_simplicity.core.joblog import stop_workflow
from synthetic_simplicity.mitigation.objectives import METHODS

try:
    _validated = validate_config(
        config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
    )
except PipelineError as error:
    stop_workflow(error)
config.clear()
config.update(_validated)


def names_pattern(names):
    """A wildcard pattern matching exactly these names (the schema allows only [A-Za-z0-9_]);
    with no names it matches nothing, so the rule never enters the DAG."""
    return "|".join(names) or "(?!x)x"


# Cheap jobs run on the submit host on a cluster instead of waiting in the queue.
localrules:
    all,
    evaluate_run,
    aggregate_alpha,
    aggregate_detectability,
    shortcut_summary,
    mitigation_summary,
    figure_mitigation,
    figure_alpha,
    figure_fidelity,
    figure_fingerprints,
    figure_samples,
    figure_architectures,
    evaluate_supplementation_run,
    figure_supplementation,


wildcard_constraints:
    dataset=names_pattern(study_a_datasets(config) + ["chexpert", "mnist_demo"]),
    variant=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    method="|".join(METHODS),
    study="chexpert|mnist_demo",
    alpha=r"[0-9]+(\.[0-9]+)?",
    seed=r"[0-9]+",
    k=r"[0-9]+",
    arch="cnn|resnet18|densenet121|convnext_tiny|convnext_base",
    protocol=r"supplemented|synthetic-only|mixed-[A-Za-z0-9_]+",
    site=r"[A-Za-z0-9_]+",


def section(wildcards, name):
    """One stage's settings for the dataset in the wildcards."""
    return config[wildcards.dataset][name]


def diffusion_gpus(wildcards):
    """The generator's training processes, one per GPU: the job's gpu resource (diffusion.gpus)."""
    return section(wildcards, "diffusion")["gpus"]


def diffusion_settings(wildcards):
    """The diffusion section without gpus: more or fewer GPUs sharing one global batch
    train the same generator, so a new count must not retrain it (a param would)."""
    return {k: v for k, v in section(wildcards, "diffusion").items() if k != "gpus"}


def variant_dir(dataset, variant):
    """Where one generator variant's pools, alpha sweep and detectability live."""
    return f"results/{dataset}/variants/{variant}"


def variant_names(dataset):
    return [v["name"] for v in config[dataset]["variants"]]


def variant(wildcards):
    """The resolved settings of the variant in the wildcards (config/README.md: variants)."""
    for v in config[wildcards.dataset]["variants"]:
        if v["name"] == wildcards.variant:
            return v
    stop_workflow(
        PipelineError(
            f"no variant named {wildcards.variant!r} in config key "
            f"'{wildcards.dataset}.variants' (names: {variant_names(wildcards.dataset)})"
        )
    )


def snapshot_steps(dataset):
    """The generator budgets the variants ask for; the diffusion run keeps each one."""
    return sorted({v["steps"] for v in config[dataset].get("variants", [])})


def methods(dataset):
    return config[dataset]["classifier"]["methods"]


def classifier_settings(wildcards):
    """The classifier section without the keys that choose which runs exist (methods, architectures,
    seeds) and how they are grouped into jobs: adding an arm, an architecture or a seed leaves every
    other run's params as they were."""
    return {
        k: v
        for k, v in section(wildcards, "classifier").items()
        if k not in ("methods", "architectures", "seeds", "runs_per_job")
    }


def run_dirs(dataset, only=None):
    """Every run of the alpha sweep: variant x method (``only``: these) x architecture x alpha x seed."""
    cfg = config[dataset]
    return [
        f"{variant_dir(dataset, v['name'])}/runs/{m}/{arch}/alpha{alpha_tag(a)}_seed{s}"
        for v in cfg["variants"]
        for m in (only or methods(dataset))
        for arch in v["architectures"]
        for a in cfg["assembly"]["alphas"]
        for s in cfg["classifier"]["seeds"]
    ]


def job_paths(dataset, pattern):
    """``pattern`` (a path with {alpha} and {seed}) for every run that one classifier job of the dataset
    trains (classifier.runs_per_job), in the order of its outputs; what the job does not batch stays a
    wildcard. Rule outputs must be fixed when the workflow is read, hence one rule per dataset.
    """
    return [
        pattern.replace("{alpha}", a).replace("{seed}", s)
        for a, s in job_runs(config[dataset], "{alpha}", "{seed}")
    ]


def job_name(dataset, method="{method}"):
    """The wildcards of one classifier job, as its log and benchmark file name."""
    (alpha, seed), *_ = job_runs(config[dataset], "{alpha}", "{seed}")
    name = f"{{dataset}}_{{variant}}_{method}_{{arch}}"
    return (
        name
        + ("_alpha{alpha}" if alpha == "{alpha}" else "")
        + ("_seed{seed}" if seed == "{seed}" else "")
    )


def job_minutes(dataset, per_run):
    """A classifier job's time limit: ``per_run`` minutes for each of its runs, more on each retry."""
    runs = len(job_runs(config[dataset], None, None))
    return lambda wildcards, attempt: per_run * attempt * runs


def training_pool(wildcards):
    """The synthetic pool a run trains and is tested on: the harmonised copy for the harmonise arm."""
    name = "harmonised.h5" if wildcards.method == "harmonise" else "synthetic.h5"
    return f"{variant_dir(wildcards.dataset, wildcards.variant)}/{name}"


def variant_files(dataset, name):
    """One file of every variant of a dataset, e.g. ``synthetic.h5``."""
    return [f"{variant_dir(dataset, v)}/{name}" for v in variant_names(dataset)]


def camus_root(wildcards):
    """Checked while the DAG is built, so a missing CAMUS download stops the run before any job."""
    from synthetic_simplicity.data.camus import detect_layout

    try:
        detect_layout(config["camus"]["data"]["root"])
    except PipelineError as error:
        stop_workflow(error)
    return []


def own_listing(wildcards):
    """The user's real images, listed and checked while the DAG is built (a missing class folder or
    unknown label stops the run before any job); the digest re-runs the job when an image changes.
    """
    return _listing(wildcards.dataset, "data")


def own_pool_listing(wildcards):
    return _listing(wildcards.dataset, "synthetic")


def _listing(dataset, part):
    from synthetic_simplicity.data.own import list_images, listing_digest

    spec = config[dataset][part]
    try:
        frame = list_images(
            spec,
            config[dataset]["data"]["classes"],
            f"{dataset}.{part}",
            part != "data",
        )
    except PipelineError as error:
        stop_workflow(error)
    return listing_digest(frame)


def site_root(wildcards):
    """A Study B site's download must be there before any job runs; the message names the key."""
    from synthetic_simplicity.data.cxr import check_site

    study = wildcards.study
    name = getattr(wildcards, "site", config[study]["train_site"])
    site = config[study]["sites"][name]
    if site["format"] != "mnist":
        try:
            check_site(site, f"{study}.sites.{name}")
        except PipelineError as error:
            stop_workflow(error)
    return []


def supplementation_runs(study):
    """One dict per Study B classifier run: arch, protocol tag, k, seed."""
    cfg = config[study]
    levels = cfg["supplementation"]
    protocols = (
        [("supplemented", k) for k in levels["k"]]
        + [("synthetic-only", k) for k in levels["synthetic_only_k"]]
        + [
            (f"mixed-{s}", k)
            for s in cfg["external_mixing"]
            for k in levels["mixing_k"]
        ]
    )
    return [
        {"arch": arch, "protocol": protocol, "k": k, "seed": seed}
        for arch in cfg["classifier"]["architectures"]
        for protocol, k in protocols
        for seed in cfg["classifier"]["seeds"]
    ]


def supplementation_run_dir(study, run):
    return f"results/{study}/runs/{run['arch']}/{run['protocol']}_k{run['k']}_seed{run['seed']}"


def replicas_needed(study):
    """The pool is sampled once, up to the largest k of any protocol, and reused for smaller k."""
    levels = config[study]["supplementation"]
    return max(levels["k"] + levels["synthetic_only_k"] + levels["mixing_k"])


def site_imageset(study, site):
    if site == config[study]["train_site"]:
        return f"results/{study}/real.h5"
    return f"results/{study}/external/{site}.h5"


def supplementation_real_input(wildcards):
    """The real pool of a run: the train site's, or the mixing site's for external mixing."""
    protocol = wildcards.protocol
    site = (
        protocol[len("mixed-") :]
        if protocol.startswith("mixed-")
        else config[wildcards.study]["train_site"]
    )
    return site_imageset(wildcards.study, site)


def supplementation_tests(wildcards):
    """Test sets by name: the internal test split and each external site's."""
    study = wildcards.study
    tests = {"internal": f"results/{study}/real.h5"}
    tests.update({s: site_imageset(study, s) for s in config[study]["external_tests"]})
    return tests


def supplementation_test_inputs(wildcards):
    """The test sets as named inputs ``test_<name>`` (the script strips the prefix)."""
    return {
        f"test_{name}": path for name, path in supplementation_tests(wildcards).items()
    }


def run_metrics(wildcards):
    return [f"{d}/metrics.json" for d in run_dirs(wildcards.dataset)]


def erm_metrics(wildcards):
    return [f"{d}/metrics.json" for d in run_dirs(wildcards.dataset, ["erm"])]


# The report (snakemake --report): one category per study and dataset, labels naming what each holds.
def study_name(wildcards):
    return getattr(wildcards, "dataset", None) or wildcards.study


def report_category(wildcards):
    name = study_name(wildcards)
    study = "Study B" if name in config["supplementation"] else "Study A"
    return f"{study}: {name}"


def report_labels(result):
    """Labels of a result: what it is, and the variants, architectures and methods (Study A) or the
    sites and supplementation factors (Study B) it holds."""

    def labels(wildcards):
        name = study_name(wildcards)
        c = config[name]
        if name in config["supplementation"]:
            return {
                "result": result,
                "sites": ", ".join(c["sites"]),
                "architectures": ", ".join(c["classifier"]["architectures"]),
                "k": ", ".join(map(str, c["supplementation"]["k"])),
            }
        architectures = dict.fromkeys(
            a for v in c["variants"] for a in v["architectures"]
        )
        return {
            "result": result,
            "variants": ", ".join(variant_names(name)),
            "architectures": ", ".join(architectures),
            "methods": ", ".join(methods(name)),
        }

    return labels


def all_targets():
    targets = [
        f"results/figures/{d}_{kind}"
        for d in config["datasets"]
        for kind in ("alpha.pdf", "samples.png", "fidelity.pdf", "fingerprints.pdf")
    ] + [
        f"results/{d}/{table}.csv"
        for d in config["datasets"]
        for table in ("alpha_metrics", "detectability", "shortcut_summary")
    ]
    for d in config["datasets"]:
        if len(methods(d)) > 1:
            targets += [
                f"results/figures/{d}_mitigation.pdf",
                f"results/{d}/mitigation_summary.csv",
            ]
    if len(config["datasets"]) > 1:
        targets.append("results/figures/architectures_alpha.pdf")
    for study in config["supplementation"]:
        targets += [
            f"results/figures/{study}_supplementation.pdf",
            f"results/figures/{study}_supplementation_heatmap.pdf",
            f"results/{study}/replica_detectability.csv",
            f"results/{study}/supplementation_auroc.csv",
        ]
    return targets
