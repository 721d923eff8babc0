"""Config validation: shipped configs pass, defaults are filled, errors name the key path."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from synthetic_simplicity.core.config import ConfigError, config_hash, job_runs, study_a_datasets, validate_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


PRESETS = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_validates_merged_over_the_default(name):
    """As Snakemake reads `--configfile config/<name>`: merged over config/config.yaml, then validated."""
    from snakemake.utils import update_config

    merged = load("config.yaml")
    update_config(merged, load(name))
    cfg = validate_config(merged, SCHEMA)
    assert set(cfg["datasets"]) <= set(study_a_datasets(cfg)) and set(cfg["supplementation"]) <= {"chexpert", "mnist_demo"}


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml"])
def test_shipped_configs_validate(name):
    raw = load(name)
    cfg = validate_config(raw, SCHEMA)
    for section in ("data", "diffusion", "synthesis", "assembly", "classifier", "evaluation"):
        assert isinstance(cfg["mnist"][section], dict)
    assert raw == load(name)  # the input is not modified in place


def test_default_config_is_complete():
    # config/config.yaml documents every key, so filling defaults adds nothing to it; the camus stage
    # sections share the MNIST definitions ($defs) and are documented once, under mnist.
    # Variants name only what differs; the rest is inherited (test_variants_inherit_...).
    raw = load("config.yaml")
    filled = validate_config(raw, SCHEMA)
    shared = ("camus", "chexpert", "mnist_demo")
    for v_raw, v_filled in zip(raw["mnist"]["variants"], filled["mnist"]["variants"]):
        assert v_filled.items() >= v_raw.items()
    filled["mnist"]["variants"] = raw["mnist"]["variants"]
    assert {k: v for k, v in filled.items() if k not in shared} == {k: v for k, v in raw.items() if k not in shared}
    assert filled["camus"]["data"] == raw["camus"]["data"]
    assert set(filled["camus"]) == set(filled["mnist"])
    # Study B's own sections are documented in full under chexpert
    for section in ("data", "supplementation", "evaluation"):
        assert filled["chexpert"][section] == raw["chexpert"][section], section
    extra = set(filled["chexpert"]["classifier"]) - set(raw["chexpert"]["classifier"])
    assert extra <= set(filled["mnist"]["classifier"]), extra  # documented under mnist


def test_test_preset_keeps_its_values_and_gets_defaults():
    cfg = validate_config(load("test.yaml"), SCHEMA)
    assert cfg["mnist"]["diffusion"]["steps"] == 4
    assert cfg["mnist"]["diffusion"]["learning_rate"] == 0.002  # default
    assert cfg["mnist"]["diffusion"]["precision"] == "auto"  # default through a $ref
    assert cfg["mnist"]["assembly"] == {"alphas": [0, 0.5, 1], "per_class": None, "val_fraction": 0.1}
    assert cfg["mnist"]["classifier"]["optimizer"] == "adamw"


def test_empty_config_gets_every_default():
    cfg = validate_config({}, SCHEMA)
    assert cfg["seed"] == 0 and cfg["device"] == "auto" and cfg["datasets"] == ["mnist"]
    assert cfg["mnist"]["assembly"]["alphas"] == [0, 0.25, 0.5, 0.75, 1]
    assert cfg["mnist"]["assembly"]["per_class"] is None
    assert cfg["mnist"]["data"]["digits"] == [2, 4]
    assert cfg["mnist"]["diffusion"]["block_out_channels"] == [16, 32, 64]
    assert cfg["mnist"]["evaluation"]["ci"] == 0.95
    # the defaults equal the documented default config, except Study B's per-study sections,
    # whose sites and sizes config/config.yaml sets (the schema's defaults are shared by studies)
    # and MNIST's two generator variants, which config/config.yaml names (the schema's default, one
    # variant "main" with the synthesis section's sampler, is what CAMUS and a bare config get).
    documented = validate_config(load("config.yaml"), SCHEMA)
    study_b = ("chexpert", "mnist_demo")
    assert [v["name"] for v in cfg["mnist"]["variants"]] == ["main"]
    assert [v["name"] for v in documented["mnist"]["variants"]] == ["ddpm50", "ddim20"]
    cfg["mnist"]["variants"] = documented["mnist"]["variants"]
    assert {k: v for k, v in cfg.items() if k not in study_b} == {k: v for k, v in documented.items() if k not in study_b}
    assert documented["chexpert"]["classifier"]["uncertain"] == "ignore"
    assert documented["chexpert"]["sites"]["mimic"]["views"] == "frontal"  # site entries get defaults too


def test_defaults_are_copies():
    a = validate_config({}, SCHEMA)
    a["mnist"]["assembly"]["alphas"].append(0.3)
    assert validate_config({}, SCHEMA)["mnist"]["assembly"]["alphas"] == [0, 0.25, 0.5, 0.75, 1]


def test_partial_section_is_completed():
    cfg = validate_config({"mnist": {"diffusion": {"steps": 7}}}, SCHEMA)
    assert cfg["mnist"]["diffusion"]["steps"] == 7
    assert cfg["mnist"]["diffusion"]["batch_size"] == 64


def with_change(path: str, value) -> dict:
    cfg = copy.deepcopy(load("config.yaml"))
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[last] = value
    return cfg


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("mnist.diffusion.steps", "many", ["'mnist.diffusion.steps'", "'many'", "integer"]),
        ("mnist.assembly.alphas", [0, 1.5], ["'mnist.assembly.alphas[1]'", "1.5", "maximum of 1"]),
        ("mnist.assembly.alphas", [1.5], ["'mnist.assembly.alphas[0]'"]),
        ("mnist.assembly.alphas", [-0.25], ["'mnist.assembly.alphas[0]'", "minimum of 0"]),
        ("mnist.data.digits", [2, 12], ["'mnist.data.digits[1]'", "12", "maximum of 9"]),
        ("mnist.data.digits", [2, 3, 4], ["'mnist.data.digits'", "too long"]),
        ("mnist.data.digits", [2, 2], ["'mnist.data.digits'", "non-unique"]),
        ("mnist.synthesis.sampler", "euler", ["'mnist.synthesis.sampler'", "euler"]),
        ("mnist.diffusion.precision", "fp8", ["'mnist.diffusion.precision'", "fp8"]),
        ("mnist.classifier.architectures", ["vit"], ["'mnist.classifier.architectures[0]'"]),
        ("mnist.diffusion.steps", 0, ["'mnist.diffusion.steps'", "minimum of 1"]),
        ("mnist.diffusion.steps", True, ["'mnist.diffusion.steps'", "integer"]),
        ("mnist.evaluation.ci", 1.0, ["'mnist.evaluation.ci'"]),
        ("device", "gpu", ["'device'", "gpu"]),
        ("seed", -1, ["'seed'"]),
        ("mnist", None, ["'mnist'", "object"]),
    ],
)
def test_bad_value_names_the_key(path, value, expected):
    with pytest.raises(ConfigError) as e:
        validate_config(with_change(path, value), SCHEMA)
    msg = str(e.value)
    assert msg.startswith("config key ")
    for text in expected:
        assert text in msg, msg
    assert "\n" not in msg  # one line, not a jsonschema traceback


@pytest.mark.parametrize(
    "path, where",
    [("stepz", "at the top level"), ("mnist.diffusion.stepz", "under 'mnist.diffusion'"),
     ("mnist.assembly.alpha", "under 'mnist.assembly'"), ("mnist.cifar", "under 'mnist'")],
)
def test_unknown_key_names_its_full_path(path, where):
    with pytest.raises(ConfigError) as e:
        validate_config(with_change(path, 1), SCHEMA)
    msg = str(e.value)
    assert msg.startswith(f"unknown config key '{path}'; allowed {where}: "), msg
    if path == "mnist.diffusion.stepz":
        assert "'steps'" in msg.split("allowed")[1]  # the likely intended key is listed
    assert "\n" not in msg


def test_unknown_key_in_otherwise_empty_config():
    with pytest.raises(ConfigError, match=r"unknown config key 'mnist\.diffusion\.stepz'"):
        validate_config({"mnist": {"diffusion": {"stepz": 5}}}, SCHEMA)


def test_several_unknown_keys_are_all_named():
    with pytest.raises(ConfigError, match=r"unknown config keys 'mnist\.data\.a', 'mnist\.data\.b'; "):
        validate_config({"mnist": {"data": {"b": 1, "a": 2}}}, SCHEMA)


def test_several_problems_are_counted():
    cfg = with_change("mnist.diffusion.steps", "many")
    cfg["mnist"]["assembly"]["alphas"] = [1.5]
    with pytest.raises(ConfigError, match=r"and 1 more problem"):
        validate_config(cfg, SCHEMA)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_config_hash_is_stable_and_order_free():
    a = {"steps": 4, "lr": 0.1, "blocks": [8, 16]}
    b = {"blocks": [8, 16], "lr": 0.1, "steps": 4}
    assert config_hash(a) == config_hash(b)
    assert len(config_hash(a)) == 16 and int(config_hash(a), 16) >= 0
    assert config_hash(a) != config_hash(a | {"lr": 0.2})


def test_command_line_strings_become_the_schema_type():
    """Snakemake passes nested --config values (and top-level true/null) as strings."""
    cfg = validate_config({"seed": "3", "mnist": {
        "data": {"digits": ["3", "8"], "image_size": "20", "max_per_class": "null"},
        "synthesis": {"clip_sample": "false", "guidance_scale": "2"},
        "classifier": {"learning_rate": "1e-3", "patience": "null", "seeds": "[0, 1]"}},
        "camus": {"data": {"root": "/data/camus", "image_size": "64", "min_quality": "null"}}}, SCHEMA)
    assert cfg["seed"] == 3 and cfg["mnist"]["data"]["digits"] == [3, 8] and cfg["mnist"]["data"]["image_size"] == 20
    assert cfg["mnist"]["data"]["max_per_class"] is None and cfg["mnist"]["synthesis"]["clip_sample"] is False
    assert cfg["mnist"]["synthesis"]["guidance_scale"] == 2 and cfg["mnist"]["classifier"]["learning_rate"] == 0.001
    assert cfg["mnist"]["classifier"]["seeds"] == [0, 1] and cfg["mnist"]["classifier"]["patience"] is None
    assert cfg["camus"]["data"]["root"] == "/data/camus" and cfg["camus"]["data"]["min_quality"] is None
    assert cfg["camus"]["data"]["image_size"] == 64


@pytest.mark.parametrize("value", ["many", "3.5", "1e3x"])
def test_a_string_that_does_not_parse_keeps_the_message_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"config key 'mnist\.diffusion\.steps': '.*' is not of type 'integer'"):
        validate_config({"mnist": {"diffusion": {"steps": value}}}, SCHEMA)


def test_strings_stay_strings_where_the_schema_wants_strings():
    cfg = validate_config({"mnist": {"data": {"download_dir": "123"}}, "chexpert": {
        "sites": {"x": {"format": "csv", "root": "null", "race_map": {"7": "White"}}}, "train_site": "x"}}, SCHEMA)
    assert cfg["mnist"]["data"]["download_dir"] == "123" and cfg["chexpert"]["sites"]["x"]["root"] == "null"
    assert cfg["chexpert"]["sites"]["x"]["race_map"] == {"7": "White"}


def test_variants_inherit_their_stage_sections_and_train_to_the_largest_budget():
    from synthetic_simplicity.core.config import variant_synthesis

    raw = load("config.yaml")
    raw["mnist"]["variants"] = [{"name": "early", "steps": 300}, {"name": "late", "steps": 1500, "sampler": "ddim"},
                                {"name": "plain"}]
    cfg = validate_config(raw, SCHEMA)
    early, late, plain = cfg["mnist"]["variants"]
    assert cfg["mnist"]["diffusion"]["steps"] == 1500  # one run, to the largest budget
    assert plain["steps"] == 1000  # the diffusion.steps of the config, before the largest budget
    assert early["sampler"] == plain["sampler"] == "ddpm" and late["sampler"] == "ddim"
    assert late["architectures"] == cfg["mnist"]["classifier"]["architectures"]
    assert variant_synthesis(cfg["mnist"], "late") == cfg["mnist"]["synthesis"] | {"sampler": "ddim"}
    assert validate_config(cfg, SCHEMA) == cfg  # a resolved config resolves to itself
    assert cfg["camus"]["variants"] == [{"name": "main", "steps": 1000, "sampler": "ddpm", "sampling_steps": 50,
                                         "guidance_scale": 1.0, "clip_sample": True,
                                         "architectures": ["cnn"]}]


@pytest.mark.parametrize("variants, key", [
    ([{"name": "a"}, {"name": "a", "sampler": "ddim"}], "appear more than once"),
    ([{"name": "bad/name"}], "mnist.variants[0].name"),
    ([{"name": "a", "sampler": "euler"}], "mnist.variants[0].sampler"),
    ([], "mnist.variants"),
])
def test_bad_variants_name_the_key(variants, key):
    raw = load("config.yaml")
    raw["mnist"]["variants"] = variants
    with pytest.raises(ConfigError, match=re.escape(key)):
        validate_config(raw, SCHEMA)


def test_zero_terminal_snr_needs_v_prediction():
    with pytest.raises(ConfigError, match=r"'chexpert\.diffusion\.rescale_betas_zero_snr' is true with "
                                          r"prediction_type epsilon.*v_prediction"):
        validate_config({"chexpert": {"diffusion": {"rescale_betas_zero_snr": True}}}, SCHEMA)
    cfg = validate_config({"chexpert": {"diffusion": {"rescale_betas_zero_snr": True,
                                                      "prediction_type": "v_prediction"}}}, SCHEMA)
    assert cfg["chexpert"]["diffusion"]["prediction_type"] == "v_prediction"


def test_added_training_keys_default_to_the_training_before_them():
    """The schema's defaults of the keys added with Study B's recipe and for GPUs are the values the
    training loops leave out of their resume keys, so a config that does not use them resumes its old checkpoints."""
    from synthetic_simplicity.classifier.training import ADDED_KEYS as classifier_keys
    from synthetic_simplicity.diffusion.training import ADDED_KEYS as diffusion_keys

    cfg = validate_config({}, SCHEMA)
    for section in ("mnist", "chexpert", "mnist_demo"):
        assert {k: cfg[section]["diffusion"][k] for k in diffusion_keys} == diffusion_keys
    for section in ("chexpert", "mnist_demo"):
        assert {k: cfg[section]["classifier"][k] for k in classifier_keys} == classifier_keys
    # Study A's classifier has the GPU settings (issue 15) of them, not Study B's recipe
    gpu_keys = {"channels_last", "compile"}
    assert cfg["mnist"]["classifier"].keys() & classifier_keys.keys() == gpu_keys
    assert {k: cfg["mnist"]["classifier"][k] for k in gpu_keys} == {k: classifier_keys[k] for k in gpu_keys}
    study_b = validate_config({"chexpert": {"classifier": {"augment": {}, "mix": {"cutmix_alpha": 0}}}}, SCHEMA)
    assert study_b["chexpert"]["classifier"]["augment"] == {  # {} is Study B's augmentation
        "hflip": 0.5, "vflip": 0.5, "noise_p": 0.5, "noise_std": 0.3, "affine_p": 0.5, "rotate": 0.4, "scale": 0.1,
        "translate": 12 / 256}
    assert study_b["chexpert"]["classifier"]["mix"] == {"mixup_alpha": 1.0, "cutmix_alpha": 0, "prob": 0.5,
                                                        "switch_prob": 0.5}


@pytest.mark.parametrize("unit, runs", [
    ("one", [("0.25", "1")]),
    ("seeds", [("0.25", "0"), ("0.25", "1"), ("0.25", "2")]),
    ("sweep", [(a, s) for a in ("0", "0.25", "0.5", "0.75", "1") for s in ("0", "1", "2")]),
])
def test_a_classifier_job_trains_the_runs_of_its_unit(unit, runs):
    """The job of alpha 0.25, seed 1 (wildcards the unit does not use are ignored), and the same list as
    path patterns, which the rules' outputs are made of."""
    section = validate_config(load("config.yaml"), SCHEMA)["mnist"]
    assert section["classifier"]["runs_per_job"] == "seeds"  # the documented default
    section["classifier"]["runs_per_job"] = unit
    assert job_runs(section, "0.25", "1") == runs
    patterns = job_runs(section, "{alpha}", "{seed}")
    assert [(a.replace("{alpha}", "0.25"), s.replace("{seed}", "1")) for a, s in patterns] == runs
