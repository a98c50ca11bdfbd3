# Helpers shared by every stage file (validated config, output paths, input functions).

import json
from pathlib import Path

from snakemake.exceptions import WorkflowError

from prunebench import calibration as pb_calibration
from prunebench import config as pb_config
from prunebench import paths
from prunebench import tables as pb_tables
from prunebench.io import InputError
from prunebench.models import OUTPUT_FIELDS

try:
    pb_config.validate(config, "config")
except InputError as err:
    raise WorkflowError(str(err)) from None

MODELS = list(config["models"])
METHODS = config["pruning"]["methods"]
RECIPES = config["calibration"]["recipes"]
RECIPE_DEFS = config["calibration"]["recipe_definitions"]
BENCHMARKS = list(config["evaluation"]["benchmarks"])
POOL_SOURCES = list(config["self_generation"]["sources"])
# The local mirror when it exists; otherwise datasets come from the Hugging Face hub.
DATA_DIR = config["data_dir"] if config["data_dir"] and Path(config["data_dir"]).is_dir() else None
DATA_DIR_ARG = f"--data-dir {DATA_DIR}" if DATA_DIR else ""
ENV = "../envs/prunebench.yaml"
REPORT_DIR = Path(workflow.basedir) / "report"  # templates and published numbers travel with the workflow


def model_job_threads(wildcards):
    """Half the local cores, so two model jobs run at once: on 2 cores two 1-thread jobs decode
    1.5x and prefill 1.25x faster together than one 2-thread job (small-batch GEMMs scale poorly)."""
    try:
        return max(1, workflow.cores // 2)
    except WorkflowError:  # no --cores (an executor that places jobs itself): profiles decide
        return 1


def log_path(*parts):
    return str(Path("results", "logs", *parts)) + ".log"


def model_entry(wildcards):
    return config["models"][wildcards.model]


def model_output_entry(wildcards):
    """What a model's outputs depend on (so runtime settings such as batch size rerun nothing)."""
    entry = config["models"][wildcards.model]
    return json.dumps({"source": entry["source"], **{k: entry[k] for k in OUTPUT_FIELDS}}, sort_keys=True)


def runtime_args(wildcards):
    entry = config["models"][wildcards.model]
    return (f"--backend {entry['backend']} --batch-size {entry['batch_size']} "
            f"--tensor-parallel {entry['tensor_parallel']}")


def scaled(count):
    return pb_config.scaled(count, config["scale"])


def calibration_inputs(wildcards):
    spec = RECIPE_DEFS[wildcards.recipe]
    data, graded = pb_calibration.needs(spec, POOL_SOURCES)
    return {
        "model": paths.model_json(wildcards.model),
        "data": [paths.data(d) for d in data],
        "graded": [paths.graded(wildcards.model, d) for d in graded],
    }


def calibration_args(wildcards):
    spec = RECIPE_DEFS[wildcards.recipe]
    data, graded = pb_calibration.needs(spec, POOL_SOURCES)
    args = [f"--data {d}={paths.data(d)}" for d in data]
    args += [f"--graded {d}={paths.graded(wildcards.model, d)}" for d in graded]
    return " ".join(args)


def evaluated_model(wildcards):
    """The dense model's model.json, or the pruned checkpoint of this method and recipe."""
    if wildcards.method == paths.DENSE:
        return paths.model_json(wildcards.model)
    return paths.pruned(wildcards.model, wildcards.method, wildcards.recipe)


def config_json():
    return json.dumps(config, sort_keys=True)
