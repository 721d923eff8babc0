"""Throughput and peak memory of the chest X-ray data path at scale, against a classifier's step rate.

For each N (default 5,000 and 20,000 images): the data stage (``data.jobs.supplementation_real``: JPEG
decode + resize to 256x256 in ``--threads`` threads, streamed in batches into HDF5) and the classifier
loader (``imageset.H5Images`` + ``classifier.iter_batches``: shuffled batches of 32 from the training
split, in 0 or more worker processes) each run in a fresh subprocess, which reports its wall time and
its peak RSS (``VmHWM``; a loader's workers are reported separately, as the largest worker). Then
one training step (forward + backward + AdamW, batch 32 of 1x256x256, 14 labels) of ResNet-18 and
DenseNet-121 is timed, so the loader's rate can be set against the rate it has to feed.

The claim under test: both the stage and the loader hold batches, never the whole set, so their peak
RSS stays flat from 5k to 20k images, and the loader is not what limits a training epoch. The loader
yields uint8 batches (the training loop converts them to float on its device; "to tensor" in the read
breakdown is that conversion on the CPU). Every N reads the same number of batches, so allocator
effects that grow with the batches made, not with N, cannot pass for growth with N.

One CheXpert-layout fixture tree (``fixtures.write_chexpert_tree``, JPEGs up to ``--jpeg-size``, by
default CheXpert-small-like 320x390) is written for the largest N, timed apart from the measurements;
smaller N use its first patients (the stage's ``max_patients``). Files are read from a warm page
cache (they were just written). The tree and the HDF5 files are deleted at the end unless ``--keep``.

    python benchmarks/imageset_throughput.py [--sizes 5000 20000] [--workdir DIR] [--threads 2]
        [--workers 0 2] [--batches 200] [--steps 3] [--device cpu|cuda] [--keep]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH = 32
IMAGE_SIZE = 256
ROOT = Path(__file__).resolve().parents[1]


def status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_now_mib() -> float:
    return status_mib("VmRSS")


def peak_mib() -> float:
    """This process's peak RSS. Not ``ru_maxrss``: Linux carries the parent's high-water mark into an
    exec'd child's ``ru_maxrss`` (it read ~560 MiB, the parent's size with torch, in a 240 MiB stage child)."""
    return status_mib("VmHWM")


def children_peak_mib() -> float:
    """The largest peak RSS of the waited-for forked children (DataLoader workers), pages shared with
    this process included."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB


# ---------------------------------------------------------------- children (one fresh process per measure)

def child_stage(spec: dict) -> dict:
    from synthetic_simplicity.core.config import validate_config
    from synthetic_simplicity.data import jobs

    # The site and data sections as a run gets them: the schema fills every key not set here.
    site = {"format": "chexpert", "root": spec["root"], "views": "all", "max_patients": spec["max_patients"]}
    study = validate_config({"chexpert": {"sites": {"chexpert": site}, "data": {"image_size": IMAGE_SIZE}}},
                            ROOT / "workflow/schemas/config.schema.yaml")["chexpert"]
    base = rss_now_mib()
    t0 = time.perf_counter()
    jobs.supplementation_real(spec["out"], "chexpert", study["sites"]["chexpert"], study["data"], 0,
                                threads=spec["threads"], progress=False)
    return {"wall_s": time.perf_counter() - t0, "base_mib": base, "peak_mib": peak_mib()}


def child_load(spec: dict) -> dict:
    import torch

    from synthetic_simplicity.classifier.training import iter_batches
    from synthetic_simplicity.core.imageset import SPLITS, H5Images, read_imageset

    train = np.flatnonzero(read_imageset(spec["path"], images=False).split == SPLITS["train"])
    images = H5Images(spec["path"]).view(train)
    # Shuffled epochs (as training reads them) until spec["batches"] batches, so every N reads as many
    # batches: worker RSS grows with the batches a worker has made (the allocator), not with N.
    rng, batches = np.random.default_rng(0), []
    while not batches or len(batches) < spec["batches"]:
        order = rng.permutation(len(images))
        batches += [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    batches = batches[: spec["batches"]] if spec["batches"] else batches
    base = rss_now_mib()
    n, t0 = 0, time.perf_counter()
    for x in iter_batches(images, batches, spec["workers"]):
        assert x.dtype == torch.uint8 and x.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE)
        n += len(x)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "images": n, "train_rows": len(train), "base_mib": base, "peak_mib": peak_mib(),
            "worker_peak_mib": children_peak_mib() if spec["workers"] else None}


def run_child(kind: str, spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps({"kind": kind, **spec})],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{kind} child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- in-process measures

def fixture_images(n_patients: int) -> int:
    """Images in ``write_chexpert_tree(n_patients)`` (views "all"): train patient i has 1 + i % 3 studies,
    the last max(1, n // 10) patients are valid/ with one study, and study k adds a lateral when
    (i + k) % 3 == 0. main() checks it against the JPEGs written."""
    n_valid = max(1, n_patients // 10)
    total = 0
    for i in range(1, n_patients + 1):
        studies = 1 if i > n_patients - n_valid else 1 + i % 3
        total += sum(1 + ((i + k) % 3 == 0) for k in range(1, studies + 1))
    return total


def patients_for(root: Path, n: int) -> int:
    """The fewest first patients (in the stage's sorted order) holding at least n images of the tree."""
    import pandas as pd

    release = root / "CheXpert-v1.0-small"
    paths = pd.concat([pd.read_csv(release / f"{s}.csv", usecols=["Path"]) for s in ("train", "valid")])["Path"]
    counts = paths.str.split("/").str[2].value_counts().sort_index()
    return int(np.searchsorted(counts.cumsum().to_numpy(), n) + 1)


def read_breakdown(path: Path, n_batches: int = 40) -> dict:
    """ms per random batch of 32 rows: H5Images (one slice per run of consecutive rows), the same rows
    read one slice per row, one whole-chunk slice per chunk touched, 32 whole
    chunks in one contiguous read (the inflate floor of a random batch), 32 contiguous rows (an unshuffled
    batch, ~11 chunks) and the float conversion. Each method gets its own random rows, so none reads
    chunks another left in HDF5's chunk cache."""
    import h5py

    from synthetic_simplicity.core.imageset import H5Images
    from synthetic_simplicity.core.runtime import images_to_tensor

    images = H5Images(path)
    rng = np.random.default_rng(1)
    out = {}
    with h5py.File(path, "r") as f:
        dset = f["images"]
        chunk = dset.chunks[0]

        def h5images(b):
            return images[b]

        def per_row(b):
            return np.stack([dset[int(r)] for r in b])

        def per_chunk(b):
            starts, inverse = np.unique(b // chunk * chunk, return_inverse=True)
            blocks = np.concatenate([dset[int(c) : int(c) + chunk] for c in starts])
            offset = np.concatenate([[0], np.cumsum([min(chunk, len(dset) - int(c)) for c in starts])[:-1]])
            return blocks[offset[inverse] + b - starts[inverse]]

        def whole_chunks(b):
            start = min(int(b[0]) // chunk, len(dset) // chunk - BATCH) * chunk
            return dset[start : start + BATCH * chunk]

        def contiguous(b):
            start = min(int(b[0]), len(dset) - BATCH)
            return dset[start : start + BATCH]

        probe = np.sort(rng.choice(len(images), BATCH, replace=False))
        x = images[probe]
        assert np.array_equal(per_chunk(probe), x) and np.array_equal(per_row(probe), x)
        for name, fn in [("h5images", h5images), ("per_row", per_row), ("per_chunk", per_chunk),
                         ("whole_chunks", whole_chunks), ("contiguous", contiguous),
                         ("to_tensor", lambda b: images_to_tensor(x))]:
            batches = [np.sort(rng.choice(len(images), BATCH, replace=False)) for _ in range(n_batches)]
            fn(probe)  # warm-up on rows already read above
            t0 = time.perf_counter()
            for b in batches:
                fn(b)
            out[name] = (time.perf_counter() - t0) / n_batches * 1000
        out["chunk_images"] = chunk
    return out


def step_rate(arch: str, device, precision: str, steps: int) -> float:
    import torch
    import torch.nn.functional as F

    from synthetic_simplicity.classifier.models import build_classifier
    from synthetic_simplicity.core.runtime import autocast

    torch.manual_seed(0)
    model = build_classifier(arch, 1, 14).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=3e-4)
    x = torch.randn(BATCH, 1, IMAGE_SIZE, IMAGE_SIZE, device=device)
    y = torch.randint(0, 2, (BATCH, 14), device=device).float()
    for i in range(1 + steps):  # one warm-up step
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with autocast(device, precision):
            loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * BATCH / (time.perf_counter() - t0)


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000], help="images per set")
    p.add_argument("--workdir", type=Path, default=None, help="default: a new folder in the temp dir")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="data stage decode threads")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader worker processes")
    p.add_argument("--batches", type=int, default=200, help="shuffled batches of 32 read per loader run (0: an epoch)")
    p.add_argument("--jpeg-size", type=int, nargs=2, default=[320, 390], metavar=("W", "H"),
                   help="largest fixture JPEG (CheXpert-small-like by default)")
    p.add_argument("--archs", nargs="+", default=["resnet18", "densenet121"])
    p.add_argument("--steps", type=int, default=3, help="timed training steps after one warm-up")
    p.add_argument("--device", default="cpu", help="for the training step: cpu | cuda | auto")
    p.add_argument("--precision", default="fp32", help="for the training step: fp32 | bf16 | auto")
    p.add_argument("--keep", action="store_true", help="keep the fixture tree and the HDF5 files")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps({"stage": child_stage, "load": child_load}[spec["kind"]](spec)))
        return

    import h5py
    import torch

    from synthetic_simplicity.data.fixtures import write_chexpert_tree
    from synthetic_simplicity.core.runtime import resolve_device, resolve_precision

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    own_workdir = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="imageset-throughput-")) if own_workdir else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    tree = work / "chexpert"
    print(f"cpus={os.cpu_count()} torch threads={torch.get_num_threads()} load average at start {load_avg()}")
    stage_rows, load_rows, reads = [], [], {}
    try:
        n_max = max(args.sizes)
        n_patients = int(n_max / 2.6)
        while fixture_images(n_patients) < n_max:
            n_patients += 1
        if tree.exists():
            shutil.rmtree(tree)
        t0 = time.perf_counter()
        write_chexpert_tree(tree, n_patients, seed=0, demographics=False, image_size=tuple(args.jpeg_size))
        t_fix = time.perf_counter() - t0
        written = sum(1 for _ in tree.rglob("*.jpg"))
        if written != fixture_images(n_patients):
            sys.exit(f"fixture layout changed: {written} JPEGs, fixture_images() says {fixture_images(n_patients)}")
        jpeg_kib = sum(f.stat().st_size for f in tree.rglob("*.jpg")) / written / 1024
        print(f"fixture: {written} JPEGs of {n_patients} patients (<= {args.jpeg_size[0]}x{args.jpeg_size[1]}, "
              f"{jpeg_kib:.0f} KiB mean) written in {t_fix:.0f} s (not part of any measure)", flush=True)

        for n in sorted(args.sizes):
            h5 = work / f"chexpert_{n}.h5"
            for f in (h5, h5.with_name(h5.name + ".partial")):
                f.unlink(missing_ok=True)
            max_patients = None if n == n_max else patients_for(tree, n)
            r = run_child("stage", {"root": str(tree), "max_patients": max_patients, "out": str(h5),
                                    "threads": args.threads})
            with h5py.File(h5, "r") as f:
                n_img = f["images"].shape[0]
            stage_rows.append({"N": n_img, **r, "img_s": n_img / r["wall_s"], "file_mib": h5.stat().st_size / 2**20})
            print(f"N={n_img}: data stage {r['wall_s']:.1f} s, {n_img / r['wall_s']:.0f} img/s, "
                  f"peak RSS {r['peak_mib']:.0f} MiB (load {load_avg()})", flush=True)
            for w in args.workers:
                r = run_child("load", {"path": str(h5), "workers": w, "batches": args.batches})
                load_rows.append({"N": n_img, "workers": w, **r, "img_s": r["images"] / r["wall_s"]})
                print(f"N={n_img}: loader workers={w} {r['images'] / r['wall_s']:.0f} img/s, "
                      f"peak RSS {r['peak_mib']:.0f} MiB (load {load_avg()})", flush=True)
            reads[n_img] = read_breakdown(h5)

        steps = {}
        for arch in args.archs:
            steps[arch] = step_rate(arch, device, precision, args.steps)
            print(f"{arch}: {steps[arch]:.1f} img/s per training step (load {load_avg()})", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(tree, ignore_errors=True)
            for f in work.glob("chexpert_*.h5*"):
                f.unlink()
            if own_workdir:
                shutil.rmtree(work, ignore_errors=True)

    print(f"\n=== data stage: JPEG decode + resize to {IMAGE_SIZE}x{IMAGE_SIZE} -> HDF5, threads={args.threads}, "
          "one subprocess per N ===")
    print(f"{'N':>7} {'wall s':>8} {'img/s':>7} {'file MiB':>9} {'RSS after imports':>18} {'peak RSS MiB':>13}")
    for r in stage_rows:
        print(f"{r['N']:>7} {r['wall_s']:>8.1f} {r['img_s']:>7.0f} {r['file_mib']:>9.0f} {r['base_mib']:>18.0f} "
              f"{r['peak_mib']:>13.0f}")
    nb = f"{args.batches} shuffled batches" if args.batches else "one shuffled epoch"
    print(f"\n=== classifier loader: H5Images + iter_batches, {nb} of {BATCH} from the train split, "
          "one subprocess per run ===")
    print(f"{'N':>7} {'train':>6} {'workers':>7} {'img/s':>7} {'ms/batch':>9} {'RSS before':>11} "
          f"{'peak RSS MiB':>13} {'worker peak':>12}")
    for r in load_rows:
        wp = "-" if r["worker_peak_mib"] is None else f"{r['worker_peak_mib']:.0f}"
        print(f"{r['N']:>7} {r['train_rows']:>6} {r['workers']:>7} {r['img_s']:>7.0f} "
              f"{BATCH * 1000 / r['img_s']:>9.1f} {r['base_mib']:>11.0f} {r['peak_mib']:>13.0f} {wp:>12}")
    print(f"\n=== HDF5 read breakdown, ms per random batch of {BATCH} (in this process, no DataLoader) ===")
    print(f"{'N':>7} {'imgs/chunk':>10} {'H5Images':>9} {'row by row':>11} {'chunk by chunk':>15} "
          f"{'32 whole chunks':>16} {'32 contiguous rows':>19} {'to tensor':>10}")
    for n, r in reads.items():
        print(f"{n:>7} {r['chunk_images']:>10} {r['h5images']:>9.1f} {r['per_row']:>11.1f} {r['per_chunk']:>15.1f} "
              f"{r['whole_chunks']:>16.1f} {r['contiguous']:>19.1f} {r['to_tensor']:>10.1f}")
    print(f"\n=== training step: batch {BATCH} of 1x{IMAGE_SIZE}x{IMAGE_SIZE}, 14 labels, AdamW, {precision}, {device}, "
          f"{args.steps} steps after 1 warm-up ===")
    for arch, rate in steps.items():
        print(f"{arch:>12}: {rate:8.1f} img/s ({BATCH / rate:.3f} s/step)")

    print("\n=== verdict ===")
    largest = max(r["N"] for r in load_rows)
    for r in [r for r in load_rows if r["N"] == largest]:
        for arch, rate in steps.items():
            share = rate / r["img_s"]  # loader time per batch / step time per batch
            print(f"loader (N={largest}, workers={r['workers']}) {r['img_s']:.0f} img/s vs {arch} step {rate:.1f} img/s: "
                  f"reading a batch costs {100 * share:.1f} % of a step -> "
                  f"{'the loader is NOT the bottleneck' if share < 1 else 'the LOADER is the bottleneck'}")
        print(f"  (with workers={r['workers']} a model stepping faster than {r['img_s']:.0f} img/s, e.g. on a GPU, "
              "would wait for this loader)")
    if len(stage_rows) > 1:
        a, b = stage_rows[0], stage_rows[-1]
        print(f"data stage peak RSS N={a['N']} -> {b['N']}: {a['peak_mib']:.0f} -> {b['peak_mib']:.0f} MiB "
              f"({b['peak_mib'] - a['peak_mib']:+.0f} MiB for {b['N'] / a['N']:.1f}x the images)")
        for w in args.workers:
            rs = [r for r in load_rows if r["workers"] == w]
            print(f"loader workers={w} peak RSS N={rs[0]['N']} -> {rs[-1]['N']}: {rs[0]['peak_mib']:.0f} -> "
                  f"{rs[-1]['peak_mib']:.0f} MiB ({rs[-1]['peak_mib'] - rs[0]['peak_mib']:+.0f} MiB)")
    print(f"load average at end {load_avg()}")


if __name__ == "__main__":
    main()
