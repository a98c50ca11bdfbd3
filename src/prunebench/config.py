"""Load a workflow config, fill the schema's defaults, and reject a bad one naming the key."""

from __future__ import annotations

import copy
import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .grid import calibration_sets, cell_benchmarks, evaluated_models, study_method, study_rows
from .io import InputError
from .taskfiles import TASKS, check_task

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


@functools.cache
def load_schema() -> dict:
    """The schema, with the default of each `$ref`'d definition copied beside the reference, so that
    defaults are filled through references too (a definition's default is written once)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    definitions = schema["$defs"]

    def inline(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            target = definitions.get(ref.removeprefix("#/$defs/")) if ref.startswith("#/$defs/") else None
            if target is not None and "default" in target and "default" not in node:
                node["default"] = copy.deepcopy(target["default"])
            for value in node.values():
                inline(value)
        elif isinstance(node, list):
            for value in node:
                inline(value)

    inline(schema)
    return schema


def _key_path(error: jsonschema.ValidationError, root: str = "config") -> str:
    parts = [root]
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).replace(".[", "[")


def _message(error: jsonschema.ValidationError) -> str:
    """The schema's own wording where it has one (`x-message`), else jsonschema's; an unknown key
    also lists the keys that are allowed there."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if "x-message" in schema:
        return f"{schema['x-message']} (got {json.dumps(error.instance)})"
    if error.validator == "additionalProperties" and "properties" in schema:
        return f"{error.message}; allowed: {', '.join(schema['properties'])}"
    return error.message


def _errors(config: dict) -> list[jsonschema.ValidationError]:
    return sorted(_Validator(load_schema()).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])


def _set(config: dict, path, value) -> None:
    *parents, last = path
    target = config
    for part in parents:
        target = target[part]
    target[last] = value


def coerce_strings(config: dict) -> dict:
    """Values that arrived as strings where the schema wants another type, read as YAML where that
    satisfies it: Snakemake's `--config 'evaluation={samples: 4}'` passes nested values as strings.
    Only a value the schema rejects is touched, and only if reading it removes the error."""
    for _ in range(1000):
        errors = _errors(config)
        for error in errors:
            if not isinstance(error.instance, str) or not error.absolute_path:
                continue
            try:
                value = yaml.safe_load(error.instance)
            except yaml.YAMLError:
                continue
            if isinstance(value, str):
                continue
            trial = copy.deepcopy(config)
            _set(trial, list(error.absolute_path), value)
            if len(_errors(copy.deepcopy(trial))) < len(errors):
                _set(config, list(error.absolute_path), value)
                break
        else:
            return config
    return config


def validate(config: dict, source: str = "config", *, coerce: bool = False, check_paths: bool = False,
             workflow_dir: str | os.PathLike | None = None) -> dict:
    """Validate `config` in place (filling defaults) and return it; raise InputError naming the key.

    `coerce` first reads string values as YAML where the schema wants another type (Snakemake's
    nested --config values); `check_paths` checks what lies outside the config (data_dir, the
    reference record, read from `workflow_dir` when not from the working directory), as a run's
    entry points (the workflow, `load`) do.
    """
    config = config if config is not None else {}
    if coerce:
        coerce_strings(config)
    _refuse_non_finite(config, f"{source}: config")
    errors = _errors(config)
    if errors:
        error = errors[0]
        raise InputError(f"{source}: {_key_path(error)}: {_message(error)}")
    figure4 = config["experiments"]["figure4"]
    if figure4["recipes"] is None:  # null means "the calibration recipes of Table 2"
        figure4["recipes"] = list(config["calibration"]["recipes"])
    suite = config["task_suite"]  # null means Table 2's methods and recipes
    if suite["methods"] is None:
        suite["methods"] = list(config["pruning"]["methods"])
    if suite["recipes"] is None:
        suite["recipes"] = list(config["calibration"]["recipes"])
    for name, task in suite["tasks"].items():  # null means the category the task registry gives it
        if task["category"] is None and name in TASKS:
            task["category"] = TASKS[name].category
    _check_references(config, source)
    if check_paths:
        _check_paths(config, source, workflow_dir)
    return config


def _refuse_non_finite(value, where: str) -> None:
    """NaN and infinities pass every `minimum` of a schema (no comparison with NaN is true), so they
    are refused first, by the key that holds one."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: {value} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_non_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_non_finite(item, f"{where}[{index}]")


def check_pruning_options(options: dict) -> None:
    """Refuse, before any work and naming the flag, a pruning option its schema does not allow (the
    bounds the config check applies; command-line values reach the prune command unchecked)."""
    properties = pruning_options()
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        _refuse_non_finite(value, flag)
        error = next(iter(_Validator(properties[name]).iter_errors(value)), None)
        if error is not None:
            raise InputError(f"{flag}: {_message(error)}")


def validate_definition(definition: str, spec: dict, where: str, root: str) -> dict:
    """One entry of a schema definition (a recipe, a suite task) checked and given its defaults."""
    schema = load_schema()
    _refuse_non_finite(spec, f"{where}: {root}")
    validator = _Validator({**schema["$defs"][definition], "$defs": schema["$defs"]})
    errors = sorted(validator.iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise InputError(f"{where}: {_key_path(errors[0], root)}: {_message(errors[0])}")
    return spec


def validate_recipe(spec: dict, where: str) -> dict:
    """One recipe definition (the calibrate command's --spec) checked and given its defaults."""
    return validate_definition("recipe", spec, where, "recipe")


def reference_path(config: dict, workflow_dir: str | os.PathLike | None = None) -> str | None:
    """Where a run reads config.reference: as written when that names a file from the working
    directory (or is absolute), else the same relative path in `workflow_dir` (the repository,
    whose reference/ holds the embedded default's record), so that a run in any working directory
    compares itself with it. The config keeps the path as written: results name no machine's
    directories. None when the config names no record or neither place holds it."""
    named = config.get("reference")
    if named is None:
        return None
    if Path(named).is_file():
        return named
    if workflow_dir is not None and not Path(named).is_absolute() and (Path(workflow_dir) / named).is_file():
        return str(Path(workflow_dir) / named)
    return None


def _check_paths(config: dict, source: str, workflow_dir: str | os.PathLike | None = None) -> None:
    if config["reference"] is not None and reference_path(config, workflow_dir) is None:
        places = f"{Path.cwd()}" + (f" nor from {workflow_dir}" if workflow_dir is not None else "")
        raise InputError(f"{source}: config.reference: {config['reference']} is not a file (from {places}); "
                         f"name a reference record (`make reference` writes one), or null")
    data_dir = config["data_dir"]
    if config["allow_hub"]:
        return
    if data_dir is None:
        raise InputError(f"{source}: config.data_dir: null, and allow_hub is false: no dataset can be read "
                         f"(name the local mirror, or set allow_hub: true to download from the hub)")
    if not Path(data_dir).is_dir():
        raise InputError(f"{source}: config.data_dir: {data_dir} is not a directory (from {Path.cwd()}); "
                         f"name the local mirror, or set allow_hub: true to download from the hub")


def _check_references(config: dict, source: str) -> None:
    """Cross-field rules that a JSON schema cannot say: names used must be defined."""
    from .datasets import DATASETS
    from .pruning.spec import parse_method

    def readable(dataset: str, key: str) -> None:
        """A dataset whose text calibration and self-generation may read: known, and not sealed."""
        if dataset not in DATASETS:
            raise InputError(f"{source}: config.{key}: unknown dataset {dataset!r} "
                             f"(known: {', '.join(sorted(DATASETS))})")
        if DATASETS[dataset].sealed:
            raise InputError(f"{source}: config.{key}: {dataset} is sealed (its questions never leave their "
                             f"archive in plain text): it can only be a benchmark")

    if not evaluated_models(config):
        raise InputError(f"{source}: config.models: every model is generator_only; at least one must be evaluated")
    for name, spec in config["calibration"]["recipe_definitions"].items():
        if spec.get("generator") is not None and spec["generator"] not in config["models"]:
            raise InputError(f"{source}: config.calibration.recipe_definitions.{name}.generator: "
                             f"{spec['generator']!r} is not under config.models")
        for dataset in spec.get("datasets", []):
            readable(dataset, f"calibration.recipe_definitions.{name}.datasets")
    for dataset in config["self_generation"]["sources"]:
        readable(dataset, "self_generation.sources")
    experiments = config["experiments"]
    study = config["study"]
    recipe_lists = {"calibration.recipes": config["calibration"]["recipes"],
                    **{f"experiments.{key}.recipes": e["recipes"] for key, e in experiments.items()},
                    "task_suite.recipes": config["task_suite"]["recipes"],
                    "study.recipes": study["recipes"] if study["methods"] else []}  # [sgr] by default
    model_lists = {**{f"experiments.{key}.models": e.get("models") for key, e in experiments.items()},
                   "task_suite.models": config["task_suite"]["models"], "study.models": study["models"]}
    for key, names in model_lists.items():
        for index, model in enumerate(names or []):
            if model not in evaluated_models(config):
                raise InputError(f"{source}: config.{key}[{index}]: {model!r} is not an evaluated model "
                                 f"under config.models")
    for key, names in recipe_lists.items():
        for name in names:
            if name not in config["calibration"]["recipe_definitions"]:
                raise InputError(f"{source}: config.{key}: {name!r} is not defined under "
                                 f"config.calibration.recipe_definitions")
    for bench in config["evaluation"]["benchmarks"]:
        if bench not in DATASETS or not DATASETS[bench].benchmark:
            known = sorted(n for n, d in DATASETS.items() if d.benchmark)
            raise InputError(f"{source}: config.evaluation.benchmarks: {bench!r} is not a benchmark "
                             f"(known: {', '.join(known)})")
    for bench in config["evaluation"]["token_limits"]:
        if bench not in config["evaluation"]["benchmarks"]:
            raise InputError(f"{source}: config.evaluation.token_limits: {bench!r} is not under "
                             f"config.evaluation.benchmarks")
    for key, experiment in experiments.items():
        for index, bench in enumerate(experiment.get("benchmarks") or []):
            if bench not in config["evaluation"]["benchmarks"]:
                raise InputError(f"{source}: config.experiments.{key}.benchmarks[{index}]: {bench!r} is not under "
                                 f"config.evaluation.benchmarks")
    suite = config["task_suite"]
    for name, spec in suite["tasks"].items():
        check_task(name, config["allow_hub"], where=f"{source}: config.task_suite.tasks",
                   entry=f"{source}: config.task_suite.tasks.{name}", how="allow_hub: true")
        if spec["category"] is None:
            raise InputError(f"{source}: config.task_suite.tasks.{name}.category: missing, and prunebench does "
                             f"not know the task (classification, generation or reasoning: the table's column group)")
    for index, bench in enumerate(suite["reasoning"]):
        if bench not in config["evaluation"]["benchmarks"]:
            raise InputError(f"{source}: config.task_suite.reasoning[{index}]: {bench!r} is not under "
                             f"config.evaluation.benchmarks")
    adaptive = config["self_generation"]["adaptive_tau"]
    if adaptive is not None:

        definitions = config["calibration"]["recipe_definitions"]
        for recipe in dict.fromkeys(r for _, r in calibration_sets(config)):
            spec = definitions[recipe]
            if spec["type"] in ("pretraining", "gold", "sgr", "sgr_nothink", "responses"):   # sample 0 is always drawn
                continue
            if spec["type"] == "ssgr" and spec["tau"] <= adaptive:
                continue
            raise InputError(f"{source}: config.self_generation.adaptive_tau: {adaptive:g} stops sampling problems "
                             f"that recipe {recipe!r} ({spec['type']}"
                             f"{', tau ' + format(spec['tau'], 'g') if spec['type'] == 'ssgr' else ''}) "
                             f"still needs; use null (fixed-n sampling) or drop the recipe")
    for index, method in enumerate(study["methods"]):
        for ratio in study["ratios"]:
            try:
                study_method(method, ratio)
            except ValueError as err:
                raise InputError(f"{source}: config.study.methods[{index}]: {err}") from None
    sources, samples = study["calibration_sources"], study["calibration_samples"]
    for key, methods, ratio in (("calibration_sources.methods", sources["methods"], sources["ratio"]),
                                ("calibration_samples.method", [samples["method"]] if samples["method"] else [],
                                 samples["ratio"])):
        for index, method in enumerate(methods):
            try:
                study_method(method, ratio)
            except ValueError as err:
                raise InputError(f"{source}: config.study.{key}{'' if key.endswith('method') else f'[{index}]'}: {err}") from None
    for key, names in (("calibration_sources.recipes", sources["recipes"]), ("calibration_samples.recipes", samples["recipes"])):
        for index, name in enumerate(names):
            if name not in config["calibration"]["recipe_definitions"]:
                raise InputError(f"{source}: config.study.{key}[{index}]: {name!r} is not defined under "
                                 f"config.calibration.recipe_definitions")
    recovered = study["recovery"]
    for name, entry in config["recovery"].items():
        if entry["recipe"] not in config["calibration"]["recipe_definitions"]:
            raise InputError(f"{source}: config.recovery.{name}.recipe: {entry['recipe']!r} is not defined under "
                             f"config.calibration.recipe_definitions")
        for model in entry["by_model"]:
            if model not in config["models"]:
                raise InputError(f"{source}: config.recovery.{name}.by_model: {model!r} is not under config.models")
            recovery_settings(config, name, model, source)
    for key, names, known in (("methods", recovered["methods"], study["methods"]),
                              ("ratios", recovered["ratios"] or [], study["ratios"]),
                              ("recoveries", recovered["recoveries"], list(config["recovery"]))):
        for index, name in enumerate(names):
            if name not in known:
                raise InputError(f"{source}: config.study.recovery.{key}[{index}]: {name!r} is not among "
                                 f"{'config.recovery' if key == 'recoveries' else 'config.study.' + key}")
    _check_traces(config, source)
    named_methods = [(f"pruning.methods[{i}]", m) for i, m in enumerate(config["pruning"]["methods"])]
    named_methods += [(f"experiments.{key}.methods[{i}]", m) for key, e in experiments.items()
                      for i, m in enumerate(e.get("methods") or [])]
    named_methods += [(f"experiments.{key}.method", e["method"]) for key, e in experiments.items() if "method" in e]
    named_methods += [(f"task_suite.methods[{i}]", m) for i, m in enumerate(config["task_suite"]["methods"])]
    for key, method in named_methods:
        try:
            canonical = parse_method(method).name
        except ValueError as err:
            raise InputError(f"{source}: config.{key}: {err}") from None
        if canonical != method:  # names become paths: one spelling per method
            raise InputError(f"{source}: config.{key}: write {method!r} as {canonical!r}")


def _check_traces(config: dict, source: str) -> None:
    """A method that prunes on the model's own traces (RESP) needs a self-generated recipe: one
    that reads datasets' text (C4, MathR) has no prompt and response to split."""
    from .pruning.spec import ON_TRACES, algorithm

    definitions = config["calibration"]["recipe_definitions"]
    for row in [*cell_benchmarks(config), *study_rows(config)]:   # every cell evaluated, and every one measured
        if row.recipe in definitions and "datasets" in definitions[row.recipe]:
            try:
                on_traces = algorithm(row.method) in ON_TRACES
            except ValueError:
                continue   # an unknown method name: refused with its key below
            if on_traces:
                raise InputError(f"{source}: config: {row.method} prunes on the model's own responses, and recipe "
                                 f"{row.recipe!r} ({definitions[row.recipe]['type']}) reads "
                                 f"{', '.join(definitions[row.recipe]['datasets'])}: give it a self-generated recipe "
                                 "(sgr, ssgr, ...)")


def load(path: str | os.PathLike, overrides: dict | None = None) -> dict:
    """Read a YAML config file, merge `overrides` (as Snakemake's --config does), validate it. A
    config in a workflow's folder (config/ beside the Snakefile) reads its reference record from the
    workflow's directory when the working directory has none, as the workflow does."""
    path = Path(path)
    workflow_dir = next((d for d in path.resolve().parents if (d / "Snakefile").is_file()), None)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from None
    if overrides:
        config = merge(config, overrides)
    return validate(config, str(path), check_paths=True, workflow_dir=workflow_dir)


def merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def model_entry(config: dict, name: str) -> dict[str, Any]:
    try:
        return config["models"][name]
    except KeyError:
        raise InputError(f"config.models: no model named {name!r} (known: {', '.join(config['models'])})") from None


def _resolved(node: dict) -> dict:
    ref = node.get("$ref", "")
    return {**load_schema()["$defs"][ref.removeprefix("#/$defs/")], **node} if ref else node


def schema_property(*keys: str) -> dict:
    """The schema of one setting by its keys: ("pruning", "blocksize"); ("models", "*", "batch_size")
    for a field of any model entry."""
    node = load_schema()
    for key in keys:
        node = _resolved(node["additionalProperties"] if key == "*" else node["properties"][key])
    return node


def schema_default(*keys: str):
    """The default of one setting, from the schema: the one place every default is written."""
    return copy.deepcopy(schema_property(*keys)["default"])


# Settings that change how a job runs, not what any result holds: a report is not redone for them.
RUNTIME_MODEL_FIELDS = ("batch_size", "tensor_parallel", "gpus", "gpu_model")


def outcome_config(config: dict) -> dict:
    """The config without what only changes how jobs run (batch sizes, GPUs, grading workers,
    images, which results verify reruns): what the report shows and is redone for."""
    out = copy.deepcopy({k: v for k, v in config.items() if k not in ("containers", "verify")})
    for entry in out.get("models", {}).values():
        for field in RUNTIME_MODEL_FIELDS:
            entry.pop(field, None)
    out.get("grading", {}).pop("workers", None)
    return out


def recovery_settings(config: dict, name: str, model: str, source: str = "config") -> dict:
    """A recovery's settings for one model: its entry with the model's `by_model` overrides, checked."""
    entry = {k: v for k, v in config["recovery"][name].items() if k != "by_model"}
    override = config["recovery"][name].get("by_model", {}).get(model, {})
    if "recipe" in override:
        raise InputError(f"{source}: config.recovery.{name}.by_model.{model}.recipe: a recovery has one recipe; "
                         "name another recovery for other data")
    return validate_definition("recovery", {**entry, **override}, source, f"recovery.{name}.by_model.{model}")


# Keys of `pruning` that say what to run and keep rather than how a method prunes.
PRUNING_RUN_KEYS = ("methods", "keep_checkpoints")


def pruning_options(method: str | None = None) -> dict[str, dict]:
    """Options of a pruning run (name -> schema), each a flag of `prunebench prune` of the same name;
    with a method (its registry name, `sparsegpt`), only those it reads: an option's `x-methods`
    names the methods that read it (absent: every method), so that a job's parameters hold only
    what shapes its output, and changing SparseGPT's blocksize reruns no other method's prune."""
    return {k: v for k, v in schema_property("pruning")["properties"].items() if k not in PRUNING_RUN_KEYS
            and (method is None or method in v.get("x-methods", [method]))}


def pruning_defaults() -> dict:
    return {name: copy.deepcopy(prop["default"]) for name, prop in pruning_options().items()}


def option_flags(options: dict) -> str:
    """Options as command-line flags: `--blocksize 128 --no-true-sequential ...`."""
    flags = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            flags.append(" ".join([flag, *map(str, value)]))
        else:
            flags.append(f"{flag} {value}")
    return " ".join(flags)
