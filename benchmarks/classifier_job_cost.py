"""Fixed cost of a Study A classifier job against its training time, on this machine.

The pipeline itself prepares the inputs of the default MNIST run (config/config.yaml: 720 training
images per run, 10 epochs, batch 64) in --workdir; its generator is cut to 4 steps, since only the
number and size of the synthetic images matter here. Then the runs of alpha 0.5 (--seeds of them)
train through Snakemake, grouped into jobs by ``classifier.runs_per_job`` (--runs-per-job); the
benchmark files give each job's wall time. The last job's generated script is run twice more outside
Snakemake:

- under ``python -X importtime``: which packages the job imports, who imports them, at what cost;
- under a timer that wraps the job's own functions: data load (HDF5 pools and manifests), device
  init (seeding, device, precision), training, prediction and writing. The imports are done first
  and timed apart (the Snakemake preamble's, then the job's), so no phase pays for them.

What is left is interpreter start-up, the rest of the script (the preamble unpickling its job, log
set-up) and interpreter exit (measured from the script's last line to the process's end).

No GPU is used. The GPU lines are an estimate: the job's fixed cost as measured here (start-up,
imports, exit), plus ``--cuda-init`` seconds for CUDA context and cuDNN/cuBLAS set-up, against
``--gpu-run`` seconds of GPU training per run; both are assumptions, printed as such, and applied to
the MNIST paper protocol (5 alphas x 5 seeds per architecture) under each ``runs_per_job``.

    python benchmarks/classifier_job_cost.py [--workdir DIR] [--arch cnn] [--seeds 3]
        [--runs-per-job seeds] [--cuda-init 1.5] [--gpu-run 0.5]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANT, ALPHA = "bench", "0.5"
# Inputs of the default run with a 4-step generator: the pools keep their default sizes.
BENCH_CONFIG = """\
mnist:
  diffusion: { steps: 4, batch_size: 8, block_out_channels: [8, 16], checkpoint_every: 2, grid_per_class: 2 }
  synthesis: { sampling_steps: 2, max_degenerate_fraction: 1.0 }
  variants: [ { name: bench, architectures: [%(arch)s] } ]
  classifier: { seeds: %(seeds)s, runs_per_job: %(unit)s }
"""
# The job's own functions, by the phase they belong to (module, attribute, phase).
PHASES = [
    ("synthetic_simplicity.classifier.jobs", "read_imageset", "data load"),
    ("synthetic_simplicity.classifier.jobs", "read_manifest", "data load"),
    ("synthetic_simplicity.classifier.jobs", "gather", "data load"),
    ("synthetic_simplicity.classifier.jobs", "job_runtime", "device init"),
    ("synthetic_simplicity.classifier.training", "train_classifier", "training"),
    ("synthetic_simplicity.classifier.training", "predict", "prediction"),
    ("synthetic_simplicity.classifier.training", "predictions_frame", "prediction"),
    ("synthetic_simplicity.classifier.jobs", "save_run", "writing"),
]
# Packages a classifier job should not need; the report says whether and by whom each is imported.
WATCH = ("diffusers", "torchvision", "scipy", "pandas", "sklearn", "matplotlib", "seaborn", "PIL", "h5py")
# The MNIST paper protocol per architecture: 5 alphas x 5 seeds, and the runs per job of each grouping.
PAPER_RUNS = 25
UNIT_RUNS = {"one": 1, "seeds": 5, "sweep": 25}


def run_phases(script: str, preamble: list[str], job: list[str]) -> None:
    """Child mode: import, then run ``script`` with the job's functions timed; print JSON."""
    import importlib
    import runpy

    t0 = time.perf_counter()
    started = time.time()
    for name in preamble:
        importlib.import_module(name)
    t1 = time.perf_counter()
    for name in job:
        importlib.import_module(name)
    t2 = time.perf_counter()
    spent: dict[str, float] = {}
    calls: dict[str, int] = {}
    depth = [0]

    def timed(fn, phase):
        def wrapper(*args, **kwargs):
            # An inner timed call (gather inside a prediction) counts for the outer phase only.
            depth[0] += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[phase] = spent.get(phase, 0.0) + time.perf_counter() - start
                    calls[phase] = calls.get(phase, 0) + 1
        return wrapper

    for module, attr, phase in PHASES:
        mod = importlib.import_module(module)
        setattr(mod, attr, timed(getattr(mod, attr), phase))
    t3 = time.perf_counter()
    runpy.run_path(script, run_name="__main__")
    t4 = time.perf_counter()
    print(json.dumps({"preamble_imports": t1 - t0, "job_imports": t2 - t1, "script": t4 - t3,
                      "phases": spent, "calls": calls, "started": started, "ended": time.time()}), flush=True)


def parse_importtime(stderr: str) -> list[tuple[int, int, int, str]]:
    """(level, self us, cumulative us, module) per line of ``-X importtime``, in printed order
    (a module is printed after everything it imported)."""
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        if m:
            rows.append((len(m.group(3)) // 2, int(m.group(1)), int(m.group(2)), m.group(4)))
    return rows


def importer(rows, i) -> str:
    """The top-level import under which row i was imported (itself if it is one)."""
    level = rows[i][0]
    for j in range(i, len(rows)):
        if rows[j][0] < level:
            level = rows[j][0]
            if level == 0:
                return rows[j][3]
    return rows[i][3]


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    configs = [str(ROOT / "config/config.yaml"), str(workdir / "bench.yaml")]
    return [str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory",
            str(workdir), "--configfile", *configs, "--workflow-profile", "none", "--quiet", "all", *args]


def median_wall(cmd: list[str], repeat: int = 5, **kwargs) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, **kwargs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/synthetic-simplicity-job-cost"))
    p.add_argument("--arch", default="cnn")
    p.add_argument("--seeds", type=int, default=3, help="classifier seeds, i.e. runs of alpha 0.5")
    p.add_argument("--runs-per-job", default="seeds", choices=["one", "seeds", "sweep"])
    p.add_argument("--cuda-init", type=float, default=1.5,
                   help="assumed seconds of CUDA context + cuDNN/cuBLAS set-up per process (GPU estimate)")
    p.add_argument("--gpu-run", type=float, default=0.5,
                   help="assumed seconds of GPU training per run (GPU estimate)")
    p.add_argument("--phases", nargs=3, metavar=("SCRIPT", "PREAMBLE", "JOB"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phases:
        script, preamble, job = args.phases
        return run_phases(script, [m for m in preamble.split(",") if m], [m for m in job.split(",") if m])

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    # sweep trains every alpha; here only alpha 0.5 exists, so it groups like seeds.
    (work / "bench.yaml").write_text(BENCH_CONFIG % {"arch": args.arch, "seeds": seeds, "unit": args.runs_per_job}
                                     + ("  assembly: { alphas: [0.5] }\n" if args.runs_per_job == "sweep" else ""))
    runs = [f"results/mnist/variants/{VARIANT}/runs/erm/{args.arch}/alpha{ALPHA}_seed{s}" for s in seeds]
    manifests = [f"results/mnist/variants/{VARIANT}/manifests/alpha{ALPHA}_seed{s}.h5" for s in seeds]
    t0 = time.perf_counter()
    subprocess.run(snakemake_cmd(work, "--cores", "2", "--", *manifests,
                                 f"results/mnist/variants/{VARIANT}/manifests/test.h5"), check=True)
    print(f"inputs ready in {time.perf_counter() - t0:.0f} s ({work})")

    # The job(s) through Snakemake, one at a time, keeping the generated scripts.
    for run in runs:
        for name in ("model.pt", "predictions.csv"):
            (work / run / name).unlink(missing_ok=True)
    bench = work / "results/benchmarks/classifier"
    for tsv in bench.glob("*.tsv"):
        tsv.unlink()
    scripts = work / ".snakemake/scripts"
    before = set(scripts.glob("*.py")) if scripts.is_dir() else set()
    t0 = time.perf_counter()
    subprocess.run(snakemake_cmd(work, "--cores", "1", "--skip-script-cleanup", "--",
                                 *[f"{r}/predictions.csv" for r in runs]), check=True)
    snakemake_wall = time.perf_counter() - t0
    job_walls = [float(t.read_text().splitlines()[1].split("\t")[0]) for t in sorted(bench.glob("*.tsv"))]
    script = max(set(scripts.glob("*train_classifier.py")) - before, key=lambda f: f.stat().st_mtime)

    # Imports of one job, as -X importtime sees them (it adds some overhead of its own).
    env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}
    startup_rows = parse_importtime(subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"],
                                                   capture_output=True, text=True, env=env).stderr)
    startup = {r[3] for r in startup_rows}
    rows = parse_importtime(subprocess.run([sys.executable, "-X", "importtime", str(script)], cwd=work,
                                           capture_output=True, text=True, check=True, env=env).stderr)
    top = [r[3] for r in rows if r[0] == 0 and r[3] not in startup]
    first_job = next(i for i, m in enumerate(top) if m.startswith("synthetic_simplicity"))
    preamble, job = top[:first_job], top[first_job:]
    cumulative = {r[3]: r[2] / 1e6 for r in rows if r[0] == 0}

    def biggest(names):
        """The costliest top-level imports of a group, as -X importtime measured them."""
        return ", ".join(f"{m} {cumulative[m]:.2f} s" for m in sorted(names, key=lambda m: -cumulative[m])[:3])

    by_package: dict[str, float] = {}
    for _, self_us, _, name in rows:
        if name not in startup:
            by_package[name.split(".")[0]] = by_package.get(name.split(".")[0], 0) + self_us / 1e6
    watched = {}
    for i, (_, _, cum, name) in enumerate(rows):
        if name in WATCH and name not in watched:
            watched[name] = (cum / 1e6, importer(rows, i))

    # The phases, with the imports done first.
    start_s = median_wall([sys.executable, "-c", "pass"])
    t0, launched = time.perf_counter(), time.time()
    out = subprocess.run([sys.executable, __file__, "--phases", str(script), ",".join(preamble), ",".join(job)],
                         cwd=work, capture_output=True, text=True, check=True, env=env)
    wall, exited = time.perf_counter() - t0, time.time()
    ph = json.loads(out.stdout.strip().splitlines()[-1])
    phases = ph["phases"]
    # Before the child's first line: interpreter start and this file's own imports; after its last
    # line: interpreter exit.
    before, after = ph["started"] - launched, exited - ph["ended"]
    rest = ph["script"] - sum(phases.values())
    training = phases.get("training", 0.0)
    n_runs = ph["calls"].get("training", 1)

    import torch

    print(f"\nStudy A classifier, {args.arch}, alpha {ALPHA}, seeds {seeds}, runs_per_job: {args.runs_per_job}; "
          f"default run sizes; torch {torch.__version__}, {os.cpu_count()} CPUs, threads 1 (the rule's), "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"Snakemake: {len(job_walls)} job(s) for {len(runs)} run(s); wall time per job (benchmark file): "
          + ", ".join(f"{s:.2f} s" for s in job_walls)
          + f"; {sum(job_walls) / len(runs):.2f} s per run; whole snakemake call {snakemake_wall:.1f} s")
    print(f"the last job's script run directly: {wall:.2f} s, of which")
    lines = [(f"interpreter start (python -c pass: {start_s:.2f} s) and this benchmark's own imports", before),
             (f"Snakemake preamble imports ({biggest(preamble)})", ph["preamble_imports"]),
             (f"job imports, including those made lazily during the job ({biggest(job)})", ph["job_imports"])]
    lines += [(f"{name} ({ph['calls'][name]} call(s))", phases[name])
              for name in ("data load", "device init", "training", "prediction", "writing") if name in phases]
    lines.append(("rest of the script: the preamble unpickling its job, log set-up", rest))
    lines.append(("interpreter exit", after))
    for label, s in lines:
        print(f"  {s:7.2f} s  {100 * s / wall:5.1f} %  {label}")
    fixed = start_s + ph["preamble_imports"] + ph["job_imports"] + rest + after
    per_run = (wall - fixed) / n_runs
    print(f"fixed cost per job (start, imports, rest, exit): {fixed:.2f} s; "
          f"per run (training {training / n_runs:.2f} s, "
          f"data, prediction, writing): {per_run:.2f} s; training share of this job {100 * training / wall:.0f} %")

    print("\nimports (python -X importtime, self time summed per top-level package, top 10):")
    for name, s in sorted(by_package.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {s:6.2f} s  {name}")
    for name in WATCH:
        if name in watched:
            cum, by = watched[name]
            print(f"  {name}: imported ({cum:.2f} s cumulative) under {by}")
        else:
            print(f"  {name}: not imported")

    gpu_fixed = fixed + args.cuda_init
    print(f"\nGPU ESTIMATE, not measured: fixed {gpu_fixed:.1f} s per job (this machine's {fixed:.1f} s + "
          f"{args.cuda_init:.1f} s CUDA/cuDNN set-up, assumed); {args.gpu_run:.2f} s of training per run (assumed). "
          f"MNIST paper protocol, per architecture ({PAPER_RUNS} runs):")
    print("  runs_per_job  jobs  start-up  training  training share")
    for unit, size in UNIT_RUNS.items():
        jobs = PAPER_RUNS // size
        train_s = PAPER_RUNS * args.gpu_run
        print(f"  {unit:12s}  {jobs:4d}  {jobs * gpu_fixed:6.1f} s  {train_s:6.1f} s  "
              f"{100 * train_s / (train_s + jobs * gpu_fixed):5.0f} %")


if __name__ == "__main__":
    main()
