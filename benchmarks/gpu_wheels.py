"""Prepare the wheels a shared GPU box lacks, for `benchmarks/gpu_check.py --wheels .whl` there.

Run on a development machine with internet (package registries) and the project's venv:

    .venv/bin/python benchmarks/gpu_wheels.py [--dest .whl] [--box benchmarks/gpu_box_packages.txt]

A typical GPU box has its own torch, torchvision, numpy, h5py, pandas, seaborn, scipy and much more,
and no internet. The pipeline needs a few packages more (Snakemake and its helpers, diffusers, mlxtend,
jsonschema, nibabel, lion-pytorch, pydicom, openpyxl, ...). This script walks the requirements of
this project (base, `[torch]` without torch and torchvision, Snakemake without the SLURM plugin) in
this venv, at the versions installed here (the pins), drops every distribution the box already has
(`--box`: one name a line; the default list is the image of the lent GPU machines, read from their
notes on 2026-11-17), and downloads the rest as wheels for CPython 3.12 on manylinux x86_64 (a
package that ships no wheel is built here into a pure-Python one). Nothing is installed here. The
total must fit in what travels with the working tree to the box (64 MiB with the tree itself).

The package itself never becomes a wheel: on the box it runs from the source tree (PYTHONPATH=src),
so the box's own torch stays the one in use.
"""

import argparse
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# The box's Python: markers are evaluated for it, and wheels are fetched for it.
TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
          "platform_machine": "x86_64", "os_name": "posix", "extra": ""}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"]
# What the project's own requirements bring that the box must not take from us: its own torch stack,
# and the SLURM plugin (a cluster's login node installs the full `[workflow]` extra instead).
NOT_CARRIED = {"torch", "torchvision", "snakemake-executor-plugin-slurm", "synthetic-simplicity"}
LIMIT_MIB = 64


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def roots() -> list[Requirement]:
    """The project's requirements for running the pipeline: base, [torch] and Snakemake."""
    reqs = [Requirement(r) for r in metadata.requires("synthetic-simplicity") or []]
    wanted = []
    for r in reqs:
        extra = re.search(r'extra == "([^"]+)"', str(r.marker)) if r.marker else None
        if extra is None or extra[1] in ("torch", "workflow"):
            wanted.append(Requirement(str(r).split(";")[0]))
    return wanted


def closure(box: set[str]) -> dict[str, str]:
    """name -> version installed here, of every distribution the roots need that the box lacks."""
    todo, seen, missing = list(roots()), set(), {}
    while todo:
        req = todo.pop()
        name = canonical(req.name)
        if name in seen or name in NOT_CARRIED or (req.marker and not req.marker.evaluate(TARGET)):
            continue
        seen.add(name)
        if name in box:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"{req.name} is needed on the box but not installed here; install the project's venv first "
                     f"(README: `pip install -e .[test]`)")
        missing[name] = dist.version
        todo.extend(Requirement(r) for r in dist.requires or [])
    return missing


def download(name: str, version: str, dest: Path) -> None:
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", *platforms, "-d", str(dest), f"{name}=={version}"]
    if subprocess.run(cmd).returncode == 0:
        return
    print(f"  {name}=={version}: no wheel for CPython 3.12 manylinux x86_64 on the registry; building a "
          f"pure-Python one here")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), f"{name}=={version}"],
                   check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", type=Path, default=ROOT / ".whl")
    p.add_argument("--box", type=Path, default=ROOT / "benchmarks/gpu_box_packages.txt",
                   help="distributions the GPU box already has, one name a line")
    p.add_argument("--list", action="store_true", help="only print what would be downloaded")
    args = p.parse_args()
    box = {canonical(line.strip()) for line in args.box.read_text().splitlines()
           if line.strip() and not line.startswith("#")}
    missing = closure(box)
    print(f"{len(missing)} distributions the box lacks: "
          + ", ".join(f"{n}=={v}" for n, v in sorted(missing.items())))
    if args.list:
        return
    if args.dest.exists():
        shutil.rmtree(args.dest)
    args.dest.mkdir(parents=True)
    for name, version in sorted(missing.items()):
        download(name, version, args.dest)
    wheels = sorted(args.dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels) / 2**20
    tree = sum((ROOT / f).stat().st_size for f in subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        if (ROOT / f).is_file()) / 2**20
    print(f"{len(wheels)} wheels, {total:.1f} MiB in {args.dest}; tracked files {tree:.1f} MiB; together "
          f"{total + tree:.1f} MiB of the {LIMIT_MIB} MiB that travel")
    if total + tree > LIMIT_MIB:
        sys.exit(f"over {LIMIT_MIB} MiB: the device machine would refuse the tree; carry fewer wheels")


if __name__ == "__main__":
    main()
