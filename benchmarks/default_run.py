"""Wall time of the default run (config/config.yaml) end to end, per stage, on this machine.

Runs Snakemake in a fresh directory and sums the per-job times from the benchmark files and logs.
Target on 2 cores: <= 20 minutes.

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
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


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
        rows.append({"stage": tsv.parent.name, "job": tsv.stem, "s": pd.read_csv(tsv, sep="\t")["s"].iloc[0]})
    jobs = pd.DataFrame(rows)
    print(jobs.groupby("stage")["s"].agg(["count", "sum", "mean"]).round(1).to_string())
    print(f"\nend to end with --cores {args.cores}: {wall / 60:.1f} min (target <= 20 min on 2 cores)")
    print(f"results in {args.workdir}")


if __name__ == "__main__":
    main()
