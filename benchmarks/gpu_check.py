"""The GPU check: the default MNIST run through Snakemake on one GPU, its figures per stage, the
training loops against bare PyTorch loops, and the tiny preset twice for determinism.

On a shared GPU box with its own torch and no internet (README "GPU"; the wheels come from
`benchmarks/gpu_wheels.py`, run beforehand on a machine with internet):

    python3 benchmarks/gpu_check.py --wheels .whl [--json out.json]

Here, on the CPU (the same steps, `device: cpu`):

    .venv/bin/python benchmarks/gpu_check.py --device cpu

Steps, each timed: (0) with `--wheels`, install them into WORKDIR/site (`pip --target`, no index, no
dependencies) and run the package from this source tree (PYTHONPATH=src:WORKDIR/site), on the
interpreter's own torch; (1) `snakemake all` on `--configfile` (default config/config.yaml) with
`device` set, in WORKDIR/default; print per stage the jobs' wall time, images/s (diffusion
training, sampling, classifier training, from the `perf` lines the jobs log) and the peak memory (GPU
memory torch allocated, per job; on the CPU the peak resident memory); (2) in this process, the
pipeline's classifier and diffusion training loops against bare PyTorch loops on the same model,
batch and precision (target ratio >= 0.9; benchmarks/classifier_step_rate.py and
diffusion_step_rate.py); (3) the tiny preset (`--repeat-configfile`, default config/test.yaml) run
twice in fresh directories, every metrics and predictions file compared byte for byte, and the job
logs searched for torch's warnings about ops without a deterministic kernel.

Target on one GPU: everything, set-up included, in <= 8 minutes. `--gpu-jobs K` lets K GPU jobs
share the GPU at a time (Snakemake's `--resources gpu=K`; default 4; README's single-GPU command
uses 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Modules the pipeline imports, and the distribution each comes from (for the report of versions).
NEEDED = {"torch": "torch", "torchvision": "torchvision", "snakemake": "snakemake", "diffusers": "diffusers",
          "mlxtend": "mlxtend", "jsonschema": "jsonschema", "nibabel": "nibabel", "lion_pytorch": "lion-pytorch",
          "pydicom": "pydicom", "openpyxl": "openpyxl", "h5py": "h5py", "pandas": "pandas", "seaborn": "seaborn",
          "scipy": "scipy", "yaml": "pyyaml"}
NONDETERMINISTIC = "does not have a deterministic implementation"
TARGET_RATIO, TARGET_MINUTES = 0.9, 8


def say(text: str = "") -> None:
    print(text, flush=True)


def install_wheels(wheels: Path, site: Path) -> float:
    """The carried wheels into ``site`` (no index, no dependencies: the box's own packages stay)."""
    t0 = time.perf_counter()
    found = sorted(wheels.glob("*.whl"))
    if not found:
        sys.exit(f"--wheels {wheels}: no .whl files there; make them with benchmarks/gpu_wheels.py")
    shutil.rmtree(site, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), *map(str, found)],
                   check=True)
    return time.perf_counter() - t0


def use_paths(site: Path | None) -> None:
    """The package from this source tree, then the carried wheels, for this process and the jobs."""
    paths = [str(ROOT / "src")] + ([str(site)] if site else [])
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p])
    sys.path[:0] = paths


def requirement_conflicts(site: Path) -> list[str]:
    """Requirements of the carried distributions that this machine's packages do not meet (they
    were installed without dependencies, beside the machine's own versions)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    problems = []
    for dist in metadata.distributions(path=[str(site)]):
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{dist.metadata['Name']} needs {req}: not installed")
                continue
            if req.specifier and not req.specifier.contains(have, prereleases=True):
                problems.append(f"{dist.metadata['Name']} needs {req}, this machine has {have}")
    return sorted(set(problems))


def check_imports() -> None:
    """Every module the pipeline needs, with its version; stops naming what is missing."""
    from importlib import import_module, metadata

    missing, versions = [], []
    for module, dist in NEEDED.items():
        try:
            import_module(module)
            versions.append(f"{dist} {metadata.version(dist)}")
        except Exception as e:  # noqa: BLE001 - a broken import is reported like a missing one
            missing.append(f"{module} ({type(e).__name__}: {e})")
    say("packages: " + ", ".join(versions))
    if missing:
        sys.exit("missing on this machine: " + "; ".join(missing)
                 + "\ncarry them as wheels (benchmarks/gpu_wheels.py, then --wheels .whl)")


def describe_device(device: str) -> dict:
    import torch

    from synthetic_simplicity.core.runtime import resolve_device, resolve_precision

    dev = resolve_device(device)
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": str(dev),
            "precision_auto": resolve_precision("auto", dev), "cpu_threads": torch.get_num_threads()}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                 "capability": ".".join(map(str, torch.cuda.get_device_capability(dev))),
                 "cuda": torch.version.cuda}
    return info


def snakemake_run(name: str, workdir: Path, configfiles: list[Path], sets: list[str], cores: int,
                  gpu_jobs: int | None, targets: list[str]) -> float:
    """Snakemake on ``targets`` in a fresh ``workdir``; its output goes to ``<workdir>.snakemake.log``."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    configs = dict.fromkeys([str(ROOT / "config/config.yaml"), *map(str, configfiles)])
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", *configs, "--config", *sets, "--cores", str(cores), "--workflow-profile", "none",
           *(["--resources", f"gpu={gpu_jobs}"] if gpu_jobs else []), *targets]
    log = workdir.with_name(workdir.name + ".snakemake.log")
    t0 = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - t0
    if code:
        say(f"{name}: snakemake failed (exit {code}) after {seconds:.0f} s; the end of {log}:")
        say("\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        sys.exit(1)
    return seconds


def stage_table(workdir: Path) -> list[dict]:
    """Per stage (rule folder): jobs and their wall time (benchmark files), and for stages whose jobs
    log ``perf`` records: images, images/s over the jobs' timed loops, peak memory of any job."""
    import pandas as pd

    from synthetic_simplicity.core.runtime import read_perf

    rows = {}
    for tsv in sorted((workdir / "results/benchmarks").rglob("*.tsv")):
        row = rows.setdefault(tsv.parent.name, {"stage": tsv.parent.name, "jobs": 0, "job_s": 0.0})
        row["jobs"] += 1
        row["job_s"] += float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])
    perf = defaultdict(lambda: {"images": 0, "seconds": 0.0, "gpu_peak_mib": None, "cpu_peak_rss_mib": 0.0})
    for log in sorted((workdir / "logs").rglob("*.log")):
        for rec in read_perf(log.read_text(errors="replace")):
            p = perf[(log.parent.name, rec["stage"])]
            p["images"] += rec["images"]
            p["seconds"] += rec["seconds"]
            if rec.get("gpu_peak_mib") is not None:
                p["gpu_peak_mib"] = max(p["gpu_peak_mib"] or 0.0, rec["gpu_peak_mib"])
            p["cpu_peak_rss_mib"] = max(p["cpu_peak_rss_mib"], rec["cpu_peak_rss_mib"])
    out = []
    for name, row in sorted(rows.items()):
        kinds = [(k, v) for (folder, k), v in sorted(perf.items()) if folder == name]
        for kind, p in kinds or [(None, None)]:
            entry = dict(row, work=kind)
            if p:
                entry |= {"images": p["images"], "images_per_s": p["images"] / p["seconds"] if p["seconds"] else None,
                          "gpu_peak_mib": p["gpu_peak_mib"], "cpu_peak_rss_mib": p["cpu_peak_rss_mib"]}
            out.append(entry)
    return out


def print_stages(rows: list[dict], wall: float) -> None:
    say(f"{'stage':<14}{'jobs':>5}{'job wall s':>12}  {'timed work':<20}{'images':>9}{'images/s':>10}"
        f"{'GPU peak MiB':>14}{'CPU peak RSS MiB':>18}")
    for r in rows:
        rate = f"{r['images_per_s']:.1f}" if r.get("images_per_s") else "-"
        gpu = f"{r['gpu_peak_mib']:.0f}" if r.get("gpu_peak_mib") is not None else "n/a"
        cpu = f"{r['cpu_peak_rss_mib']:.0f}" if r.get("cpu_peak_rss_mib") else "-"
        say(f"{r['stage']:<14}{r['jobs']:>5}{r['job_s']:>12.1f}  {r['work'] or '-':<20}{r.get('images', '-'):>9}"
            f"{rate:>10}{gpu:>14}{cpu:>18}")
    say(f"end to end (snakemake): {wall:.1f} s")


def loop_ratios(configfile: Path, sets: list[str], device: str, epochs: int, steps: int, rounds: int) -> dict:
    """The pipeline's training loops against bare loops, in this process, on the run's config."""
    import yaml
    from snakemake.utils import update_config

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import classifier_step_rate
    import diffusion_step_rate

    from synthetic_simplicity.core.config import validate_config

    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    update_config(raw, yaml.safe_load(configfile.read_text()))  # as snakemake merges --configfile
    for item in sets:  # KEY=YAML, as snakemake --config
        key, value = item.split("=", 1)
        update_config(raw, {key: yaml.safe_load(value)})
    config = validate_config(raw | {"device": device}, ROOT / "workflow/schemas/config.schema.yaml")
    return {"classifier": classifier_step_rate.rates(config, epochs, rounds=rounds),
            "diffusion": diffusion_step_rate.rates(config, steps, rounds=rounds)}


def compare_runs(a: Path, b: Path) -> tuple[int, list[str]]:
    """The metrics of two runs (every CSV and JSON under results/: per-run metrics and predictions,
    detectability, tables; not the timings): how many, and those that differ in any byte."""
    files = sorted(p.relative_to(a) for p in (a / "results").rglob("*")
                   if p.is_file() and p.suffix in (".csv", ".json") and "benchmarks" not in p.parts)
    differ = [str(f) for f in files if not (b / f).is_file() or (a / f).read_bytes() != (b / f).read_bytes()]
    return len(files), differ


def nondeterminism_warnings(*workdirs: Path) -> list[str]:
    found = set()
    for workdir in workdirs:
        for log in (workdir / "logs").rglob("*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if NONDETERMINISTIC in line:
                    found.add(line.split("UserWarning:")[-1].strip()[:160])
    return sorted(found)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--wheels", type=Path, help="folder of wheels to install first (benchmarks/gpu_wheels.py)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/synthetic-simplicity-gpu-check"))
    p.add_argument("--configfile", type=Path, default=ROOT / "config/config.yaml",
                   help="the run measured, merged over config/config.yaml")
    p.add_argument("--repeat-configfile", type=Path, default=ROOT / "config/test.yaml",
                   help="the preset run twice; when it is --configfile, the measured run is the first of the two")
    p.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                   help="config override for every run, as snakemake --config (repeatable)")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("--gpu-jobs", type=int, default=4, help="GPU jobs at a time (--resources gpu=K; CUDA only)")
    p.add_argument("--loop-epochs", type=int, default=10, help="classifier epochs per loop measurement")
    p.add_argument("--loop-steps", type=int, default=60, help="diffusion steps per loop measurement")
    p.add_argument("--rounds", type=int, default=3, help="measurements of each loop; the best counts")
    p.add_argument("--threads", type=int, help="torch threads of the loop measurements (default: torch's)")
    p.add_argument("--targets", nargs="+", default=["all"], help="Snakemake targets of every run (default: all)")
    p.add_argument("--json", type=Path, help="write every figure here too")
    args = p.parse_args()
    # Snakemake runs the jobs in their own directories: relative paths (PYTHONPATH's site) would miss
    args.workdir, args.configfile = args.workdir.resolve(), args.configfile.resolve()
    args.repeat_configfile = args.repeat_configfile.resolve()
    start = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    summary = {"args": {k: str(v) for k, v in vars(args).items()}}

    site = None
    if args.wheels:
        site = args.workdir / "site"
        summary["setup_s"] = install_wheels(args.wheels.resolve(), site)
        say(f"set-up: {len(list(args.wheels.glob('*.whl')))} wheels installed into {site} in "
            f"{summary['setup_s']:.1f} s")
    use_paths(site)
    if site:
        conflicts = requirement_conflicts(site)
        summary["requirement_conflicts"] = conflicts
        say(f"requirements of the carried wheels not met here: {len(conflicts)}")
        for c in conflicts:
            say(f"  {c}")
    check_imports()
    summary["environment"] = describe_device(args.device)
    say("environment: " + ", ".join(f"{k} {v}" for k, v in summary["environment"].items()))
    cuda = summary["environment"]["device"].startswith("cuda")
    sets = [f"device={args.device}", *args.set]
    gpu_jobs = args.gpu_jobs if cuda else None

    say(f"\n[1] snakemake {' '.join(args.targets)}: {args.configfile} with {' '.join(sets)}, --cores {args.cores}"
        + (f", --resources gpu={gpu_jobs}" if gpu_jobs else ""))
    main_dir = args.workdir / "default"
    wall = snakemake_run("default run", main_dir, [args.configfile], sets, args.cores, gpu_jobs, args.targets)
    summary["default_run"] = {"wall_s": wall, "stages": stage_table(main_dir)}
    print_stages(summary["default_run"]["stages"], wall)

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    say(f"\n[2] training loops against bare PyTorch loops, in this process (best of {args.rounds}, "
        f"{summary['environment']['cpu_threads'] if not args.threads else args.threads} CPU threads)")
    ratios = loop_ratios(args.configfile, args.set, args.device, args.loop_epochs, args.loop_steps, args.rounds)
    summary["loops"] = ratios
    for name, r in ratios.items():
        say(f"{name:<10} {r['device']} {r['precision']}: pipeline {r['pipeline_images_per_s']:.1f} images/s, bare "
            f"{r['bare_images_per_s']:.1f} images/s, ratio {r['ratio']:.3f} "
            f"({'meets' if r['ratio'] >= TARGET_RATIO else 'BELOW'} the target >= {TARGET_RATIO})")

    say(f"\n[3] {args.repeat_configfile} twice, metrics compared byte for byte")
    same = args.repeat_configfile.resolve() == args.configfile.resolve()
    first = main_dir if same else args.workdir / "repeat1"
    if not same:
        snakemake_run("repeat 1", first, [args.repeat_configfile], sets, args.cores, gpu_jobs, args.targets)
    second = args.workdir / "repeat2"
    snakemake_run("repeat 2", second, [args.repeat_configfile], sets, args.cores, gpu_jobs, args.targets)
    count, differ = compare_runs(first, second)
    warnings = nondeterminism_warnings(first, second)
    summary["repeat"] = {"files": count, "differ": differ, "identical": not differ and count > 0,
                         "nondeterministic_op_warnings": warnings}
    say(f"metrics identical: {'yes' if not differ and count else 'NO'} ({count} files compared"
        + (f"; differing: {', '.join(differ[:10])}" if differ else "") + ")")
    say(f"warnings about ops without a deterministic kernel: {len(warnings)}")
    for w in warnings:
        say(f"  {w}")

    total = time.perf_counter() - start
    summary["total_s"] = total
    say(f"\ntotal, set-up included: {total / 60:.1f} min"
        + (f" (target <= {TARGET_MINUTES} min on one GPU)" if cuda else " (on the CPU; the target is for a GPU)"))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
