"""The installation: the heavy libraries work together, and envs/*.yaml, pyproject.toml and the
installed versions agree on the pins."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        deps += extra
    pins = {}
    for dep in deps:
        if dep.startswith("synthetic-simplicity["):  # an extra that includes another extra
            continue
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)\s*", dep)
        assert m, f"pyproject dependency {dep!r} is not an exact pin"
        pins[norm(m[1])] = m[2]
    return pins


def env_pip(path: Path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1, f"{path.name}: expected one pip section"
    return pips[0]


def env_pins(path: Path) -> dict[str, str]:
    pins = {}
    for spec in env_pip(path):
        if spec.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", spec)
        assert m, f"{path.name}: pip entry {spec!r} is not an exact pin"
        pins[norm(m[1])] = m[2]
    return pins


def test_libraries_work_together():
    """diffusers' UNet, torchvision's compiled ops and the classifiers, in a fresh interpreter."""
    code = textwrap.dedent(f"""
        from pathlib import Path
        import yaml
        import torch, torchvision, diffusers, lion_pytorch
        from synthetic_simplicity.core.config import validate_config
        from synthetic_simplicity.diffusion.model import build_unet
        from synthetic_simplicity.classifier.models import build_classifier

        repo = Path({str(REPO)!r})
        cfg = validate_config(yaml.safe_load((repo / "config/config.yaml").read_text()),
                              repo / "workflow/schemas/config.schema.yaml")
        unet = build_unet(28, 1, 2, cfg["mnist"]["diffusion"]).eval()
        with torch.no_grad():
            x = torch.randn(2, 1, 32, 32)
            out = unet(x, torch.tensor([10, 500]), class_labels=torch.tensor([0, 2])).sample
        assert out.shape == (2, 1, 32, 32) and torch.isfinite(out).all(), out.shape

        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
        keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
        assert keep.tolist() == [0, 2], keep

        for arch in ("cnn", "resnet18"):
            model = build_classifier(arch, 1, 2).eval()
            with torch.no_grad():
                logits = model(torch.randn(2, 1, 28, 28))
            assert logits.shape == (2, 2), (arch, logits.shape)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout


def test_envs_pins_match_pyproject():
    pins = pyproject_pins()
    assert {p.name for p in ENVS} == {"torch.yaml", "analysis.yaml"}
    for path in ENVS:
        for name, version in env_pins(path).items():
            assert name in pins, f"{path.name} pins {name}, which pyproject.toml does not list"
            assert version == pins[name], f"{path.name}: {name}=={version}, pyproject.toml: {pins[name]}"
        assert any(s.startswith("-e ..") for s in env_pip(path)), f"{path.name} must install the package (-e ..)"
    torch_env = env_pins(REPO / "envs/torch.yaml")
    assert {"torch", "torchvision", "diffusers", "h5py"} <= set(torch_env)
    analysis_env = env_pins(REPO / "envs/analysis.yaml")
    assert not {"torch", "torchvision", "diffusers"} & set(analysis_env)


def rule_blocks() -> dict[str, tuple[Path, str]]:
    """rule name -> (file, text of its block), for every rule in workflow/rules/*.smk. A rule defined in a
    loop over the datasets (``rule:`` with ``name: f"train_classifier_{dataset}"``) keeps ``{dataset}``."""
    blocks = {}
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        text = path.read_text()
        for m in re.finditer(r"^( *)rule(?: (\w+))?:\n((?:\1[ \t]+.*\n|\n)*)", text, re.M):
            name = m[2] or re.search(r"^\s+name:\s*\n\s+f?\"([^\"]+)\"", m[3], re.M)[1]
            assert name not in blocks, f"rule {name} defined twice"
            blocks[name] = (path, m[3])
    return blocks


def directive(block: str, name: str) -> str | None:
    m = re.search(rf"^\s+{name}:\s*\n\s+(\S.*)$", block, re.M)
    return m[1].strip().rstrip(",") if m else None


def test_rules_have_log_and_existing_conda_env():
    blocks = rule_blocks()
    assert {"mnist_real", "train_diffusion", "sample_synthetic", "assemble_alpha", "train_classifier_{dataset}",
            "evaluate_run", "aggregate_alpha", "figure_alpha", "figure_samples"} <= set(blocks)
    envs = {p.resolve() for p in ENVS}
    for rule, (path, block) in blocks.items():
        assert directive(block, "log"), f"rule {rule} ({path.name}) has no log:"
        conda = directive(block, "conda")
        assert conda, f"rule {rule} ({path.name}) has no conda:"
        env = (path.parent / yaml.safe_load(conda)).resolve()
        assert env in envs, f"rule {rule}: conda env {conda} is not one of envs/*.yaml"
    torch_rules = {r for r, (p, b) in blocks.items() if "torch.yaml" in directive(b, "conda")}
    assert torch_rules == {"train_diffusion", "sample_synthetic", "train_classifier_{dataset}", "train_dfr_{dataset}",
                           "sample_replicas", "task_reference", "detectability", "detectability_replicas",
                           "train_supplementation"}
    # The SLURM profile restates every GPU rule, so a site sets partition/model for all of them in one place;
    # the per-dataset rules for the two built-in datasets.
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    expected = {r.replace("{dataset}", d) for r in torch_rules for d in ("mnist", "camus")}
    assert set(profile["set-resources"]) == expected


def test_rules_declare_cluster_resources():
    """What profiles/slurm turns into sbatch options: threads, mem_mb and runtime on every rule, a GPU
    and retries on the training/sampling rules, and no site settings (partition, account) in rules."""
    for rule, (path, block) in rule_blocks().items():
        if rule == "all":
            continue
        for name in ("threads", "mem_mb", "runtime"):
            assert re.search(rf"^\s+{name}[:=]", block, re.M), f"rule {rule} ({path.name}) declares no {name}"
        assert not re.search(r"slurm_partition|slurm_account|gpu_model", block), f"rule {rule}: site setting in a rule"
        torch_rule = "torch.yaml" in directive(block, "conda")
        # train_diffusion asks for diffusion.gpus GPUs, every other torch rule for one
        gpu = re.search(r"^\s+gpu=(1|diffusion_gpus),", block, re.M)
        assert bool(gpu) == torch_rule, f"rule {rule}: gpu=1 iff it uses torch"
        assert not gpu or (gpu[1] == "diffusion_gpus") == (rule == "train_diffusion"), f"rule {rule}: gpu={gpu[1]}"
        if torch_rule:
            assert re.search(r"^\s+retries: [1-9]", block, re.M), f"rule {rule}: no retries (it resumes)"
            assert "attempt" in block, f"rule {rule}: mem_mb/runtime should grow with attempt"


@pytest.mark.parametrize("package", ["torch", "torchvision", "diffusers", "snakemake",
                                     "snakemake-executor-plugin-slurm"])
def test_installed_versions_match_pins(package):
    installed = importlib.metadata.version(package).split("+", 1)[0]
    assert installed == pyproject_pins()[package]


def resolve_env(path: Path, tmp_path: Path) -> set[str]:
    """The distributions pip would install for an env file's pip section into an empty environment
    (pip's own resolver, against the package index, nothing installed)."""
    import json

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(s.replace("-e ..", f"-e {REPO}") for s in env_pip(path)) + "\n")
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--disable-pip-version-check", "--report", str(report), "-r", str(requirements)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    return {norm(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}


def test_analysis_env_installs_no_torch(tmp_path):
    installed = resolve_env(REPO / "envs/analysis.yaml", tmp_path)
    assert {"synthetic-simplicity", "h5py", "pandas", "seaborn", "mlxtend", "nibabel"} <= installed
    heavy = {name for name in installed if name in {"torch", "torchvision", "diffusers", "triton"}
             or name.startswith(("nvidia-", "cuda-"))}
    assert not heavy, f"envs/analysis.yaml pulls {sorted(heavy)}"


def test_torch_env_installs_the_training_stack(tmp_path):
    assert {"torch", "torchvision", "diffusers", "lion-pytorch", "synthetic-simplicity"} <= resolve_env(
        REPO / "envs/torch.yaml", tmp_path)


def test_analysis_rules_code_never_imports_torch():
    """Everything the data, assembly, evaluation and figure rules import, with torch made unimportable."""
    modules = ["data.jobs", "data.mnist", "data.camus", "data.cxr", "data.fixtures", "assembly.jobs", "assembly.alpha",
               "assembly.supplementation", "evaluation.jobs", "evaluation.cells", "evaluation.auroc", "figures.jobs",
               "figures.alpha", "figures.samples", "figures.supplementation", "core.joblog"]
    code = textwrap.dedent("""
        import importlib.abc, sys

        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("torch", "torchvision", "diffusers"):
                    raise ImportError(f"{name} is not installed in envs/analysis.yaml")

        sys.meta_path.insert(0, NoTorch())
    """) + "".join(f"import synthetic_simplicity.{m}\n" for m in modules) + "print('ok')"
    result = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=120)
    assert result.stdout.strip().endswith("ok"), result.stdout
