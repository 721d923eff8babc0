"""Config validation against workflow/schemas/config.schema.yaml, with defaults filled in.

Snakemake's own ``validate`` reports a jsonschema traceback; users need one line naming the key.
Snakemake reads nested ``--config`` values (and top-level ``true``/``null``) as strings, so a
string is first converted to the type the schema asks for when it parses unambiguously.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import jsonschema
import yaml

from .errors import PipelineError


class ConfigError(PipelineError, ValueError):
    """The config breaks the schema; the message names the key and what is allowed."""


def _fill_defaults(node: dict, schema: dict, root: dict) -> None:
    schema = _resolve(schema, root)
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        sub = _resolve(sub, root)
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict):
            _fill_defaults(node[key], sub, root)
    # Named entries such as Study B's sites share one schema.
    entry = schema.get("additionalProperties")
    if isinstance(entry, dict):
        for key, value in node.items():
            if key not in properties and isinstance(value, dict):
                _fill_defaults(value, entry, root)


def _check_site_names(config: dict) -> None:
    """Study B names sites in several keys; each must be one of the study's ``sites``."""
    for study in ("chexpert", "mnist_demo"):
        section = config.get(study, {})
        for key in ("sites", "train_site"):
            if key not in section and study in config.get("supplementation", []):
                raise ConfigError(f"config key '{study}.{key}' is missing; config/config.yaml has an example")
        sites = set(section.get("sites", {}))
        named = [("train_site", section.get("train_site"))]
        named += [(f"{key}[{i}]", name) for key in ("external_tests", "external_mixing")
                  for i, name in enumerate(section.get(key, []))]
        for key, name in named:
            if name is not None and name not in sites:
                raise ConfigError(f"config key '{study}.{key}': {name!r} is not one of {study}.sites "
                                  f"{sorted(sites)}; see config/README.md")


_INTEGER = re.compile(r"[+-]?\d+")


def _parse_scalar(text: str, types: set, enum: list | None):
    """``text`` as the schema's non-string type, or ``text`` itself when it does not parse."""
    word = text.strip().lower()
    candidates = []
    if "null" in types or (enum and None in enum):
        candidates.append((word in ("null", "none", "~"), None))
    if "boolean" in types or (enum and any(isinstance(v, bool) for v in enum)):
        candidates.append((word in ("true", "false"), word == "true"))
    if "integer" in types or "number" in types:
        candidates.append((bool(_INTEGER.fullmatch(text.strip())), lambda: int(text)))
    if "number" in types:
        try:
            candidates.append((True, float(text)))
        except ValueError:
            pass
    for ok, value in candidates:
        if ok:
            value = value() if callable(value) else value
            if enum is None or value in enum:
                return value
    return text


def _coerce(node, schema: dict, root: dict):
    """``node`` with strings converted where the schema wants a number, boolean, null or list."""
    schema = _resolve(schema, root)
    if isinstance(node, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in node.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                node[key] = _coerce(value, sub, root)
        return node
    types = schema.get("type", [])
    types = {types} if isinstance(types, str) else set(types)
    if isinstance(node, list):
        return [_coerce(v, schema.get("items", {}), root) for v in node] if "items" in schema else node
    if not isinstance(node, str) or "string" in types or node in (schema.get("enum") or []):
        return node
    if "array" in types and node.strip().startswith("["):
        parsed = yaml.safe_load(node)
        return _coerce(parsed, schema, root) if isinstance(parsed, list) else node
    return _parse_scalar(node, types, schema.get("enum"))


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if not ref:
        return schema
    node = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _path(parts) -> str:
    """A user-facing key path: ``mnist.assembly.alphas[1]``."""
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in parts).replace(".[", "[")


def _key(error: jsonschema.ValidationError) -> str:
    return _path(error.absolute_path) or "(top level)"


def _check_top_level(config: dict, root: dict) -> None:
    """A top-level key the schema does not name must be a section of the user's own images (with a
    ``data`` section); anything else is a typo, reported as one instead of a missing ``data`` key."""
    known = root["properties"]
    for key, value in config.items():
        if key not in known and not (isinstance(value, dict) and "data" in value):
            raise ConfigError(f"unknown config key '{key}'; allowed at the top level: {sorted(known)}, or the "
                              f"name of your own dataset with a '{key}.data' section (config/README.md: "
                              f"Your own data)")


def _check_datasets(config: dict) -> None:
    """Every listed Study A dataset needs a section; a user pool is one variant."""
    for i, name in enumerate(config["datasets"]):
        if name not in config or name in OTHER_SECTIONS:
            raise ConfigError(f"config key 'datasets[{i}]': {name!r} has no section; add a '{name}:' section "
                              f"with data.format folder or csv (config/README.md: Your own data), or list "
                              f"one of {sorted(STUDY_A_DATASETS)}")
    for name in study_a_datasets(config):
        section = config[name]
        data, pool = section["data"], section["synthetic"]
        if data.get("format") == "folder" and not data.get("root"):
            raise ConfigError(f"config key '{name}.data.root' is null; set it to the folder holding one "
                              f"sub-folder per class {data['classes']}")
        if data.get("format") == "csv" and not data.get("csv"):
            raise ConfigError(f"config key '{name}.data.csv' is null; set it to the table of path,label "
                              f"(optional subject, split) rows")
        if pool["source"] != "generate":
            if not pool["root" if pool["source"] == "folder" else "csv"]:
                what = "root" if pool["source"] == "folder" else "csv"
                raise ConfigError(f"config key '{name}.synthetic.{what}' is null; with synthetic.source: "
                                  f"{pool['source']} it names your synthetic images")
            if len(section["variants"]) != 1:
                raise ConfigError(f"config key '{name}.variants' lists {len(section['variants'])} variants, "
                                  f"but synthetic.source: {pool['source']} is one pool of your own images; "
                                  f"list one variant (its name names the pool's results folder)")


def _check_diffusion(config: dict) -> None:
    """Every generator's global batch divides evenly among its training processes; and at zero terminal
    SNR the last step's input is pure noise, so an epsilon prediction there says nothing about the image
    (x0 = (x_T - eps) / 0): only v-prediction can be sampled."""
    from ..diffusion.distributed import check_gpus

    for name, section in config.items():
        diffusion = section.get("diffusion") if isinstance(section, dict) else None
        if not isinstance(diffusion, dict):
            continue
        check_gpus(diffusion["gpus"], diffusion["batch_size"], f"{name}.diffusion")
        if diffusion.get("rescale_betas_zero_snr") and diffusion.get("prediction_type") == "epsilon":
            raise ConfigError(f"config key '{name}.diffusion.rescale_betas_zero_snr' is true with prediction_type "
                              f"epsilon, which cannot be sampled at zero terminal SNR; set '{name}.diffusion."
                              f"prediction_type: v_prediction' (as Study B) or rescale_betas_zero_snr: false")


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Return a copy of ``config`` with defaults filled in, or raise ConfigError naming the key."""
    root = yaml.safe_load(Path(schema_path).read_text())
    _check_top_level(config, root)
    config = _coerce(copy.deepcopy(config), root, root)
    _fill_defaults(config, root, root)
    validator = jsonschema.Draft202012Validator(root)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        if e.validator == "additionalProperties":
            parent = list(e.absolute_path)
            unknown = sorted(set(e.instance) - set(e.schema.get("properties", {})), key=str)
            keys = ", ".join(f"'{_path([*parent, k])}'" for k in unknown)
            where = f"under '{_path(parent)}'" if parent else "at the top level"
            msg = (f"unknown config key{'s' if len(unknown) > 1 else ''} {keys}; "
                   f"allowed {where}: {sorted(e.schema['properties'])}")
        else:
            msg = f"config key '{_key(e)}': {e.message}"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(msg + more + "; see config/README.md")
    _check_site_names(config)
    _check_datasets(config)
    _check_diffusion(config)
    for dataset in study_a_datasets(config):
        _resolve_variants(config[dataset], dataset)
    return config


STUDY_A_DATASETS = ("mnist", "camus")
# Top-level keys that are not Study A datasets.
OTHER_SECTIONS = ("seed", "device", "datasets", "supplementation", "chexpert", "mnist_demo")


def own_datasets(config: dict) -> list[str]:
    """Names of the sections of the user's own images, in config order."""
    return [k for k in config if k not in STUDY_A_DATASETS and k not in OTHER_SECTIONS]


def study_a_datasets(config: dict) -> list[str]:
    """Every Study A section: mnist and camus when present, then the user's own."""
    return [k for k in STUDY_A_DATASETS if k in config] + own_datasets(config)


def pool_datasets(config: dict) -> list[str]:
    """Study A datasets whose synthetic pool is the user's own images (no generator is trained)."""
    return [k for k in study_a_datasets(config) if config[k]["synthetic"]["source"] != "generate"]
# A variant's keys left null take these sections' values.
VARIANT_SAMPLER_KEYS = ("sampler", "sampling_steps", "guidance_scale", "clip_sample")


def _resolve_variants(section: dict, dataset: str) -> None:
    """Fill each variant's null keys from the diffusion, synthesis and classifier sections, and train
    the generator to the largest budget any variant asks for (in place; a second call changes nothing).
    The method list must hold erm, the reference of every arm and the model DFR refits."""
    names = [v["name"] for v in section["variants"]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"config key '{dataset}.variants': the name(s) {repeated} appear more than once; "
                          f"every variant needs its own name (it names the variant's results folder)")
    methods = section["classifier"]["methods"]
    if "erm" not in methods:
        raise ConfigError(f"config key '{dataset}.classifier.methods' is {methods} and lacks erm: every arm is "
                          f"measured against plain training (and dfr retrains the ERM model); add erm")
    for variant in section["variants"]:
        if variant.get("steps") is None:
            variant["steps"] = section["diffusion"]["steps"]
        for key in VARIANT_SAMPLER_KEYS:
            if variant.get(key) is None:
                variant[key] = section["synthesis"][key]
        if variant.get("architectures") is None:
            variant["architectures"] = list(section["classifier"]["architectures"])
    section["diffusion"]["steps"] = max(v["steps"] for v in section["variants"])


def alpha_tag(alpha: float) -> str:
    """How an alpha appears in paths and wildcards: 0, 0.25, 1."""
    return f"{alpha:g}"


def job_runs(section: dict, alpha: str | None, seed: str | None) -> list[tuple[str, str]]:
    """(alpha, seed) tags of the runs one classifier job trains, in the order of its outputs.

    ``classifier.runs_per_job`` one: the run (``alpha``, ``seed``) alone; seeds: every seed at
    ``alpha``; sweep: every alpha and seed (the job's variant, method and architecture). ``alpha`` and
    ``seed`` are the job's wildcards, or ``"{alpha}"`` and ``"{seed}"`` to get path patterns; the
    ones a unit does not use may be None.
    """
    unit = section["classifier"]["runs_per_job"]
    alphas = [alpha] if unit != "sweep" else [alpha_tag(a) for a in section["assembly"]["alphas"]]
    seeds = [seed] if unit == "one" else [str(s) for s in section["classifier"]["seeds"]]
    return [(a, s) for a in alphas for s in seeds]


def variant_synthesis(section: dict, name: str) -> dict:
    """The synthesis settings of one variant: the synthesis section with the variant's sampler keys."""
    variant = next(v for v in section["variants"] if v["name"] == name)
    return section["synthesis"] | {key: variant[key] for key in VARIANT_SAMPLER_KEYS}


def config_hash(section: dict) -> str:
    """A short stable hash of a config section, stored as provenance and used to guard resumes."""
    return hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:16]


def resume_settings(cfg: dict, resumable: tuple[str, ...], added: dict) -> dict:
    """The settings a training loop's resume key covers: all but the ``resumable`` keys, and keys
    added to the section later (``added``: key -> the value that trains as before) only where they
    differ from that value, so checkpoints written before a key existed stay valid."""
    return {k: v for k, v in cfg.items() if k not in resumable and not (k in added and v == added[k])}
