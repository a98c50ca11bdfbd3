"""Accuracy along the thinking budget, from the generations the evaluation already made.

A response sampled with up to N new tokens begins with the response the same request would give
with up to B < N: its seed fixes every draw, and the budget only says where to stop. So every
evaluated cell is graded at a ladder of budgets (fractions of its benchmark's token limit:
`evaluation.max_new_tokens`, or the benchmark's own under `evaluation.token_limits`) without
generating again: at budget B a sample counts as correct only if it was correct and finished
within B tokens; one that had not finished by B is cut off there, and a cut-off answer counts as
wrong, as the paper's rule for truncated responses says.

Beside it, how long each cell takes to reach an answer: per problem the mean tokens of its correct
samples, and per pruned cell the difference from its dense model over the problems both solve
(paired, with its standard error). A pruned model that "thinks longer" (RAC, arXiv 2509.12464)
shows here as a positive difference beyond its noise.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from . import paths
from .evaluation import mean_and_se, pass_at_1
from .grid import Row, cell_benchmarks, required_rows, token_limit
from .io import iter_jsonl, write_json
from .provenance import provenance

LADDER = (0.25, 0.5, 0.75, 1.0)   # budgets as fractions of a benchmark's token limit
Z = 2.0                             # a token difference is called longer or shorter beyond Z standard errors
LONGER, SHORTER, NOT_SEPARABLE, TOO_FEW = "longer", "shorter", "not separable", "too few problems"


def budgets(max_new_tokens: int) -> list[int]:
    """The ladder in tokens: each fraction of a token limit, at least one token."""
    return [max(1, round(fraction * max_new_tokens)) for fraction in LADDER]


def step(fraction: float) -> str:
    """A ladder step's key in a row: `pass@1@0.25` is pass@1 within a quarter of the limit."""
    return f"{fraction:g}"


def correct_within(sample: dict, budget: int) -> bool:
    """Whether a sample is correct at `budget`: correct, and finished within it."""
    return bool(sample["correct"]) and sample["finish"] == "stop" and sample["tokens"] <= budget


def accuracy_at(samples: list[dict], budget: int) -> tuple[float, float, int]:
    """pass@1 in % at a budget and its standard error over problems (evaluation.pass_at_1 with each
    sample correct only within the budget), and the number of problems."""
    value, se = pass_at_1([{**s, "correct": correct_within(s, budget)} for s in samples])
    return value, se, len({s["id"] for s in samples})


def tokens_to_answer(samples: list[dict]) -> dict[str, float]:
    """Per problem it solves (at least one correct sample): the mean tokens of its correct samples."""
    per: dict[str, list[int]] = defaultdict(list)
    for sample in samples:
        if sample["correct"]:
            per[str(sample["id"])].append(sample["tokens"])
    return {problem: statistics.fmean(tokens) for problem, tokens in per.items()}


def paired_difference(dense: dict[str, float], pruned: dict[str, float]) -> dict:
    """Pruned minus dense tokens-to-answer over the problems both solve: mean, standard error, n,
    and a verdict that claims a direction only beyond Z standard errors."""
    differences = [pruned[p] - dense[p] for p in sorted(set(dense) & set(pruned))]
    mean, se = mean_and_se(differences)
    if len(differences) < 2:
        return {"difference": mean, "se": se, "problems": len(differences), "verdict": TOO_FEW}
    if se == 0:
        verdict = NOT_SEPARABLE if mean == 0 else (LONGER if mean > 0 else SHORTER)
    else:
        verdict = LONGER if mean > Z * se else SHORTER if mean < -Z * se else NOT_SEPARABLE
    return {"difference": mean, "se": se, "problems": len(differences), "verdict": verdict}


# ---------------------------------------------------------------- over a run's results
# (each writer takes the output registry's arguments: the config it reads, its files, the root)

def cells(config: dict) -> dict[Row, list[str]]:
    """Every evaluated cell and its benchmarks (the grid's), the dense models first."""
    found = cell_benchmarks(config)
    return dict(sorted(found.items(), key=lambda item: (item[0].model, item[0].method != paths.DENSE)))


def figure_cells(config: dict) -> list[Row]:
    """The cells the figures draw: Table 2's (the dense model and the headline methods on every
    recipe); the tables list every cell."""
    shown = set(required_rows(config, 2, "table"))
    return [row for row in cells(config) if row in shown]


def config_read(config: dict) -> dict:
    """What the budget outputs read of a config (their rules' params): the grid of both papers, the
    evaluation's settings, the labels."""
    from . import suite, tables

    return {**suite.table_config(config), **tables.table_config(config)}


def inputs(config: dict) -> list[str]:
    """What the budget outputs need built: every evaluated cell's evaluation."""
    return list(dict.fromkeys(paths.eval_dir(r.model, r.method, r.recipe) for r in cells(config)))


def _samples_files(config: dict) -> list[tuple[Row, str, str]]:
    return [(row, bench, paths.eval_samples(row.model, row.method, row.recipe, bench))
            for row, benches in cells(config).items() for bench in benches]


def _samples(root: Path, path: str) -> list[dict]:
    return [s for s in iter_jsonl(root / path) if "id" in s] if (root / path).exists() else []


def accuracy_rows(config: dict, root: Path) -> list[dict]:
    """One row per evaluated cell and benchmark: its ladder in tokens (of the benchmark's limit),
    and pass@1 and its standard error at each step."""
    rows = []
    for row, bench, path in _samples_files(config):
        samples = _samples(root, path)
        ladder = budgets(token_limit(config, bench))
        out = {"model": row.model, "method": row.method, "recipe": row.recipe, "benchmark": bench,
               "problems": len({s["id"] for s in samples}), "samples": len(samples), "budgets": ladder}
        for fraction, budget in zip(LADDER, ladder):
            value, se, _ = accuracy_at(samples, budget)
            out[f"pass@1@{step(fraction)}"], out[f"se@{step(fraction)}"] = value, se
        rows.append(out)
    return rows


def token_rows(config: dict, root: Path) -> list[dict]:
    """One row per pruned cell: its tokens-to-answer against its dense model's over the problems
    both solve (problems keyed by benchmark and id, over every benchmark the two share)."""
    solved: dict[Row, dict[str, float]] = defaultdict(dict)
    correct_tokens: dict[Row, list[int]] = defaultdict(list)
    grid = cells(config)
    for row, bench, path in _samples_files(config):
        samples = _samples(root, path)
        solved[row].update({f"{bench}/{p}": t for p, t in tokens_to_answer(samples).items()})
        correct_tokens[row] += [s["tokens"] for s in samples if s["correct"]]
    rows = []
    for row, benches in grid.items():
        if row.method == paths.DENSE:
            continue
        dense = Row(row.model, paths.DENSE, paths.NO_RECIPE)
        shared = [b for b in benches if b in grid.get(dense, [])]
        ours = {k: v for k, v in solved[row].items() if k.split("/", 1)[0] in shared}
        theirs = {k: v for k, v in solved[dense].items() if k.split("/", 1)[0] in shared}
        rows.append({"model": row.model, "method": row.method, "recipe": row.recipe, "benchmarks": shared,
                     "solved": len(ours), "dense_solved": len(theirs),
                     "mean_tokens_correct": statistics.fmean(correct_tokens[row]) if correct_tokens[row] else math.nan,
                     "dense_mean_tokens_correct": (statistics.fmean(correct_tokens[dense])
                                                   if correct_tokens[dense] else math.nan),
                     **paired_difference(theirs, ours)})
    return rows


def _provenance(config: dict, root: Path):
    return provenance([root / path for _, _, path in _samples_files(config) if (root / path).exists()])


def write_accuracy_table(config: dict, files: dict, root: Path) -> None:
    from .tables import write_rows

    rows, ladder = accuracy_rows(config, root), budgets(config["evaluation"]["max_new_tokens"])
    own = config["evaluation"]["token_limits"]
    write_rows(files, "budget", rows, {
        "status": "built" if rows else "not part of this run", "budgets": ladder, "fractions": list(LADDER),
        "steps": [step(f) for f in LADDER],
        "caption": (f"pass@1 in % of every evaluated cell at {', '.join(f'{f:g}' for f in LADDER)} of its benchmark's "
                    f"token limit ({', '.join(map(str, ladder))} of the evaluation's "
                    f"{config['evaluation']['max_new_tokens']}"
                    + "".join(f"; {', '.join(map(str, budgets(n)))} of {b}'s {n}" for b, n in own.items()) + "), "
                    "from the one generation each cell already made: a sample counts as correct at a budget only if "
                    "it was correct and finished within it. ± is the standard error over problems.")},
        _provenance(config, root))


def write_tokens_table(config: dict, files: dict, root: Path) -> None:
    from .tables import write_rows

    rows = token_rows(config, root)
    write_rows(files, "tokens_to_answer", rows, {
        "status": "built" if rows else "not part of this run", "z": Z,
        "caption": ("Tokens to an answer: for every pruned cell, its correct responses' mean length per problem minus "
                    "its dense model's, over the problems both solve (paired, ± its standard error); longer or shorter "
                    f"only beyond {Z:g} standard errors, and too few problems where fewer than two are solved by both.")},
        _provenance(config, root))


# ---------------------------------------------------------------- figures

def _series_label(config: dict, row: Row) -> str:
    from .tables import method_label, recipe_label

    if row.method == paths.DENSE:
        return "Dense"
    return f"{method_label(row.method)} / {recipe_label(config, row.recipe)}"


def write_accuracy_figure(config: dict, files: dict, root: Path) -> None:
    """pass@1 against budget: one panel per model and benchmark, a line per cell."""
    out_svg, out_pdf, out_json = files["svg"], files["pdf"], files["json"]
    import matplotlib.pyplot as plt

    from .figures import WIDTH, drawable, save_figure
    from .tables import benchmark_label, model_label

    drawn = set(figure_cells(config))
    rows = [r for r in accuracy_rows(config, root) if Row(r["model"], r["method"], r["recipe"]) in drawn]
    ladder = budgets(config["evaluation"]["max_new_tokens"])
    panels = list(dict.fromkeys((r["model"], r["benchmark"]) for r in rows))
    prov = _provenance(config, root)
    columns = 2 if len(panels) > 1 else 1
    lines = max(1, math.ceil(len(panels) / columns))
    fig, axes = plt.subplots(lines, columns, figsize=(7.0 if columns == 2 else WIDTH, 2.4 * lines + 0.8), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (model, bench) in zip(axes.flat, panels):
        for r in (r for r in rows if (r["model"], r["benchmark"]) == (model, bench)):
            row = Row(r["model"], r["method"], r["recipe"])
            ax.plot(r["budgets"], [r[f"pass@1@{step(f)}"] for f in LADDER], marker="o", markersize=3,
                    linestyle="--" if row.method == paths.DENSE else "-", label=drawable(_series_label(config, row)))
        problems = next(r["problems"] for r in rows if (r["model"], r["benchmark"]) == (model, bench))
        ax.set_title(drawable(f"{model_label(config, model)}, {benchmark_label(bench)} ({problems} problems)"), fontsize=8)
        ax.set_xlabel("token budget", fontsize=7)
        ax.set_ylabel("pass@1 (%)", fontsize=7)
        ax.set_xticks(budgets(token_limit(config, bench)))
        ax.tick_params(labelsize=7)
    if panels:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncols=min(len(labels), 4), frameon=False, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.8 / fig.get_figheight()))
    save_figure(fig, out_svg, out_pdf, json.dumps({"figure": "budget_curve", "provenance": prov}, sort_keys=True))
    write_json(out_json, {"status": "built" if panels else "not part of this run", "budgets": ladder,
                          "caption": ("pass@1 against the token budget, per model and benchmark, a line per cell of "
                                      "Table 2 (dashed: the dense model), graded from the one generation each cell made "
                                      "(a response not finished within a budget counts as wrong there)."),
                          "provenance": prov})


def write_tokens_figure(config: dict, files: dict, root: Path) -> None:
    """The distribution of response lengths per model, dense against each pruned cell: correct
    responses (tokens to an answer) in one panel, all responses in the other."""
    out_svg, out_pdf, out_json = files["svg"], files["pdf"], files["json"]
    import matplotlib.pyplot as plt

    from .figures import drawable, save_figure
    from .tables import model_label

    grid = figure_cells(config)
    models = list(dict.fromkeys(row.model for row in grid))
    prov = _provenance(config, root)
    lengths: dict[Row, dict[str, list[int]]] = defaultdict(lambda: {"correct": [], "all": []})
    for row, _, path in _samples_files(config):
        if row not in grid:
            continue
        for sample in _samples(root, path):
            lengths[row]["all"].append(sample["tokens"])
            if sample["correct"]:
                lengths[row]["correct"].append(sample["tokens"])
    fig, axes = plt.subplots(max(1, len(models)), 2, figsize=(7.0, 2.6 * max(1, len(models)) + 0.8), squeeze=False)
    for line, model in zip(axes, models):
        for ax, which in zip(line, ("correct", "all")):
            for row in (r for r in grid if r.model == model):
                values = sorted(lengths[row][which])
                if values:
                    ax.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post",
                            linestyle="--" if row.method == paths.DENSE else "-",
                            label=drawable(_series_label(config, row)))
            ax.set_title(drawable(f"{model_label(config, model)}: {'correct responses' if which == 'correct' else 'all responses'}"),
                         fontsize=8)
            ax.set_xlabel("tokens", fontsize=7)
            ax.set_ylabel("fraction of responses", fontsize=7)
            ax.tick_params(labelsize=7)
    if models:
        handles, labels = axes[0, 1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncols=min(len(labels), 4), frameon=False, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.8 / fig.get_figheight()))
    save_figure(fig, out_svg, out_pdf, json.dumps({"figure": "tokens_distribution", "provenance": prov}, sort_keys=True))
    write_json(out_json, {"status": "built" if models else "not part of this run",
                          "caption": ("Response lengths, dense against every pruned cell of Table 2, per model: the cumulative "
                                      "share of correct responses (tokens to an answer) and of all responses within "
                                      "each length."),
                          "provenance": prov})
