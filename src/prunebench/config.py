"""Load a workflow config, fill the schema's defaults, and reject a bad one naming the key."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .io import InputError

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")


def _with_defaults(validator_class):
    """A validator that also writes each property's `default` into the instance (jsonschema FAQ)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = ["config"]
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).replace(".[", "[")


def validate(config: dict, source: str = "config") -> dict:
    """Validate `config` in place (filling defaults) and return it; raise InputError naming the key."""
    config = config if config is not None else {}
    errors = sorted(_Validator(load_schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        raise InputError(f"{source}: {_key_path(error)}: {error.message}")
    figure4 = config["experiments"]["figure4"]
    if figure4["recipes"] is None:  # null means "the calibration recipes of Table 2"
        figure4["recipes"] = list(config["calibration"]["recipes"])
    _check_references(config, source)
    return config


def _check_references(config: dict, source: str) -> None:
    """Cross-field rules that a JSON schema cannot say: names used must be defined."""
    from .calibration import RECIPES, REQUIRED_PARAMETERS
    from .datasets import DATASETS
    from .pruning.spec import parse_method

    experiments = config["experiments"]
    recipe_lists = {"calibration.recipes": config["calibration"]["recipes"],
                    **{f"experiments.{key}.recipes": e["recipes"] for key, e in experiments.items()}}
    for key, names in recipe_lists.items():
        for name in names:
            if name not in config["calibration"]["recipe_definitions"]:
                raise InputError(f"{source}: config.{key}: {name!r} is not defined under "
                                 f"config.calibration.recipe_definitions")
    for name, spec in config["calibration"]["recipe_definitions"].items():
        if spec["type"] not in RECIPES:
            raise InputError(f"{source}: config.calibration.recipe_definitions.{name}.type: unknown recipe "
                             f"type {spec['type']!r} (known: {', '.join(sorted(RECIPES))})")
        if "generator" in spec:
            where = f"{source}: config.calibration.recipe_definitions.{name}.generator"
            if spec["type"] in ("pretraining", "gold"):
                raise InputError(f"{where}: a {spec['type']} recipe has no generator")
            if spec["generator"] not in config["models"]:
                raise InputError(f"{where}: {spec['generator']!r} is not under config.models")
        for parameter in REQUIRED_PARAMETERS.get(spec["type"], ()):
            if parameter not in spec:
                raise InputError(f"{source}: config.calibration.recipe_definitions.{name}: a {spec['type']} "
                                 f"recipe needs {parameter!r}")
        for dataset in spec.get("datasets", []):
            if dataset not in DATASETS:
                raise InputError(f"{source}: config.calibration.recipe_definitions.{name}.datasets: unknown "
                                 f"dataset {dataset!r} (known: {', '.join(sorted(DATASETS))})")
    for key in ("sources",):
        for dataset in config["self_generation"][key]:
            if dataset not in DATASETS:
                raise InputError(f"{source}: config.self_generation.{key}: unknown dataset {dataset!r} "
                                 f"(known: {', '.join(sorted(DATASETS))})")
    for bench in config["evaluation"]["benchmarks"]:
        if bench not in DATASETS or not DATASETS[bench].benchmark:
            known = sorted(n for n, d in DATASETS.items() if d.benchmark)
            raise InputError(f"{source}: config.evaluation.benchmarks: {bench!r} is not a benchmark "
                             f"(known: {', '.join(known)})")
    for key, experiment in experiments.items():
        for index, model in enumerate(experiment.get("models") or []):
            if model not in config["models"]:
                raise InputError(f"{source}: config.experiments.{key}.models[{index}]: {model!r} is not under "
                                 f"config.models")
    adaptive = config["self_generation"]["adaptive_tau"]
    if adaptive is not None:
        from .tables import calibration_sets

        definitions = config["calibration"]["recipe_definitions"]
        for recipe in dict.fromkeys(r for _, r in calibration_sets(config)):
            spec = definitions[recipe]
            if spec["type"] in ("pretraining", "gold", "sgr", "sgr_nothink"):
                continue
            if spec["type"] == "ssgr" and spec.get("tau", 0.75) <= adaptive:
                continue
            raise InputError(f"{source}: config.self_generation.adaptive_tau: {adaptive:g} stops sampling problems "
                             f"that recipe {recipe!r} ({spec['type']}"
                             f"{', tau ' + format(spec.get('tau', 0.75), 'g') if spec['type'] == 'ssgr' else ''}) "
                             f"still needs; use null (fixed-n sampling) or drop the recipe")
    named_methods = [(f"pruning.methods[{i}]", m) for i, m in enumerate(config["pruning"]["methods"])]
    named_methods += [(f"experiments.figure4.methods[{i}]", m) for i, m in enumerate(experiments["figure4"]["methods"])]
    named_methods += [(f"experiments.{key}.method", e["method"]) for key, e in experiments.items() if "method" in e]
    for key, method in named_methods:
        try:
            canonical = parse_method(method).name
        except ValueError as err:
            raise InputError(f"{source}: config.{key}: {err}") from None
        if canonical != method:  # names become paths: one spelling per method
            raise InputError(f"{source}: config.{key}: write {method!r} as {canonical!r}")


def load(path: str | os.PathLike, overrides: dict | None = None) -> dict:
    """Read a YAML config file, merge `overrides` (as Snakemake's --config does), validate it."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from None
    if overrides:
        config = merge(config, overrides)
    return validate(config, str(path))


def merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def scaled(count: int, scale: float) -> int:
    """A problem count multiplied by the config's `scale`, never below one."""
    return max(1, round(count * scale))


def model_entry(config: dict, name: str) -> dict[str, Any]:
    try:
        return config["models"][name]
    except KeyError:
        raise InputError(f"config.models: no model named {name!r} (known: {', '.join(config['models'])})") from None
