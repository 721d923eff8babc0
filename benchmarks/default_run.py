"""Wall time of the default run (config/config.yaml) end to end, per stage, on this machine.

Runs Snakemake in a fresh directory and sums the per-job times from the benchmark files and logs.
Target on 2 cores: <= 15 minutes (issue 12).

    python benchmarks/default_run.py [--cores 2] [--workdir DIR] [--configfile FILE] [-- SNAKEMAKE ARGS]

FILE is merged over config/config.yaml, as `snakemake --configfile FILE` does in the repository, e.g.
Study B's MNIST demo: `--configfile config/mnist_supplementation.yaml`.

Arguments after `--` go to Snakemake, e.g. the CAMUS CPU smoke preset on a fixture tree:
    python -m synthetic_simplicity.data.fixtures nifti /tmp/camus50 --patients 50
    python benchmarks/default_run.py --configfile config/camus.yaml -- \
        --config 'camus={"data":{"root":"/tmp/camus50"}}'
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def logged_span(log: Path) -> float:
    """Seconds between the first and the last timestamped line of a job log (0 without two)."""
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", log.read_text(errors="replace"), re.M) \
        if log.is_file() else []
    if len(stamps) < 2:
        return 0.0
    first, last = (datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/synthetic-simplicity-default-run"))
    p.add_argument("--configfile", type=Path, default=ROOT / "config/config.yaml")
    p.add_argument("snakemake_args", nargs="*", help="passed on to Snakemake (after --)")
    args = p.parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    snakemake = Path(sys.executable).parent / "snakemake"
    # In another directory the Snakefile's `configfile: config/config.yaml` finds nothing, so it is
    # given here, with the preset merged over it as in a run from the repository.
    configfiles = dict.fromkeys([str(ROOT / "config/config.yaml"), str(args.configfile.resolve())])
    cmd = [str(snakemake), "-s", str(ROOT / "Snakefile"), "--directory", str(args.workdir), "--configfile",
           *configfiles, "--cores", str(args.cores), "--workflow-profile", "none", "--quiet", *args.snakemake_args]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=os.environ)
    wall = time.perf_counter() - t0
    rows = []
    for tsv in sorted((args.workdir / "results/benchmarks").rglob("*.tsv")):
        total = pd.read_csv(tsv, sep="\t")["s"].iloc[0]
        work = logged_span(args.workdir / "logs" / tsv.parent.name / f"{tsv.stem}.log")
        rows.append({"stage": tsv.parent.name, "job": tsv.stem, "s": total, "logged_s": work,
                     "startup_s": total - work})
    jobs = pd.DataFrame(rows)
    # logged_s: first to last line of the job's log (the work itself); startup_s: the rest of the job's
    # wall time (interpreter start, imports, reading the inputs before the first log line).
    print(jobs.groupby("stage")[["s", "logged_s", "startup_s"]].agg(["count", "sum", "mean"]).round(1)
          .drop(columns=[("logged_s", "count"), ("startup_s", "count")]).to_string())
    print(f"\nend to end with --cores {args.cores}: {wall / 60:.1f} min (target <= 15 min on 2 cores)")
    print(f"results in {args.workdir}")


if __name__ == "__main__":
    main()
