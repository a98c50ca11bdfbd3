"""The second paper's task table and its figure: every task's score, the three category averages.

Rows are the dense model and each of `task_suite.methods` with each of `task_suite.recipes` (for
each model of the suite); columns are the lm-eval tasks, by category, then prunebench's reasoning
benchmarks, then the average of each category. A category average is over its tasks and is left
undefined (–) where one of them has no number, so that it never averages a different set of tasks
from one row to the next.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from . import paths
from .grid import scaled, speed_rows, study_rows, suite_rows
from .io import read_json, write_json, write_text
from .provenance import provenance
from .tables import benchmark_label, method_label, model_label
from .taskfiles import CATEGORIES, TASKS

TABLE, FIGURE = f"{paths.LRM}tasks", f"{paths.LRM}categories"  # results/tables/lrm_tasks.*, results/figures/lrm_categories.*


def column_label(name: str) -> str:
    """A column's label: the task registry's (taskfiles.TASKS), else the benchmark's."""
    return TASKS[name].label if name in TASKS else benchmark_label(name)


def status(config: dict) -> str:
    return "built" if suite_rows(config) else "not in this run"


def columns(config: dict) -> list[tuple[str, str, str]]:
    """(name, category, source) of every column, categories in order: lm-eval tasks ("task"),
    then prunebench benchmarks ("benchmark") in the reasoning category."""
    suite = config["task_suite"]
    cols = [(name, spec["category"], "task") for name, spec in suite["tasks"].items()]
    cols += [(bench, "reasoning", "benchmark") for bench in suite["reasoning"]]
    return sorted(cols, key=lambda c: CATEGORIES.index(c[1]))


def task_specs(config: dict) -> dict[str, dict]:
    """The suite's tasks as a task-suite job runs them: limits multiplied by `scale`."""
    out = {}
    for name, spec in config["task_suite"]["tasks"].items():
        out[name] = {**spec, "limit": None if spec["limit"] is None else scaled(spec["limit"], config["scale"])}
    return out


def table_config(config: dict) -> dict:
    """What the table and figure read of a config (their rules' params): enough to find the same
    rows as the workflow does (generator-only models included, so that they stay out of the rows)."""
    return {"models": {m: {"label": e.get("label"), "generator_only": e.get("generator_only", False)}
                       for m, e in config["models"].items()},
            "scale": config["scale"], "task_suite": config["task_suite"], "pruning": config["pruning"],
            "study": config["study"],
            "calibration": {k: config["calibration"][k] for k in ("recipes", "recipe_definitions", "sequences")},
            "recovery": config["recovery"],
            "evaluation": {k: config["evaluation"][k] for k in ("benchmarks", "samples", "max_new_tokens")}}


def required_inputs(config: dict) -> list[str]:
    """What the table needs built: each row's task-suite job, and its reasoning benchmarks' evaluation."""
    needed = []
    for row in suite_rows(config):
        if config["task_suite"]["tasks"]:
            needed.append(paths.tasks_dir(row.model, row.method, row.recipe))
        if config["task_suite"]["reasoning"]:
            needed.append(paths.eval_dir(row.model, row.method, row.recipe))
    return needed


def read_inputs(config: dict) -> list[str]:
    """The files the table reads (its provenance)."""
    files = []
    for row in suite_rows(config):
        for name, _, source in columns(config):
            files.append(paths.task_result(row.model, row.method, row.recipe, name) if source == "task" else
                         paths.eval_metrics(row.model, row.method, row.recipe, name))
    return files


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def assemble(config: dict, root: str | Path = ".") -> "pd.DataFrame":  # noqa: F821
    """One record per row: each column's score and standard error, the category averages, a note."""
    import pandas as pd

    cols = columns(config)
    records = []
    for row in suite_rows(config):
        record = {"model": row.model, "method": row.method, "recipe": row.recipe}
        notes = []
        for name, _, source in cols:
            if source == "task":
                result = read_json(Path(root) / paths.task_result(row.model, row.method, row.recipe, name))
                record[name], record[name + "_se"] = _number(result["score"]), _number(result["stderr"])
                notes.append(result.get("error") or result.get("skipped"))
            else:
                metrics = read_json(Path(root) / paths.eval_metrics(row.model, row.method, row.recipe, name))
                record[name], record[name + "_se"] = _number(metrics["pass@1"]), _number(metrics["stderr"])
                notes.append(metrics.get("skipped"))
        for category in CATEGORIES:
            values = [record[name] for name, c, _ in cols if c == category]
            record[category] = sum(values) / len(values) if values else float("nan")  # NaN if one is missing
        record["note"] = next((n for n in notes if n), "")
        records.append(record)
    names = [c[0] for c in cols]
    order = ["model", "method", "recipe"] + names + list(CATEGORIES) + [n + "_se" for n in names] + ["note"]
    return pd.DataFrame.from_records(records, columns=order)


def caption(config: dict) -> str:
    """What this run's task table holds: models, methods, tasks with their document counts."""
    table_rows = suite_rows(config)
    if not table_rows:
        return "Tasks of the second paper by category: not part of this run."
    models = ", ".join(model_label(config, m) for m in dict.fromkeys(r.model for r in table_rows))
    methods = ", ".join(method_label(m) for m in dict.fromkeys(r.method for r in table_rows) if m != paths.DENSE)
    counts = []
    for name, spec in task_specs(config).items():
        counts.append(f"{column_label(name)} {spec['limit'] if spec['limit'] else 'all'}")
    for bench in config["task_suite"]["reasoning"]:
        counts.append(f"{column_label(bench)} {scaled(config['evaluation']['benchmarks'][bench], config['scale'])}")
    metrics = ", ".join(f"{column_label(n)} {s['metric']}" for n, s in config["task_suite"]["tasks"].items())
    return (f"Tasks of the second paper by category: {models}; dense{', ' + methods if methods else ''}. "
            f"Documents per task (a seeded subset, the same for every row): {', '.join(counts)}. "
            f"Metrics: {metrics}{'; ' if metrics else ''}reasoning benchmarks pass@1. Scores in %, ± standard error.")


def write_table(config: dict, out_csv: str | Path, out_json: str | Path, root: str | Path = ".") -> None:
    frame = assemble(config, root)
    prov = provenance([Path(root) / p for p in read_inputs(config)])
    header = "# " + json.dumps({"table": TABLE, "provenance": prov}, sort_keys=True) + "\n"
    write_text(out_csv, header + frame.to_csv(index=False, float_format="%.4f"))
    write_json(out_json, {
        "table": TABLE,
        "status": status(config),
        "caption": caption(config),
        "columns": [{"name": n, "label": column_label(n), "category": c, "source": s} for n, c, s in columns(config)],
        "categories": list(CATEGORIES),
        "rows": json.loads(frame.to_json(orient="records")),
        "provenance": prov,
    })


def write_figure(config: dict, out_svg: str | Path, out_pdf: str | Path, out_json: str | Path,
                 root: str | Path = ".") -> None:
    """Category averages per row, one panel per model: the shape of the second paper's comparison
    (which family keeps which kind of ability)."""
    from .figures import COLORS, drawable, plt, save_figure

    table_rows = suite_rows(config)
    models = list(dict.fromkeys(r.model for r in table_rows))
    present = [c for c in CATEGORIES if any(col[1] == c for col in columns(config))]
    if not table_rows:
        fig, ax = plt.subplots(figsize=(7.0, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "Task categories: not in this run", ha="center", va="center", fontsize=12)
    else:
        frame = assemble(config, root)
        fig, axes = plt.subplots(len(models), 1, figsize=(7.0, 2.6 * len(models) + 0.55), squeeze=False)
        for ax, model in zip(axes[:, 0], models):
            mine = frame[frame.model == model]
            labels = [method_label(m) + ("" if r == paths.NO_RECIPE else f" / {r}") for m, r in zip(mine.method, mine.recipe)]
            width = 0.8 / max(len(present), 1)
            for i, category in enumerate(present):
                xs = [g + (i - (len(present) - 1) / 2) * width for g in range(len(labels))]
                values = [0.0 if math.isnan(v) else v for v in mine[category]]
                ax.bar(xs, values, width=width * 0.95, label=category, color=COLORS[i % len(COLORS)])
                for x, v in zip(xs, mine[category]):
                    if math.isnan(v):
                        ax.text(x, 0, "–", ha="center", va="bottom", fontsize=7)
            ax.set_xticks(range(len(labels)), [drawable(label) for label in labels], rotation=30, ha="right", fontsize=7)
            ax.set_ylabel("category average (%)")
            ax.set_title(drawable(model_label(config, model)), fontsize=9)
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="upper center", ncols=len(names), frameon=False, fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / fig.get_figheight()))
    prov = provenance([Path(root) / p for p in read_inputs(config)])
    save_figure(fig, out_svg, out_pdf, json.dumps({"figure": FIGURE, "provenance": prov}, sort_keys=True))
    write_json(out_json, {"figure": FIGURE, "status": status(config),
                          "caption": "Category averages of the second paper's tasks per pruned model "
                                     "(– where a category has no number).",
                          "categories": present, "provenance": prov})


SPEED_FIELDS = ("parameters", "checkpoint_bytes", "prefill_tokens_per_second", "decode_tokens_per_second",
                "peak_memory_bytes")


def speed_inputs(config: dict) -> list[str]:
    """What the speed table reads: each row's speed measurement and each pruned row's sparsity
    record, and the task table where the suite runs (its category averages sit beside the speed)."""
    needed = []
    for row in speed_rows(config):
        needed.append(paths.speed(row.model, row.method, row.recipe))
        if row.method != paths.DENSE:
            needed.append(paths.sparsity_record(row.model, row.method, row.recipe))
    if suite_rows(config):
        needed.append(paths.table(TABLE, "json"))
    return needed


def assemble_speed(config: dict, root: str | Path = ".") -> "pd.DataFrame":  # noqa: F821
    """One record per speed row: what was removed, size and throughput, each relative to its dense
    model measured the same way, and the row's category averages from the task table."""
    import pandas as pd

    root = Path(root)
    accuracy = {}
    if suite_rows(config):
        for record in read_json(root / paths.table(TABLE, "json"))["rows"]:
            accuracy[(record["model"], record["method"], record["recipe"])] = record
    records, dense = [], {}
    for row in speed_rows(config):
        measured = read_json(root / paths.speed(row.model, row.method, row.recipe))
        record = {"model": row.model, "method": row.method, "recipe": row.recipe,
                  **{field: measured[field] for field in SPEED_FIELDS},
                  "skipped_when_timed": measured.get("routing", {}).get("skipped_fraction")}
        if row.method == paths.DENSE:
            dense[row.model] = record
            record.update(family="dense", removed=0.0)
        else:
            pruned = read_json(root / paths.sparsity_record(row.model, row.method, row.recipe))
            record.update(family=pruned.get("family", "unstructured"), removed=pruned.get("overall_sparsity"))
        base = dense[row.model]
        for field in SPEED_FIELDS:
            record[field + "_vs_dense"] = record[field] / base[field] if base[field] else float("nan")
        scores = accuracy.get((row.model, row.method, row.recipe), {})
        for category in CATEGORIES:
            record[category] = _number(scores.get(category))
        records.append(record)
    order = (["model", "method", "recipe", "family", "removed", "skipped_when_timed"] + list(SPEED_FIELDS)
             + [f + "_vs_dense" for f in SPEED_FIELDS] + list(CATEGORIES))
    return pd.DataFrame.from_records(records, columns=order)


def speed_caption(config: dict) -> str:
    study = config["study"]
    if not study_rows(config):
        return "Speed and size of structured pruning: not part of this run."
    settings = study["speed"]
    return ("Speed and size of every structured model against its dense model, measured alone on the same "
            f"machine and backend: {settings['prompt_tokens']}-token seeded prompts, batch {settings['batch_size']}, "
            f"prefill, then {settings['new_tokens']} greedy decode steps; median of {settings['repeats']} timed repeats. "
            "Removed: the fraction of decoder-block parameters (dynamic methods: of routed block-tokens skipped on "
            "the calibration tokens; skipped when timed: during these runs). A name ending +NAME is that model after "
            "recovery NAME. Category averages from the task table beside them. "
            "Measurements of this machine: they differ from one machine to the next.")


def write_speed_table(config: dict, out_csv: str | Path, out_json: str | Path, root: str | Path = ".") -> None:
    frame = assemble_speed(config, root) if study_rows(config) else None
    prov = provenance([Path(root) / p for p in speed_inputs(config)])
    header = "# " + json.dumps({"table": paths.SPEED_TABLE, "provenance": prov}, sort_keys=True) + "\n"
    write_text(out_csv, header + ("" if frame is None else frame.to_csv(index=False, float_format="%.4f")))
    write_json(out_json, {
        "table": paths.SPEED_TABLE,
        "status": "built" if frame is not None else "not in this run",
        "caption": speed_caption(config),
        "categories": [c for c in CATEGORIES if suite_rows(config) and any(col[1] == c for col in columns(config))],
        "rows": [] if frame is None else json.loads(frame.to_json(orient="records")),
        "provenance": prov,
    })
