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
from .io import atomic_path, write_json  # noqa: E402
from .provenance import provenance  # noqa: E402
from .tables import (BENCHMARK_LABELS, FIGURES, assemble, benchmarks, method_label, model_label,  # noqa: E402
                     recipe_label, required_inputs)

plt.rcParams.update({"svg.hashsalt": "prunebench", "svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                     "axes.spines.right": False})
FIGURE1_RECIPES = ("c4", "mathr", "ssgr")
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width=width * 0.95, label=name, color=COLORS[i % len(COLORS)])
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize=8, ncols=min(len(series), 4))


def _recipe_series(benches: list[str], dense, rows, recipes, column: str = "") -> dict[str, list[float]]:
    """Per benchmark: the dense row's value, then each recipe's row (recipes without a row are left
    out). `column` picks pass@1 ("") or another per-benchmark column ("_tokens")."""
    series = {"Dense": [float(dense.iloc[0][b + column]) for b in benches]} if len(dense) else {}
    for recipe in recipes:
        row = rows[rows.recipe == recipe]
        if len(row):
            series[recipe_label(recipe)] = [float(row.iloc[0][b + column]) for b in benches]
    return series


def _first_method_rows(config: dict, frame):
    """Rows of the first model and the first configured method (the paper's figures use SparseGPT)."""
    model, method = next(iter(config["models"])), config["pruning"]["methods"][0]
    dense = frame[(frame.model == model) & (frame.method == paths.DENSE)]
    pruned = frame[(frame.model == model) & (frame.method == method)]
    return model, method, dense, pruned


def figure1(config: dict, frame, ax) -> str:
    """Dense vs the pruned model calibrated on C4, MathR and SSGR, per benchmark."""
    model, method, dense, pruned = _first_method_rows(config, frame)
    benches = benchmarks(config)
    series = _recipe_series(benches, dense, pruned, FIGURE1_RECIPES)
    _grouped_bars(ax, [BENCHMARK_LABELS.get(b, b) for b in benches], series, "pass@1 (%)")
    return f"{model_label(config, model)}, {method_label(method)}"


def figure2(config: dict, frame, ax) -> str:
    """Dense vs the three kinds of calibration data: pre-training (best per benchmark), MathR, SGR."""
    model, method, dense, pruned = _first_method_rows(config, frame)
    benches = benchmarks(config)
    definitions = config["calibration"]["recipe_definitions"]
    kinds = {"Pre-training": "pretraining", "Math reasoning": "gold", "Self-generated": "sgr"}
    series = {"Dense": [float(dense.iloc[0][b]) for b in benches]}
    for label, kind in kinds.items():
        rows = pruned[pruned.recipe.map(lambda r: definitions.get(r, {}).get("type") == kind)]
        if len(rows):
            series[label] = [float(rows[b].max()) for b in benches]
    _grouped_bars(ax, [BENCHMARK_LABELS.get(b, b) for b in benches], series, "pass@1 (%)")
    return f"{model_label(config, model)}, {method_label(method)}"


def figure3(config: dict, frame, ax) -> str:
    """Dense vs calibration data of each difficulty band (Table 4's rows), per benchmark."""
    model = next(iter(config["models"]))
    experiment = config["experiments"]["table4"]
    rows = frame[frame.model == model]
    benches = benchmarks(config)
    series = _recipe_series(benches, rows[rows.method == paths.DENSE], rows[rows.method == experiment["method"]],
                            experiment["recipes"])
    _grouped_bars(ax, [BENCHMARK_LABELS.get(b, b) for b in benches], series, "pass@1 (%)")
    return f"{model_label(config, model)}, {method_label(experiment['method'])}"


def figure4(config: dict, frame, ax) -> str:
    """Average pass@1 of SparseGPT at each further setting, one bar per calibration recipe; the
    dense model's average as a line."""
    grid = config["experiments"]["figure4"]
    model = next(iter(config["models"]))
    rows = frame[frame.model == model]
    series = {}
    for recipe in grid["recipes"]:
        values = []
        for method in grid["methods"]:
            row = rows[(rows.method == method) & (rows.recipe == recipe)]
            values.append(float(row.iloc[0]["AVG"]) if len(row) else float("nan"))
        series[recipe_label(recipe)] = values
    _grouped_bars(ax, [method_label(m) for m in grid["methods"]], series, "average pass@1 (%)")
    dense = rows[rows.method == paths.DENSE]
    if len(dense):
        ax.axhline(float(dense.iloc[0]["AVG"]), color="#333333", linestyle="--", linewidth=1)
        ax.annotate("Dense", (ax.get_xlim()[1], float(dense.iloc[0]["AVG"])), fontsize=8, ha="right", va="bottom")
    return model_label(config, model)


def figure5(config: dict, frame, ax) -> str:
    """Mean response length per benchmark: the dense model and the pruned one on each recipe. A
    response cut at the token limit counts at that limit, so rambling shows as length."""
    model, method, dense, pruned = _first_method_rows(config, frame)
    benches = benchmarks(config)
    series = _recipe_series(benches, dense, pruned, config["calibration"]["recipes"], "_tokens")
    _grouped_bars(ax, [BENCHMARK_LABELS.get(b, b) for b in benches], series, "mean response length (tokens)")
    limit = config["evaluation"]["max_new_tokens"]
    ax.axhline(limit, color="#333333", linestyle=":", linewidth=1)
    ax.annotate("token limit", (ax.get_xlim()[1], limit), fontsize=8, ha="right", va="bottom")
    return f"{model_label(config, model)}, {method_label(method)}"


DRAW = {1: figure1, 2: figure2, 3: figure3, 4: figure4, 5: figure5}


def write_figure(config: dict, number: int, out_svg: str | Path, out_pdf: str | Path, out_json: str | Path,
                 root: str | Path = ".") -> None:
    spec = FIGURES[number]
    status = spec.status(config)
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    if status != "built":
        ax.axis("off")
        ax.text(0.5, 0.5, f"Figure {number}: {status}", ha="center", va="center", fontsize=12)
        subtitle = ""
    else:
        subtitle = DRAW[number](config, assemble(config, number, root, "figure"), ax)
        ax.set_title(subtitle, fontsize=9)
    fig.tight_layout()
    inputs = [Path(root) / p for p in required_inputs(config, number, "figure")]
    prov = provenance(inputs)
    description = json.dumps({"figure": number, "provenance": prov}, sort_keys=True)
    for out, fmt, meta in ((out_svg, "svg", {"Date": None, "Description": description}),
                           (out_pdf, "pdf", {"CreationDate": None, "Subject": description})):
        with atomic_path(out, suffix="." + fmt) as tmp:
            fig.savefig(tmp, format=fmt, metadata=meta)
    plt.close(fig)
    write_json(out_json, {"figure": number, "status": status, "experiment": spec.experiment, "subtitle": subtitle,
                          "provenance": prov})
