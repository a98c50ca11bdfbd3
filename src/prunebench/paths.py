"""Where each stage's outputs live. The Snakemake rules and the Python code both use these, so the
layout is written down once."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path("results")
PARTS = ".parts"  # beside a resumable job's output: its finished shards or layers until the output is written
SPARSITY_FILE = "sparsity.json"  # inside a pruned checkpoint: how it was pruned
CONVERTED = "checkpoint"  # a converted (GGUF) model's weights, beside its model.json
DENSE = "dense"  # the method name of the unpruned model
NO_RECIPE = "none"  # the recipe name of the unpruned model


def data(dataset: str) -> str:
    return f"{RESULTS}/data/{dataset}.jsonl"


def model_dir(model: str) -> str:
    return f"{RESULTS}/models/{model}"


def model_json(model: str) -> str:
    return f"{RESULTS}/models/{model}/model.json"


def converted_checkpoint(model: str) -> str:
    """A GGUF-sourced model's weights as safetensors (model.json names them relatively)."""
    return f"{model_dir(model)}/{CONVERTED}"


def generations(model: str, dataset: str) -> str:
    return f"{RESULTS}/generations/{model}/{dataset}.jsonl"


def graded(model: str, dataset: str) -> str:
    return f"{RESULTS}/graded/{model}/{dataset}.jsonl"


def calibration(model: str, recipe: str) -> str:
    return f"{RESULTS}/calibration/{model}/{recipe}.jsonl"


def pruned(model: str, method: str, recipe: str) -> str:
    return f"{RESULTS}/pruned/{model}/{method}/{recipe}"


def sparsity_record(model: str, method: str, recipe: str) -> str:
    """The pruned checkpoint's sparsity record, beside it: it outlives a checkpoint not kept."""
    return f"{pruned(model, method, recipe)}.json"


def record_of(result: str) -> str:
    """What stands for a result that may be removed once used: a pruned checkpoint's sparsity record."""
    parts = Path(result).parts
    checkpoint = len(parts) == 5 and parts[:2] == (RESULTS.name, "pruned") and not result.endswith(".json")
    return f"{result.rstrip('/')}.json" if checkpoint else result


def parts(output: str | Path) -> str:
    """Where a resumable job keeps its finished work until `output` is written."""
    return str(output).rstrip("/") + PARTS


def measurements(stage: str, *names: str) -> str:
    """Wall time and peak memory of one job: a measurement of the machine, not a result (not hashed)."""
    return f"{RESULTS}/measurements/{stage}/{'/'.join(names)}.json"


def eval_dir(model: str, method: str, recipe: str) -> str:
    """One evaluation job's output: samples and metrics of each benchmark the cell is evaluated on."""
    return f"{RESULTS}/eval/{model}/{method}/{recipe}"


def eval_samples(model: str, method: str, recipe: str, bench: str) -> str:
    return f"{eval_dir(model, method, recipe)}/{bench}.jsonl"


def eval_metrics(model: str, method: str, recipe: str, bench: str) -> str:
    return f"{eval_dir(model, method, recipe)}/{bench}.json"


def tasks_dir(model: str, method: str, recipe: str) -> str:
    """One task-suite job's output (the second paper's lm-eval tasks): a result and the per-document
    records of each task."""
    return f"{RESULTS}/tasks/{model}/{method}/{recipe}"


def task_result(model: str, method: str, recipe: str, task: str) -> str:
    return f"{tasks_dir(model, method, recipe)}/{task}.json"


def speed(model: str, method: str, recipe: str) -> str:
    """One model's measured size, prefill and decode throughput and peak memory (`prunebench speed`):
    a measurement of the machine, so the manifest does not hash it."""
    return f"{RESULTS}/speed/{model}/{method}/{recipe}.json"


def table(name: str, ext: str = "csv") -> str:
    """A table's file by its name in the output registry (prunebench.outputs): table2, lrm_tasks."""
    return f"{RESULTS}/tables/{name}.{ext}"


def figure(name: str, ext: str = "svg") -> str:
    """A figure's file by its name in the output registry: figure1, lrm_categories."""
    return f"{RESULTS}/figures/{name}.{ext}"


LRM = "lrm_"  # the second paper's outputs carry its prefix; table1..table8 and figure1..figure5 are the first paper's


def report(name: str) -> str:
    return f"{RESULTS}/report/{name}"


def verify(name: str) -> str:
    return f"{RESULTS}/verify/{name}"


MANIFEST = f"{RESULTS}/manifest.json"
# What describes the run and the machine rather than the results (folders, and the speed table that
# holds only measurements): the manifest does not list them.
SPEED_TABLE, SPEED_PAGE = f"{LRM}speed", "speed.html"  # results/tables/lrm_speed.*, results/report/speed.html
TRADEOFF_FIGURE = f"{LRM}tradeoff"  # results/figures/lrm_tradeoff.*: accuracy against measured speed
MEASURED_OUTPUTS = (SPEED_TABLE, TRADEOFF_FIGURE)  # outputs that hold measurements of the machine
UNHASHED = (f"{RESULTS}/logs", f"{RESULTS}/verify", f"{RESULTS}/measurements", f"{RESULTS}/speed",
            table(SPEED_TABLE, "csv"), table(SPEED_TABLE, "json"), report(SPEED_PAGE),
            *(figure(TRADEOFF_FIGURE, ext) for ext in ("svg", "pdf", "json")))
