"""The paper's figures, drawn with matplotlib from the same table frames the tables use.

SVG for the HTML page, PDF for LaTeX. Dates and element ids are pinned, so the same numbers give
the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import paths  # noqa: E402
from .grid import table_benchmarks, token_limit  # noqa: E402
from .io import atomic_path, write_json  # noqa: E402
from .provenance import provenance  # noqa: E402
from .tables import (benchmark_label, FIGURES, assemble, caption, method_label, model_label,  # noqa: E402
                     read_inputs, recipe_label)

plt.rcParams.update({"svg.hashsalt": "prunebench", "svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                     "axes.spines.right": False})
FIGURE1_RECIPES = ("c4", "mathr", "ssgr")
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def drawable(text: str) -> str:
    """Text matplotlib draws literally: a `$` would start mathtext, which fails on most labels."""
    return str(text).replace("$", r"\$")


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width=width * 0.95, label=drawable(name), color=COLORS[i % len(COLORS)])
    ax.set_xticks(range(len(groups)), [drawable(g) for g in groups])
    ax.set_ylabel(ylabel)


def _recipe_series(config: dict, benches: list[str], dense, rows, recipes,
                   column: str = "") -> dict[str, list[float]]:
    """Per benchmark: the dense row's value, then each recipe's row (recipes without a row are left
    out). `column` picks pass@1 ("") or another per-benchmark column ("_tokens")."""
    series = {"Dense": [float(dense.iloc[0][b + column]) for b in benches]} if len(dense) else {}
    for recipe in recipes:
        row = rows[rows.recipe == recipe]
        if len(row):
            series[recipe_label(config, recipe)] = [float(row.iloc[0][b + column]) for b in benches]
    return series


def _panel_rows(frame, model: str, method: str):
    """The dense row and one method's rows of one model."""
    mine = frame[frame.model == model]
    return mine[mine.method == paths.DENSE], mine[mine.method == method]


def figure1(config: dict, frame, ax, model: str, benches: list[str]) -> str:
    """Dense vs the pruned model calibrated on C4, MathR and SSGR, per benchmark."""
    method = config["pruning"]["methods"][0]
    dense, pruned = _panel_rows(frame, model, method)
    _grouped_bars(ax, [benchmark_label(b) for b in benches],
                  _recipe_series(config, benches, dense, pruned, FIGURE1_RECIPES), "pass@1 (%)")
    return method_label(method)


def figure2(config: dict, frame, ax, model: str, benches: list[str]) -> str:
    """Dense vs the three kinds of calibration data: pre-training (best per benchmark), MathR, SGR."""
    method = config["pruning"]["methods"][0]
    dense, pruned = _panel_rows(frame, model, method)
    definitions = config["calibration"]["recipe_definitions"]
    kinds = {"Pre-training": "pretraining", "Math reasoning": "gold", "Self-generated": "sgr"}
    series = {"Dense": [float(dense.iloc[0][b]) for b in benches]}
    for label, kind in kinds.items():
        rows = pruned[pruned.recipe.map(lambda r: definitions.get(r, {}).get("type") == kind)]
        if len(rows):
            series[label] = [float(rows[b].max()) for b in benches]
    _grouped_bars(ax, [benchmark_label(b) for b in benches], series, "pass@1 (%)")
    return method_label(method)


def figure3(config: dict, frame, ax, model: str, benches: list[str]) -> str:
    """Dense vs calibration data of each difficulty band (Table 4's rows), per benchmark."""
    experiment = config["experiments"]["table4"]
    dense, pruned = _panel_rows(frame, model, experiment["method"])
    _grouped_bars(ax, [benchmark_label(b) for b in benches],
                  _recipe_series(config, benches, dense, pruned, experiment["recipes"]), "pass@1 (%)")
    return method_label(experiment["method"])


def figure4(config: dict, frame, ax, model: str, benches: list[str]) -> str:
    """Average pass@1 of SparseGPT at each setting, one bar per calibration recipe; the dense
    model's average as a line."""
    grid = config["experiments"]["figure4"]
    rows = frame[frame.model == model]
    series = {}
    for recipe in grid["recipes"]:
        values = []
        for method in grid["methods"]:
            row = rows[(rows.method == method) & (rows.recipe == recipe)]
            values.append(float(row.iloc[0]["AVG"]) if len(row) else float("nan"))
        series[recipe_label(config, recipe)] = values
    _grouped_bars(ax, [method_label(m) for m in grid["methods"]], series,
                  f"average pass@1 (%), {', '.join(benchmark_label(b) for b in benches)}")
    dense = rows[rows.method == paths.DENSE]
    if len(dense):
        ax.axhline(float(dense.iloc[0]["AVG"]), color="#333333", linestyle="--", linewidth=1, label="Dense")
    return "SparseGPT settings"


def figure5(config: dict, frame, ax, model: str, benches: list[str]) -> str:
    """Mean response length per benchmark: the dense model and the pruned one on each recipe. A
    response cut at the token limit counts at that limit, so rambling shows as length."""
    method = config["pruning"]["methods"][0]
    dense, pruned = _panel_rows(frame, model, method)
    _grouped_bars(ax, [benchmark_label(b) for b in benches],
                  _recipe_series(config, benches, dense, pruned, config["calibration"]["recipes"], "_tokens"),
                  "mean response length (tokens)")
    limits = [token_limit(config, b) for b in benches]
    if len(set(limits)) == 1:
        ax.axhline(limits[0], color="#333333", linestyle=":", linewidth=1, label="token limit")
    else:   # a benchmark with its own limit: a mark over its group of bars
        ax.hlines(limits, [i - 0.45 for i in range(len(benches))], [i + 0.45 for i in range(len(benches))],
                  color="#333333", linestyle=":", linewidth=1, label="token limit")
    return method_label(method)


def save_figure(fig, out_svg: str | Path, out_pdf: str | Path, description: str) -> None:
    """SVG and PDF of a figure, without a creation date (same numbers, same bytes); then closed."""
    for out, fmt, meta in ((out_svg, "svg", {"Date": None, "Description": description}),
                           (out_pdf, "pdf", {"CreationDate": None, "Subject": description})):
        with atomic_path(out, suffix="." + fmt) as tmp:
            fig.savefig(tmp, format=fmt, metadata=meta)
    plt.close(fig)


DRAW = {1: figure1, 2: figure2, 3: figure3, 4: figure4, 5: figure5}
PANEL_HEIGHT, LEGEND_HEIGHT, WIDTH = 2.4, 0.55, 7.0  # inches; the page draws figures at their width


def write_figure(config: dict, number: int, out_svg: str | Path, out_pdf: str | Path, out_json: str | Path,
                 root: str | Path = ".") -> None:
    """One panel per model of the figure's rows, stacked, with one legend above them all (outside
    the data, so no bar hides behind it)."""
    spec = FIGURES[number]
    status = spec.status(config)
    models = list(dict.fromkeys(row.model for row in spec.rows(config)))
    benches = table_benchmarks(config, number, "figure")
    subtitles = []
    if status != "built":
        fig, ax = plt.subplots(figsize=(WIDTH, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"Figure {number}: {status}", ha="center", va="center", fontsize=12)
        fig.tight_layout()
    else:
        frame = assemble(config, number, root, "figure")
        fig, axes = plt.subplots(len(models), 1, figsize=(WIDTH, PANEL_HEIGHT * len(models) + LEGEND_HEIGHT),
                                 squeeze=False)
        for ax, model in zip(axes[:, 0], models):
            what = DRAW[number](config, frame, ax, model, benches)
            subtitles.append(f"{model_label(config, model)}, {what}")
            ax.set_title(drawable(subtitles[-1]), fontsize=9)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncols=min(len(labels), 5), frameon=False, fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 1 - LEGEND_HEIGHT / fig.get_figheight()))
    inputs = [Path(root) / p for p in read_inputs(config, number, "figure")]
    prov = provenance(inputs)
    save_figure(fig, out_svg, out_pdf, json.dumps({"figure": number, "provenance": prov}, sort_keys=True))
    write_json(out_json, {"figure": number, "status": status, "experiment": spec.experiment,
                          "caption": caption(config, number, "figure"), "subtitle": "; ".join(subtitles),
                          "benchmarks": benches, "provenance": prov})
