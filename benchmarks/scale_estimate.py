"""Time and disk of the papers' protocols at full scale, from per-image rates: an estimate.

Rates. Every protocol needs a few workloads: a generator training step, a sampling (denoising)
step and a classifier training step, each at the protocol's model, image size and batch.
``--measure`` times them on this machine with the pipeline's own code
(``diffusion.training.train_diffusion``, ``synthesis.sampling.iter_samples``,
``classifier.training.train_classifier``) on random images of the protocol's size, --steps steps or
more after a warm-up, at the protocol's batch or, for large models, at fewer images
(--gflop-per-step); it also counts their models' FLOPs (``torch.utils.flop_counter``) and operators
(``torch.profiler``). ``--rates-out`` saves all of it; ``--rates FILE`` reads saved rates, e.g. a
GPU's, written in the same format by benchmarks/gpu_check:

    {"device": "NVIDIA H100", "gpu": true, "job_startup_s": 3.0,
     "rates": {"train_unet:mnist": 2400.0, "sample_unet:mnist": 9000.0, "train_classifier:cnn@28": 30000.0}}

(images per second at the protocol's batch; a sampling rate counts one image through one denoising
step; ``gpu`` devices are also costed on clusters of --gpus of them). Without a GPU's rates,
``--gpu-tflops`` turns the counts into ASSUMED GPU rates: a step takes its FLOPs at that sustained
throughput, or its operators at ``--gpu-launch-us`` each, whichever is longer (small models are
bound by kernel launches, not arithmetic).

Protocols. Each is a preset merged over config/config.yaml, plus the dataset size the preset needs:
- mnist: config/mnist_gpu.yaml, Study A's MNIST protocol (5 alphas x 5 seeds x cnn and resnet18, one
  generator) on the embedded digits (--mnist-per-digit 500);
- camus: config/camus_gpu.yaml at 256 px (--camus-patients 500, 2CH and 4CH, ED and ES frames);
- chexpert: config/chexpert.yaml, Study B on --chexpert-images 224,316 CheXpert images, real + k x 100 %
  synthetic (k <= 10) and synthetic only, --cxr-epochs epochs per classifier (Study B stopped early;
  its epochs are unknown). External mixing and the MIMIC-CXR test set are left out.
Counts follow the presets (alphas, seeds, architectures, variants, epochs, k) and, approximately,
the assembly's rules (a tenth of each class held out for validation).

Time on one device is the sum of the jobs (``--resources gpu=1`` runs them one at a time). A
classifier job adds its start-up (``job_startup_s``: --job-startup, measured by
benchmarks/classifier_job_cost.py, plus --cuda-init on a GPU) and its checkpoints (12 bytes a
parameter every epoch, written at --disk-gbps). On N GPUs each stage's jobs run N at a time, as the
DAG allows (Study B's replicas are one sampling job); the generator is one job trained on N GPUs
(``diffusion.gpus``, issue 15) at --ddp-efficiency. Disk: image sets as uint8 H x W in HDF5 with
gzip (--gzip-ratio; MNIST's ratio was measured, scans we have never seen get 1, no gain), models and
checkpoints from the models' parameter counts (fp32).

    python benchmarks/scale_estimate.py --measure [--rates-out cpu_rates.json]
    python benchmarks/scale_estimate.py --rates cpu_rates.json [--rates gpu_rates.json] [--gpus 1 8]
        [--gpu-tflops 100 --gpu-launch-us 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
PRESETS = {"mnist": ("config/mnist_gpu.yaml", "mnist", {}),
           "camus": ("config/camus_gpu.yaml", "camus", {"camus": {"data": {"image_size": 256}}}),
           "chexpert": ("config/chexpert.yaml", "chexpert", {})}
CXR_LABELS = 14


def protocol_config(name: str, runs_per_job: str | None) -> dict:
    """The preset merged over config/config.yaml and validated (defaults filled), as Snakemake reads it;
    ``runs_per_job`` overrides the preset's grouping of Study A's classifier runs."""
    from snakemake.utils import update_config

    from synthetic_simplicity.core.config import validate_config

    path, section, extra = PRESETS[name]
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    update_config(cfg, yaml.safe_load((ROOT / path).read_text()))
    update_config(cfg, extra)
    if runs_per_job and name != "chexpert":
        update_config(cfg, {section: {"classifier": {"runs_per_job": runs_per_job}}})
    return validate_config(cfg, SCHEMA)


# --------------------------------------------------------------------------- workloads


def workloads(name: str, cfg: dict) -> dict[str, dict]:
    """What a protocol trains and samples: workload key -> what to build and run (see measure())."""
    section = cfg[PRESETS[name][1]]
    size = section["data"]["image_size"] if name != "mnist" else 28
    generator = {"size": size, "diffusion": section["diffusion"], "synthesis": section["synthesis"],
                 "precision": section["diffusion"]["precision"], "conditions": 22 if name == "chexpert" else None}
    out = {f"train_unet:{name}": {"kind": "train_unet", "batch": section["diffusion"]["batch_size"], **generator},
           f"sample_unet:{name}": {"kind": "sample_unet", "batch": section["synthesis"]["batch_size"], **generator}}
    archs = section["classifier"]["architectures"] if name == "chexpert" else \
        sorted({a for v in section["variants"] for a in v["architectures"]}
               | {section["detectability"]["architecture"]})
    for arch in archs:
        out[f"train_classifier:{arch}@{size}"] = {"kind": "classifier", "arch": arch, "size": size,
                                                  "classes": CXR_LABELS if name == "chexpert" else 2,
                                                  "batch": section["classifier"]["batch_size"],
                                                  "classifier": section["classifier"]}
    return out


def model_of(spec: dict):
    """The pipeline's model of a workload, for counting its FLOPs and parameters."""
    if spec["kind"] == "classifier":
        from synthetic_simplicity.classifier.models import build_classifier

        return build_classifier(spec["arch"], 1, spec["classes"])
    from synthetic_simplicity.diffusion.model import build_unet

    return build_unet(spec["size"], 1, None if spec["conditions"] else 2, spec["diffusion"],
                      cond_dim=spec["conditions"])


@contextlib.contextmanager
def silent_stderr():
    """File descriptor 2 to /dev/null: torch.profiler's tracer prints notes there on every use."""
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def count_flops(spec: dict) -> tuple[float, int, int]:
    """FLOPs per image of one pass (forward and backward for training, forward for sampling; the
    optimizer left out), counted at batch 2 (batch norm in training needs two); the parameters; and
    the operators one step launches (the pass and, for training, an AdamW step over all parameters
    as on a GPU: foreach), each of which is at least one kernel launch on a GPU."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from synthetic_simplicity.diffusion.model import padded_size

    model = model_of(spec)
    train = spec["kind"] != "sample_unet"
    opt = torch.optim.AdamW(model.parameters(), foreach=True) if train else None

    def one_pass():
        with torch.set_grad_enabled(train):
            if spec["kind"] == "classifier":
                loss = model(torch.randn(2, 1, spec["size"], spec["size"])).float().sum()
            else:
                side = padded_size(spec["size"], len(spec["diffusion"]["block_out_channels"]))
                cond = torch.zeros(2, spec["conditions"]) if spec["conditions"] else torch.zeros(2, dtype=torch.long)
                out = model(torch.randn(2, 1, side, side), torch.tensor([10, 500]), class_labels=cond).sample
                loss = F.mse_loss(out, torch.zeros_like(out))
            if train:
                loss.backward()

    counter = FlopCounterMode(display=False)
    with counter:
        one_pass()
    with silent_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        one_pass()
        if train:
            opt.step()
    ops = sum(1 for e in prof.events() if e.name.startswith("aten::")
              and not (e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::")))
    return counter.get_total_flops() / 2, sum(p.numel() for p in model.parameters()), ops


def batch_for(spec: dict, flops: float, gflop_per_step: float) -> int:
    """The protocol's batch, or fewer images where a step would exceed ``gflop_per_step`` GFLOP."""
    return max(2, min(spec["batch"], int(gflop_per_step * 1e9 // flops)))


def measure_classifier(spec: dict, batch: int, steps: int, device) -> float:
    """Images per second of ``classifier.training.train_classifier`` (one epoch of ``steps`` batches,
    its checkpoint included) after a warm-up epoch."""
    import tempfile

    import numpy as np

    from synthetic_simplicity.classifier.training import train_classifier
    from synthetic_simplicity.core.runtime import resolve_precision

    rng = np.random.default_rng(0)
    n = batch * steps
    images = rng.integers(0, 256, (n, spec["size"], spec["size"]), dtype=np.uint8)
    labels = rng.random((n, spec["classes"])).round().astype(np.float32) if spec["classes"] > 2 \
        else rng.integers(0, 2, n)
    cfg = spec["classifier"] | {"epochs": 1, "batch_size": batch, "selection": "last", "patience": None,
                                "loader_workers": 0, "pretrained": None}
    precision = resolve_precision(cfg["precision"], device)
    with tempfile.TemporaryDirectory() as tmp:
        train_classifier(images[:batch], labels[:batch], spec["classes"], spec["arch"], cfg, 0, device, precision,
                         f"{tmp}/warm.pt", progress=False)
        t0 = time.perf_counter()
        train_classifier(images, labels, spec["classes"], spec["arch"], cfg, 0, device, precision,
                         f"{tmp}/timed.pt", progress=False)
        return n / (time.perf_counter() - t0)


def measure_generator(train: dict, sample: dict, train_batch: int, sample_batch: int, steps: int,
                      device) -> tuple[float, float]:
    """Images per second of ``diffusion.training.train_diffusion`` (``steps`` steps after a resumed
    warm-up step, as benchmarks/diffusion_step_rate.py) and image x denoising steps per second of
    ``synthesis.sampling.iter_samples`` with the protocol's sampler (``steps`` denoising steps)."""
    import tempfile

    import numpy as np

    from synthetic_simplicity.core.runtime import resolve_precision
    from synthetic_simplicity.diffusion.model import load_generator
    from synthetic_simplicity.diffusion.training import train_diffusion
    from synthetic_simplicity.synthesis.sampling import iter_samples, make_sampler

    rng = np.random.default_rng(0)
    n = max(train_batch, sample_batch)
    images = rng.integers(0, 256, (n, train["size"], train["size"]), dtype=np.uint8)
    conditions = rng.random((n, train["conditions"])).round().astype(np.float32) if train["conditions"] \
        else rng.integers(0, 2, n)
    classes = None if train["conditions"] else 2
    cfg = train["diffusion"] | {"batch_size": train_batch, "checkpoint_every": 10**9}
    precision = resolve_precision(train["precision"], device)
    with tempfile.TemporaryDirectory() as tmp:
        train_diffusion(images, conditions, classes, cfg | {"steps": 1}, 0, device, precision, tmp, progress=False)
        bundle = train_diffusion(images, conditions, classes, cfg | {"steps": 1 + steps}, 0, device, precision, tmp,
                                 progress=False)
    train_rate = bundle["stats"]["steps_per_s"] * train_batch
    synth = sample["synthesis"]
    model = load_generator(bundle, device)
    sampler = make_sampler(synth["sampler"], bundle["scheduler_config"], synth["clip_sample"])
    seeds = np.arange(sample_batch)
    precision = resolve_precision(synth["precision"], device)

    def run(k):
        t0 = time.perf_counter()
        for _ in iter_samples(model, sampler, conditions[:sample_batch], seeds, tuple(bundle["image_shape"]),
                              classes, k, synth["guidance_scale"], sample_batch, device, precision, progress=False):
            pass
        return time.perf_counter() - t0

    run(1)
    guidance = 2 if synth["guidance_scale"] != 1 else 1
    return train_rate, sample_batch * steps * guidance / run(steps)


# --------------------------------------------------------------------------- protocols


def protocol(name: str, cfg: dict, args) -> dict:
    """Jobs per stage: stage -> [(workload, images, runs, checkpoints)], images counted as training
    images (an evaluation image costs a third: forward only), runs the classifier runs (each job
    pays a start-up when it has any), checkpoints the per-epoch classifier checkpoints it writes;
    and the image sets' sizes for disk."""
    from synthetic_simplicity.core.config import job_runs

    section = cfg[PRESETS[name][1]]
    size = section["data"]["image_size"] if name != "mnist" else 28
    diff, synth, clf = section["diffusion"], section["synthesis"], section["classifier"]
    stages: dict[str, list] = {}
    stages["generator"] = [(f"train_unet:{name}", diff["steps"] * diff["batch_size"], 0, 0)]
    steps = synth["sampling_steps"] * (2 if synth["guidance_scale"] > 1 else 1)
    if name == "chexpert":
        train = round(args.chexpert_images * (1 - section["data"]["val_fraction"] - section["data"]["test_fraction"]))
        val = round(args.chexpert_images * section["data"]["val_fraction"])
        test = args.chexpert_images - train - val
        levels = section["supplementation"]
        k_max = max(levels["k"] + levels["synthetic_only_k"])
        stages["sampling"] = [(f"sample_unet:{name}", train * k_max * steps, 0, 0)]
        runs = [(1 + k) * train for k in levels["k"]] + [k * train for k in levels["synthetic_only_k"]]
        epochs = args.cxr_epochs
        stages["classifiers"] = [(f"train_classifier:{arch}@{size}", n * epochs + (val * epochs + test) / 3, 1, epochs)
                                 for arch in clf["architectures"] for n in runs for _ in clf["seeds"]]
        images = {"real.h5": train + val + test, "replicas.h5": train * k_max}
        return {"size": size, "stages": stages, "images": images, "runs": len(stages["classifiers"]),
                "test_images": test, "section": section, "runs_per_job": 1}
    if name == "mnist":
        per_class_train = round(args.mnist_per_digit * (1 - section["data"]["test_fraction"]))
        per_class_test = args.mnist_per_digit - per_class_train
        per_class_val_real = 0
    else:
        patients = args.camus_patients
        frames = 2  # ED and ES of each view (data.frames: ed_es)
        per_class_test = round(patients * section["data"]["test_fraction"]) * frames
        per_class_val_real = round(patients * section["data"]["val_fraction"]) * frames
        per_class_train = patients * frames - per_class_test - per_class_val_real
    pool = per_class_train + per_class_test  # a variant's synthetic pool: as many as the real images
    variants = section["variants"]
    stages["sampling"] = [(f"sample_unet:{name}", 2 * pool * steps, 0, 0) for _ in variants]
    hold = per_class_val_real or round(per_class_train * section["assembly"]["val_fraction"])
    n_train = 2 * (per_class_train - (0 if per_class_val_real else hold))
    n_val, n_test = 2 * hold, 4 * per_class_test
    det = section["detectability"]
    # Detectability: the task reference once, a real-vs-synthetic classifier per variant.
    stages["detectability"] = [(f"train_classifier:{det['architecture']}@{size}",
                                (2 * per_class_train * (1 if i == 0 else 2)) * det["epochs"], 1, det["epochs"])
                               for i in range(len(variants) + 1)]
    per_job = len(job_runs(section, "{alpha}", "{seed}"))
    run = n_train * clf["epochs"] + (n_val * clf["epochs"] + n_test) / 3
    jobs = []
    for v in variants:
        for method in clf["methods"]:
            for arch in v["architectures"]:
                runs = len(section["assembly"]["alphas"]) * len(clf["seeds"])
                jobs += [(f"train_classifier:{arch}@{size}", run * per_job, per_job, per_job * clf["epochs"])] \
                    * (runs // per_job)
    stages["classifiers"] = jobs
    images = {"real.h5": 2 * (per_class_train + per_class_test + per_class_val_real),
              "synthetic.h5 (all variants)": 2 * pool * len(variants)}
    return {"size": size, "stages": stages, "images": images, "runs": sum(j[2] for j in jobs),
            "test_images": n_test, "section": section, "runs_per_job": per_job}


def makespan(durations: list[float], workers: int) -> float:
    """Longest-first greedy assignment of jobs to workers: when the last one ends."""
    loads = [0.0] * workers
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


def stage_times(p: dict, rates: dict, startup: float, gpus: int, ddp_efficiency: float, params: dict | None,
                disk_gbps: float) -> dict[str, float]:
    """Seconds per stage: its jobs' images at the device's rates, plus a start-up per classifier job
    and the writing of each classifier checkpoint (weights and AdamW m, v: 12 bytes a parameter)."""
    out = {}
    for stage, jobs in p["stages"].items():
        durations = [images / rates[key] + (startup if runs else 0)
                     + (checkpoints * 12 * params[key] / (disk_gbps * 1e9) if params else 0)
                     for key, images, runs, checkpoints in jobs]
        if stage == "generator":
            out[stage] = sum(durations) / (gpus * ddp_efficiency if gpus > 1 else 1)
        else:
            out[stage] = makespan(durations, gpus)
    return out


def classifier_seconds(p: dict, device: dict, counted: dict | None, args) -> float:
    """The classifier jobs' time on one device, start-ups included."""
    one = stage_times({"stages": {"classifiers": p["stages"]["classifiers"]}}, device["rates"], device["job_startup_s"],
                      1, args.ddp_efficiency, counted["params"] if counted else None, args.disk_gbps)
    return one["classifiers"]


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.1f} MB"


def disk(name: str, p: dict, params: dict, gzip_ratio: float) -> list[tuple[str, float]]:
    """Bytes on disk: image sets, generator, classifiers; last, one running classifier job's
    checkpoints (kept until the job ends, so a retry reloads its finished runs)."""
    section, side = p["section"], p["size"]
    rows = [(f"{what}: {n:,} images x {side}x{side} uint8 / gzip {gzip_ratio:g}", n * side * side / gzip_ratio)
            for what, n in p["images"].items()]
    unet, diff = params[f"train_unet:{name}"], section["diffusion"]
    budgets = len({v["steps"] for v in section.get("variants", [])}) or 1
    rows.append((f"generator model.pt: EMA weights at {budgets} budget(s), {unet / 1e6:.1f} M parameters",
                 4 * unet * budgets))
    rows.append((f"generator checkpoints while it trains: {diff['keep_checkpoints']} x (weights, EMA, AdamW m, v)",
                 diff["keep_checkpoints"] * 16 * unet))
    runs: dict[str, int] = {}
    for key, _, n, _ in p["stages"]["classifiers"]:
        runs[key] = runs.get(key, 0) + n
    names = ", ".join(f"{n} x {key.split(':')[1]} ({params[key] / 1e6:.2f} M parameters)" for key, n in runs.items())
    rows.append((f"classifier model.pt: {names}", sum(4 * params[key] * n for key, n in runs.items())))
    rows.append((f"predictions.csv: {p['runs']} runs x {p['test_images']:,} test images x ~60 B",
                 p["runs"] * p["test_images"] * 60))
    rows.append((f"checkpoints of one running classifier job: {p['runs_per_job']} run(s) x (weights, AdamW m, v)",
                 p["runs_per_job"] * 12 * max(params[key] for key in runs)))
    return rows


def gpu_rates_from_flops(counted: dict, tflops: float, launch_us: float, specs: dict) -> dict:
    """ASSUMED GPU rates: a step at the protocol's batch takes its FLOPs at ``tflops`` sustained, or its
    operators at ``launch_us`` each (kernel launches, Python), whichever is longer."""
    rates = {}
    for key, spec in specs.items():
        step_s = max(spec["batch"] * counted["flops_per_image"][key] / (tflops * 1e12),
                     counted["ops_per_step"][key] * launch_us / 1e6)
        rates[key] = spec["batch"] / step_s
    return rates


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measure", action="store_true", help="time the workloads on this machine")
    p.add_argument("--gflop-per-step", type=float, default=100,
                   help="largest measured step; larger protocol batches are measured at fewer images")
    p.add_argument("--steps", type=int, default=3, help="fewest timed steps per workload, after a warm-up")
    p.add_argument("--gflop-measured", type=float, default=300, help="GFLOP to time per workload, at least")
    p.add_argument("--rates-out", type=Path)
    p.add_argument("--rates", type=Path, action="append", default=[], help="saved rates (JSON), one per device")
    p.add_argument("--gpu-tflops", type=float, help="assumed sustained TFLOP/s of a GPU, for rates from FLOPs")
    p.add_argument("--gpu-launch-us", type=float, default=10.0,
                   help="assumed GPU cost of one operator when kernel launches bound a step, microseconds")
    p.add_argument("--gpus", type=int, nargs="+", default=[1, 8])
    p.add_argument("--job-startup", type=float, default=2.8,
                   help="seconds per classifier job: start, imports, exit (benchmarks/classifier_job_cost.py here)")
    p.add_argument("--cuda-init", type=float, default=1.5, help="assumed CUDA set-up per GPU job, seconds")
    p.add_argument("--ddp-efficiency", type=float, default=0.9, help="assumed scaling of the generator on N GPUs")
    p.add_argument("--disk-gbps", type=float, default=1.0, help="assumed GB/s of writing checkpoints")
    p.add_argument("--gzip-ratio", type=float, default=1.0,
                   help="uint8 bytes / bytes on disk of CAMUS and CheXpert images (1: no gain assumed)")
    p.add_argument("--mnist-gzip-ratio", type=float, default=4.0,
                   help="the same for MNIST: 4.0 measured on the embedded digits' real.h5")
    p.add_argument("--mnist-per-digit", type=int, default=500, help="embedded MNIST; the full set has ~6,000")
    p.add_argument("--camus-patients", type=int, default=500)
    p.add_argument("--chexpert-images", type=int, default=224_316)
    p.add_argument("--cxr-epochs", type=int, default=20)
    p.add_argument("--protocols", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--runs-per-job", choices=["one", "seeds", "sweep"],
                   help="Study A's grouping (default: the preset's)")
    args = p.parse_args()

    configs = {name: protocol_config(name, args.runs_per_job) for name in args.protocols}
    specs = {k: v for name in args.protocols for k, v in workloads(name, configs[name]).items()}
    devices = []
    if args.measure:
        import torch

        device = torch.device("cpu")
        flops, params, ops, rates, batches, steps = {}, {}, {}, {}, {}, {}
        for key, spec in specs.items():
            flops[key], params[key], ops[key] = count_flops(spec)
            batches[key] = batch_for(spec, flops[key], args.gflop_per_step)
            # enough steps for about --gflop-measured GFLOP, so small models are timed for a while too
            steps[key] = max(args.steps, math.ceil(args.gflop_measured * 1e9 / (batches[key] * flops[key])))
        for key, spec in specs.items():
            t0 = time.perf_counter()
            if spec["kind"] == "classifier":
                rates[key] = measure_classifier(spec, batches[key], steps[key], device)
            elif spec["kind"] == "train_unet":
                sample_key = key.replace("train_unet", "sample_unet")
                rates[key], rates[sample_key] = measure_generator(spec, specs[sample_key], batches[key],
                                                                  batches[sample_key], steps[key], device)
            else:
                continue
            for k in (key, key.replace("train_unet", "sample_unet")) if spec["kind"] == "train_unet" else (key,):
                print(f"measured {k}: {rates[k]:.3g} images/s at batch {batches[k]}, {flops[k] / 1e9:.3g} GFLOP "
                      f"per image, {ops[k]} operators per step, {params[k] / 1e6:.2f} M parameters "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
        cpu = f"{os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}"
        saved = {"device": f"this CPU ({cpu})",
                 "job_startup_s": args.job_startup, "rates": rates, "measured_batch": batches,
                 "flops_per_image": flops, "ops_per_step": ops, "params": params}
        if args.rates_out:
            args.rates_out.write_text(json.dumps(saved, indent=1))
        devices.append(saved)
    devices += [json.loads(path.read_text()) for path in args.rates]
    if not devices:
        p.error("give --measure or --rates")
    counted = next((d for d in devices if "flops_per_image" in d), None)
    if args.gpu_tflops:
        if counted is None:
            p.error("--gpu-tflops needs counted FLOPs: --measure, or --rates from a measurement")
        devices.append({"device": f"GPU ASSUMED ({args.gpu_tflops:g} TFLOP/s, {args.gpu_launch_us:g} us per operator)",
                        "job_startup_s": args.job_startup + args.cuda_init, "gpu": True,
                        "rates": gpu_rates_from_flops(counted, args.gpu_tflops, args.gpu_launch_us, specs)})

    for name in args.protocols:
        pr = protocol(name, configs[name], args)
        print(f"\n== {name} ({PRESETS[name][0]}{' at 256 px' if name == 'camus' else ''}): "
              f"{pr['runs']} classifier runs, {pr['runs_per_job']} per job")
        for stage, jobs in pr["stages"].items():
            total = sum(job[1] for job in jobs)
            unit = {"generator": "training images", "sampling": "images x denoising steps"}.get(
                stage, "training images (evaluation images count a third)")
            print(f"  {stage}: {len(jobs)} job(s), {total:,.0f} {unit}")
        needed = {job[0] for jobs in pr["stages"].values() for job in jobs}
        for d in devices:
            missing = sorted(needed - set(d["rates"]))
            if missing:
                print(f"  {d['device']}: no rates for {missing}")
                continue
            for n in args.gpus if d.get("gpu") else [1]:
                times = stage_times(pr, d["rates"], d["job_startup_s"], n, args.ddp_efficiency,
                                    counted["params"] if counted else None, args.disk_gbps)
                startup = d["job_startup_s"] * sum(1 for job in pr["stages"]["classifiers"] if job[2])
                total = classifier_seconds(pr, d, counted, args)
                print(f"  {d['device']}, {n} device(s): {human(sum(times.values()))} = "
                      + ", ".join(f"{s} {human(t)}" for s, t in times.items())
                      + f"; classifier jobs start up for {human(startup)} of their {human(total)}")
        if counted:
            rows = disk(name, pr, counted["params"], args.mnist_gzip_ratio if name == "mnist" else args.gzip_ratio)
            print(f"  disk: {gb(sum(b for _, b in rows[:-1]))}, and {gb(rows[-1][1])} more while a classifier job runs")
            for label, b in rows:
                print(f"    {gb(b):>9}  {label}")

if __name__ == "__main__":
    main()
