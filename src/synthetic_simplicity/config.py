"""Config validation against workflow/schemas/config.schema.yaml, with defaults filled in.

Snakemake's own ``validate`` reports a jsonschema traceback; users need one line naming the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """The config breaks the schema; the message names the key and what is allowed."""


def _fill_defaults(node: dict, schema: dict, root: dict) -> None:
    schema = _resolve(schema, root)
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict):
            _fill_defaults(node[key], sub, root)


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


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Return a copy of ``config`` with defaults filled in, or raise ConfigError naming the key."""
    root = yaml.safe_load(Path(schema_path).read_text())
    config = copy.deepcopy(config)
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
    return config


def config_hash(section: dict) -> str:
    """A short stable hash of a config section, stored as provenance and used to guard resumes."""
    return hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:16]
