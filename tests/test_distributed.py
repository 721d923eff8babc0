"""The generator on several processes (diffusion.gpus): DDP with gloo on the CPU, 2 processes, a tiny UNet.

Two processes sharing each step's global batch train what one process trains with that batch, up to
the order of floating-point sums; a 2-process run killed mid-way resumes bit-identically; bad process
counts stop with the key to change.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from synthetic_simplicity.core.config import ConfigError
from synthetic_simplicity.core.errors import PipelineError
from synthetic_simplicity.core.imageset import ImageSet, open_images, write_imageset
from synthetic_simplicity.diffusion.distributed import check_gpus, train_on_processes
from synthetic_simplicity.diffusion.jobs import generator_inputs
from synthetic_simplicity.diffusion.model import load_generator
from synthetic_simplicity.diffusion.training import train_diffusion
from test_diffusion import assert_state_equal, steps_on_disk, tiny_cfg

CPU = torch.device("cpu")
SECTION = "chexpert.diffusion"
# Widths 16/32: a group of GroupNorm holds two channels. With one channel per group (widths of 8) a
# conv bias is normalised away, its gradient is zero up to rounding, and Adam turns that rounding
# into steps of +-lr that differ between any two summation orders (measured 0.012 after 20 steps).
CFG = tiny_cfg(steps=60, checkpoint_every=4, block_out_channels=[16, 32])
# The attention's key bias is the other such parameter (softmax ignores it), at any width: compared
# through the outputs only. Measured after 60 steps: key bias 4.0e-4, every other weight <= 7.0e-6,
# outputs 2.9e-6; giving both processes the same half of the batch instead moved the weights by 0.04
# and the outputs by 0.6 (20 steps).
WEIGHT_ATOL, OUTPUT_ATOL = 1e-4, 1e-4


@pytest.fixture(scope="module")
def real_h5(tmp_path_factory):
    """Study B's case: 22-number conditions, images streamed from an image-set file."""
    path = tmp_path_factory.mktemp("ddp") / "real.h5"
    rng = np.random.default_rng(0)
    n = 16
    write_imageset(path, ImageSet(images=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), label=None,
                                  labels=np.zeros((n, 1), np.float32), source=np.zeros(n), split=np.zeros(n),
                                  dataset="cxr", class_names=["finding"],
                                  cond=rng.random((n, 22)).astype(np.float32)))
    return path


def on_two_processes(real_h5, ckpt_dir, cfg=CFG) -> dict:
    return train_on_processes(str(real_h5), cfg, SECTION, 5, CPU, "fp32", ckpt_dir, gpus=2, threads=2,
                              progress=False, snapshots=[])


@pytest.fixture(scope="module")
def two(real_h5, tmp_path_factory):
    """An uninterrupted 2-process run."""
    return on_two_processes(real_h5, tmp_path_factory.mktemp("two"))


@pytest.mark.slow
def test_two_processes_train_what_one_process_trains(real_h5, two, tmp_path, torch_one_thread):
    rows, conditions, num_classes, _ = generator_inputs(str(real_h5))
    one = train_diffusion(open_images(real_h5, rows), conditions, num_classes, CFG, 5, CPU, "fp32", tmp_path,
                          section=SECTION, progress=False)
    assert two["hash"] == one["hash"] and two["stats"]["steps"] == 60
    assert two["stats"]["final_loss"] == pytest.approx(one["stats"]["final_loss"], rel=1e-5)
    for name, weight in one["state_dict"].items():
        if not name.endswith("to_k.bias"):
            torch.testing.assert_close(two["state_dict"][name], weight, rtol=0, atol=WEIGHT_ATOL, msg=name)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    cond = torch.as_tensor(conditions[:8])
    cond[0] = float("nan")  # a dropped condition: the learned null embedding, trained on both sides
    with torch.no_grad():
        outputs = [load_generator(b, CPU)(x, torch.arange(8) * 6, class_labels=cond).sample for b in (one, two)]
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=OUTPUT_ATOL)


def training_processes(ckpt) -> list[int]:
    """Pids of the processes training into ``ckpt`` (their command line names its spec file)."""
    spec = str(ckpt / "processes" / "spec.json").encode()
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if spec in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:  # ended meanwhile
            pass
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the processes die with the job via prctl")
def test_killed_two_process_run_resumes_bit_identically(real_h5, two, tmp_path):
    """SIGKILL to the job process alone (as the OOM killer does): its training processes die with it
    instead of training on beside the retry, and the retry resumes from the last checkpoint. (A kill
    of the whole job, by SLURM or Ctrl-C, reaches them directly: they are in its process group.)"""
    ckpt = tmp_path / "ckpt"
    driver = ("import torch; from synthetic_simplicity.diffusion.distributed import train_on_processes; "
              f"from test_distributed import CFG; train_on_processes({str(real_h5)!r}, CFG, {SECTION!r}, 5, "
              f"torch.device('cpu'), 'fp32', {str(ckpt)!r}, gpus=2, threads=2, progress=False, snapshots=[])")
    env = os.environ | {"PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    job = subprocess.Popen([sys.executable, "-c", driver], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (ckpt.is_dir() and any(s >= 8 for s in steps_on_disk(ckpt))):
        assert job.poll() is None, "the 2-process run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.05)
    assert len(training_processes(ckpt)) == 2
    job.kill()
    job.wait()
    deadline = time.monotonic() + 10
    while training_processes(ckpt):
        assert time.monotonic() < deadline, "training processes outlived their killed job"
        time.sleep(0.1)
    killed_at = max(steps_on_disk(ckpt))
    assert 8 <= killed_at < CFG["steps"] and not (ckpt / "processes/bundle.pt").exists()
    resumed = on_two_processes(real_h5, ckpt)
    assert resumed["stats"]["resumed_from"] == killed_at and resumed["stats"]["steps"] == CFG["steps"]
    assert_state_equal(resumed["state_dict"], two["state_dict"])


@pytest.mark.slow
def test_a_failing_process_stops_with_the_key_to_change(real_h5, tmp_path):
    cfg = CFG | {"steps": 6, "learning_rate": 1e12}
    with pytest.raises(PipelineError, match=r"config key 'chexpert\.diffusion\.learning_rate' \(now 1e\+12\)"):
        on_two_processes(real_h5, tmp_path, cfg)


def test_batch_must_divide_among_the_processes():
    check_gpus(4, 144, SECTION)
    with pytest.raises(ConfigError, match=r"'chexpert\.diffusion\.batch_size' is 36.*'chexpert\.diffusion\.gpus'.*"
                                          r"multiple of 5 \(e\.g\. 35 or 40\)"):
        check_gpus(5, 36, SECTION)


def test_more_processes_than_visible_gpus_is_an_error():
    """``visible`` stands for torch.cuda.device_count(): this machine has no GPU to count."""
    cuda = torch.device("cuda")
    check_gpus(2, 8, SECTION, cuda, visible=2)
    check_gpus(4, 8, SECTION, CPU)  # CPU processes need no device each
    with pytest.raises(ConfigError, match=r"'chexpert\.diffusion\.gpus' is 4, but this job sees 2 CUDA device"):
        check_gpus(4, 8, SECTION, cuda, visible=2)
    with pytest.raises(ConfigError, match=r"'device' is 'cuda:1', one GPU, but 'chexpert\.diffusion\.gpus' is 2"):
        check_gpus(2, 8, SECTION, torch.device("cuda", 1), visible=2)


def test_dag_asks_for_the_gpus_of_the_config(tmp_path):
    """diffusion.gpus: 2 -> resources gpu=2 (sbatch --gpus=2 through profiles/slurm), 4 threads per GPU."""
    from test_workflow import DEFAULT_CONFIG, check, job_resources, snakemake

    out = check(snakemake(tmp_path, "results/mnist/diffusion/model.pt", "--configfile", str(DEFAULT_CONFIG),
                          "--config", 'mnist={"diffusion": {"gpus": 2}}', "--cores", "64", "-n"))
    job = job_resources(out, "train_diffusion")["dataset=mnist"]
    assert (job["gpu"], job["threads"], job["mem_mb"]) == ("2", "8", "8000"), job
