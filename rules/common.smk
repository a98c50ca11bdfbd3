# Helpers shared by every stage file (validated config, output paths, input functions).

import json
import re
import shutil
from pathlib import Path

from snakemake.exceptions import WorkflowError

from prunebench import calibration as pb_calibration
from prunebench import config as pb_config
from prunebench import grid as pb_grid
from prunebench import paths
from prunebench import latex as pb_latex
from prunebench import scheduling as pb_scheduling
from prunebench import outputs as pb_outputs
from prunebench import suite as pb_suite
from prunebench import verify as pb_verify
from prunebench.io import InputError
from prunebench.models import OUTPUT_FIELDS
from prunebench.pruning.spec import CELL_PATTERN, METHOD_PATTERN, ON_TRACES, RECOVERY_PATTERN, parse_method, vllm_servable
from prunebench.runtime import RuntimeSetting

try:
    # nested --config values arrive as strings; a relative reference record may lie in the workflow's directory
    pb_config.validate(config, "config", coerce=True, check_paths=True, workflow_dir=workflow.basedir)
except InputError as err:
    raise WorkflowError(str(err)) from None

# One wake-up timer for the scheduler's loop, where Snakemake 9.27 adds one per finished job (why: the module).
pb_scheduling.apply()

MODELS = list(config["models"])
REFERENCE = pb_config.reference_path(config, workflow.basedir)  # the record as this run reads it, or None
config["verify"]["targets"] = pb_verify.expand_targets(config)  # the results `snakemake verify` reruns
RECIPE_DEFS = config["calibration"]["recipe_definitions"]
BENCHMARKS = list(config["evaluation"]["benchmarks"])
POOL_SOURCES = list(config["self_generation"]["sources"])
# The models whose preparation declares their converted weights as a temporary output, removed by
# Snakemake after the last job that lists them (their pools), and the models prepared as usual.
TRANSIENT_MODELS = pb_grid.transient_checkpoints(config)
TRANSIENT_MODEL_PATTERN = "|".join(map(re.escape, TRANSIENT_MODELS)) or "(?!)"
KEPT_MODEL_PATTERN = "|".join(re.escape(m) for m in MODELS if m not in TRANSIENT_MODELS) or "(?!)"
# The local mirror (validated to exist unless the hub is allowed), and whether the hub may fill gaps.
DATA_DIR = config["data_dir"] if config["data_dir"] and Path(config["data_dir"]).is_dir() else None
DATA_DIR_ARG = " ".join(([f"--data-dir {DATA_DIR}"] if DATA_DIR else []) + (["--allow-hub"] if config["allow_hub"] else []))
# Light jobs run in the CPU image or environment; model jobs in the GPU one unless model_jobs is cpu.
_images = config["containers"]
CPU_IMAGE = f"docker://{_images['registry']}/prunebench-cpu:{_images['tag']}"
MODEL_IMAGE = f"docker://{_images['registry']}/prunebench-{_images['model_jobs']}:{_images['tag']}"
CPU_ENV = "../envs/cpu.yaml"
MODEL_ENV = f"../envs/{_images['model_jobs']}.yaml"
REPORT_DIR = Path(workflow.basedir) / "report"  # templates and published numbers travel with the workflow


def model_job_threads(wildcards):
    """Half the local cores, so two model jobs run at once: on 2 cores two 1-thread jobs decode
    1.5x and prefill 1.25x faster together than one 2-thread job (small-batch GEMMs scale poorly)."""
    try:
        return max(1, workflow.cores // 2)
    except WorkflowError:  # no --cores (an executor that places jobs itself): profiles decide
        return 1


def model_gpus(wildcards):
    """What a scheduler gives a model job: the model entry's `gpus` (0 runs it on CPUs)."""
    return config["models"][wildcards.model]["gpus"]


def model_gpu_model(wildcards):
    """The entry's `gpu_model`, only where the job asks for GPUs (SLURM reads a model as a GPU request)."""
    entry = config["models"][wildcards.model]
    return (entry["gpu_model"] or "") if entry["gpus"] else ""


def log_path(*parts):
    return str(Path("results", "logs", *parts)) + ".log"


def model_entry(wildcards):
    return config["models"][wildcards.model]


def model_output_entry(wildcards):
    """What a model's outputs depend on (so runtime settings such as batch size rerun nothing)."""
    entry = config["models"][wildcards.model]
    return json.dumps({"source": entry["source"], **{k: entry[k] for k in OUTPUT_FIELDS}}, sort_keys=True)


GRADING_WORKERS = RuntimeSetting(config["grading"]["workers"])


def model_runtime(wildcards):
    """--batch-size and --tensor-parallel of a model's jobs."""
    entry = config["models"][wildcards.model]
    return RuntimeSetting(f"--batch-size {entry['batch_size']} --tensor-parallel {entry['tensor_parallel']}")


def tasks_runtime(wildcards):
    """model_runtime's settings, and the batch of the task suite's log-likelihood requests."""
    scoring = config["models"][wildcards.model]["loglikelihood_batch_size"]
    flag = "" if scoring is None else f" --loglikelihood-batch-size {scoring}"
    return RuntimeSetting(f"{model_runtime(wildcards)}{flag}")


def model_backend(wildcards):
    """The generation backend shapes the samples (its sampler and kernels), so it is a param. A
    checkpoint of prunebench's own architectures (SliceGPT's shortcuts, LLM-Pruner's per-layer
    widths, dynamic methods' routers), which vLLM does not serve, runs on the hf backend whatever
    the model's entry says."""
    backend = config["models"][wildcards.model]["backend"]
    method = getattr(wildcards, "method", paths.DENSE)
    if backend == "vllm" and method != paths.DENSE and not vllm_servable(method):
        return "hf"
    return backend


def prune_inputs(wildcards):
    """The model and the calibration set; for a method on its own traces (RESP), also the pools'
    problems, whose prompts split each trace and are answered again."""
    inputs = {"model": paths.model_json(wildcards.model), "calibration": paths.calibration(wildcards.model, wildcards.recipe)}
    if parse_method(wildcards.method).method in ON_TRACES:
        inputs["problems"] = [paths.data(dataset) for dataset in POOL_SOURCES]
    return inputs


def pruning_flags(wildcards):
    """The pruning options this method reads (the schema's x-methods), as flags of `prunebench prune`;
    for a method on its own traces, the self-generation settings it regenerates them with."""
    method = parse_method(wildcards.method).method
    flags = pb_config.option_flags({k: config["pruning"][k] for k in pb_config.pruning_options(method)})
    if method in ON_TRACES:
        gen = config["self_generation"]
        length = RECIPE_DEFS[wildcards.recipe].get("max_length") or config["calibration"]["max_length"]
        flags += (f" --problems {' '.join(prune_inputs(wildcards)['problems'])} --temperature {gen['temperature']} "
                  f"--top-p {gen['top_p']} --seed {config['seed']} --trace-tokens {length}")
    return flags


def recovery_data(wildcards):
    """The calibration set a recovery fine-tunes on (its recipe's, for this model)."""
    return paths.calibration(wildcards.model, config["recovery"][wildcards.recovery]["recipe"])


def recovery_settings(wildcards):
    """The recovery's settings for this model (its by_model overrides applied), which shape the recovered model."""
    return json.dumps(pb_config.recovery_settings(config, wildcards.recovery, wildcards.model), sort_keys=True)


def pruned_checkpoint(path):
    """A pruned checkpoint is a full copy of the model: kept only with pruning.keep_checkpoints, else
    removed once its evaluation (and verify, for a verify target) has read it."""
    return directory(path) if config["pruning"]["keep_checkpoints"] else temp(directory(path))


def sampling_params():
    """Only what shapes one pool's samples: a source added elsewhere in the config, or adaptive
    sampling left off, must not rerun every pool."""
    gen = config["self_generation"]
    return {key: gen[key] for key in ("samples", "temperature", "top_p", "max_new_tokens")}


def adaptive_args():
    """Adaptive self-generation grades as it samples, so it takes the grader's timeout too."""
    tau = config["self_generation"]["adaptive_tau"]
    if tau is None:
        return ""
    return f"--adaptive-tau {tau} --timeout {config['grading']['timeout_seconds']}"


def scaled(count):
    return pb_grid.scaled(count, config["scale"])


def _calibration_sources(wildcards):
    """(datasets read, {dataset: graded pool}); the pool is the model's own unless the recipe
    names another `generator` (Table 8: responses generated by another model)."""
    spec = RECIPE_DEFS[wildcards.recipe]
    data, graded = pb_calibration.needs(spec, POOL_SOURCES)
    generator = spec.get("generator") or wildcards.model
    return data, {d: paths.graded(generator, d) for d in graded}


def recipe_spec(wildcards):
    """The recipe's definition as the calibration reads it: its label names it in tables only."""
    return json.dumps({k: v for k, v in RECIPE_DEFS[wildcards.recipe].items() if k != "label"}, sort_keys=True)


def calibration_inputs(wildcards):
    data, graded = _calibration_sources(wildcards)
    return {
        "model": paths.model_json(wildcards.model),
        "data": [paths.data(d) for d in data],
        "graded": list(graded.values()),
    }


def calibration_args(wildcards):
    data, graded = _calibration_sources(wildcards)
    args = [f"--data {d}={paths.data(d)}" for d in data]
    args += [f"--graded {d}={path}" for d, path in graded.items()]
    return " ".join(args)


# Each cell's benchmarks (prunebench.grid); a cell no table shows (a target named by hand) runs them all.
CELL_SUITES = {(r.model, r.method, r.recipe): suite for r, suite in pb_grid.cell_benchmarks(config).items()}
def cell_suite(wildcards):
    return CELL_SUITES.get((wildcards.model, wildcards.method, wildcards.recipe), BENCHMARKS)
# The priority of every job (why each goes where: prunebench.grid.Priorities).
PRIORITY = pb_grid.Priorities(config)
CRITICAL, LIGHT, FIRST_PAPER = PRIORITY.CRITICAL, PRIORITY.LIGHT, PRIORITY.FIRST_PAPER
def transient_weights(wildcards):
    """A transient model's converted weights, as an input of the jobs that read them (its pools)."""
    return [paths.converted_checkpoint(wildcards.model)] if wildcards.model in TRANSIENT_MODELS else []
def recovery_priority(wildcards):
    return PRIORITY.recovery(wildcards.model, wildcards.method, wildcards.recipe)
def pool_priority(wildcards):
    return PRIORITY.pool(wildcards.model, wildcards.dataset)
def cell_priority(evaluation=False):
    def priority(wildcards):
        return PRIORITY.cell(wildcards.model, wildcards.method, getattr(wildcards, "recipe", paths.NO_RECIPE),
                             evaluation)
    return priority
def evaluated_model(wildcards):
    """The dense model's model.json, or the pruned checkpoint of this method and recipe (the
    evaluation reads the whole checkpoint)."""
    if wildcards.method == paths.DENSE:
        return paths.model_json(wildcards.model)
    return paths.pruned(wildcards.model, wildcards.method, wildcards.recipe)


# The config as the verify job's nested run needs it, so that editing a title or a worker count
# does not rerun a verified prune.
CONFIG_JSON = RuntimeSetting(json.dumps(config, sort_keys=True))
# Every table and figure of both papers (prunebench.outputs), and the part of the config each reads:
# its rule's params, so that nothing else reruns it.
OUTPUTS = pb_outputs.OUTPUTS
_READS = {reads: json.dumps(reads(config), sort_keys=True) for reads in {o.reads for o in OUTPUTS.values()}}
OUTPUT_CONFIG_JSON = {name: _READS[o.reads] for name, o in OUTPUTS.items()}
def output_paper(kind):
    """The paper an output belongs to: its subcategory in Snakemake's report."""
    return lambda wildcards: OUTPUTS[wildcards[kind]].paper
def output_label(kind):
    return lambda wildcards: {kind: OUTPUTS[wildcards[kind]].label}
# What the report shows of the config.
REPORT_CONFIG_JSON = json.dumps(pb_config.outcome_config(config), sort_keys=True)
