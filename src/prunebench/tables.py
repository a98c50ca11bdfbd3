"""The paper's tables as specifications over the config, assembled with pandas from metrics files.

A table's rows come from the config (every configured model, method and recipe gets its row), so
adding one of them to the config adds its rows everywhere. A table is written with its columns and
no rows, and status "not in this run" when its experiment lists no recipes, or "not yet built"
when the workflow cannot run its experiment yet.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import pandas as pd

from . import paths
from .io import iter_jsonl, read_json, write_json, write_text
from .provenance import provenance

BENCHMARK_ORDER = ["wordproblems", "gsm8k", "math500", "aime", "olympiadbench", "gpqa_diamond"]
BENCHMARK_LABELS = {"wordproblems": "WordProblems", "gsm8k": "GSM8K", "math500": "MATH500", "aime": "AIME",
                    "olympiadbench": "Olympiad", "gpqa_diamond": "GPQA"}
RECIPE_LABELS = {"c4": "C4", "wikitext2": "WikiText-2", "mathr": "MathR", "sgr": "SGR", "ssgr": "SSGR",
                 "sgr_nothink": "SGR w/o thinking", "none": "", "true_samples": "True samples",
                 "false_samples": "False samples", "length_random": "Random length", "length_short": "Short",
                 "length_medium": "Medium length", "length_long": "Long", "easy": "Easy", "medium": "Medium",
                 "hard": "Hard", "ssgr_tau025": "SSGR τ=0.25", "ssgr_tau05": "SSGR τ=0.5", "ssgr_tau1": "SSGR τ=1",
                 "ssgr_from_qwen3": "SSGR by Qwen3-14B"}
ALL_TABLES = range(1, 9)
ALL_FIGURES = range(1, 6)


@dataclass(frozen=True)
class Row:
    model: str
    method: str
    recipe: str


def benchmarks(config: dict) -> list[str]:
    configured = list(config["evaluation"]["benchmarks"])
    return sorted(configured, key=lambda b: (BENCHMARK_ORDER.index(b) if b in BENCHMARK_ORDER else 99, b))


def method_label(method: str) -> str:
    if method == paths.DENSE:
        return "Dense"
    name, _, setting = method.partition("-")
    pretty = {"sparsegpt": "SparseGPT", "wanda": "Wanda", "magnitude": "Magnitude"}.get(name, name)
    if "of" in setting:
        return f"{pretty} {setting.replace('of', ':')}"
    return f"{pretty} {float(setting) * 100:g}%" if setting else pretty


def recipe_label(recipe: str) -> str:
    return RECIPE_LABELS.get(recipe, recipe)


def model_label(config: dict, model: str) -> str:
    return config["models"][model].get("label") or model


def _grid(config: dict, methods: list[str], recipes: list[str]) -> list[Row]:
    """For every model: the dense model, then every method with every recipe."""
    rows = []
    for model in config["models"]:
        rows.append(Row(model, paths.DENSE, paths.NO_RECIPE))
        rows.extend(Row(model, m, r) for m in methods for r in recipes)
    return rows


def _main_grid(config: dict) -> list[Row]:
    """Table 2: every configured method with every configured recipe."""
    return _grid(config, config["pruning"]["methods"], config["calibration"]["recipes"])


def _figure4_grid(config: dict) -> list[Row]:
    """Figure 4: the dense model, then SparseGPT at further sparsities and patterns on each recipe."""
    grid = config["experiments"]["figure4"]
    return _grid(config, grid["methods"], grid["recipes"])


def _experiment_grid(key: str) -> Callable[[dict], list[Row]]:
    """An ablation of the paper (`experiments.<key>`): one method on each of its recipes, for its
    models (all by default). No recipes means the experiment is not part of this run."""

    def rows(config: dict) -> list[Row]:
        experiment = config["experiments"][key]
        if not experiment["recipes"]:
            return []
        models = experiment["models"] or list(config["models"])
        return [row for row in _grid(config, [experiment["method"]], experiment["recipes"]) if row.model in models]

    return rows


@dataclass(frozen=True)
class Spec:
    """A table or figure: the rows it needs from the config, or None while it is not yet built."""

    number: int
    rows: Callable[[dict], list[Row]] | None
    experiment: str | None = None  # the experiments key that configures it, if any

    @property
    def built(self) -> bool:
        return self.rows is not None

    def status(self, config: dict) -> str:
        if not self.built:
            return "not yet built"
        return "built" if self.rows(config) else "not in this run"


# Tables 1 and 3 to 8: the paper's ablations, each SparseGPT 50% on its own calibration recipes.
EXPERIMENT_TABLES = (1, 3, 4, 5, 6, 7, 8)
TABLES: dict[int, Spec] = {n: Spec(n, None) for n in ALL_TABLES}
TABLES[2] = Spec(2, _main_grid)
for _n in EXPERIMENT_TABLES:
    TABLES[_n] = Spec(_n, _experiment_grid(f"table{_n}"), f"table{_n}")
FIGURES: dict[int, Spec] = {n: Spec(n, None) for n in ALL_FIGURES}
FIGURES[1] = Spec(1, _main_grid)
FIGURES[2] = Spec(2, _main_grid)
FIGURES[3] = Spec(3, _experiment_grid("table4"), "table4")  # Table 4's difficulty bands, drawn
FIGURES[4] = Spec(4, _figure4_grid, "figure4")
FIGURES[5] = Spec(5, _main_grid)


def required_rows(config: dict, number: int, kind: str = "table") -> list[Row]:
    spec = (FIGURES if kind == "figure" else TABLES)[number]
    return spec.rows(config) if spec.built else []


def calibration_sets(config: dict) -> list[tuple[str, str]]:
    """Every (model, recipe) calibration set some table or figure of this run prunes with, plus
    Table 2's recipes for every model, in first-use order."""
    sets = dict.fromkeys((m, r) for m in config["models"] for r in config["calibration"]["recipes"])
    for kind, numbers in (("table", ALL_TABLES), ("figure", ALL_FIGURES)):
        for number in numbers:
            sets.update(dict.fromkeys((row.model, row.recipe) for row in required_rows(config, number, kind)
                                      if row.recipe != paths.NO_RECIPE))
    return list(sets)


def required_metrics(config: dict, number: int, kind: str = "table") -> list[str]:
    return [paths.eval_metrics(r.model, r.method, r.recipe, b)
            for r in required_rows(config, number, kind) for b in benchmarks(config)]


def required_inputs(config: dict, number: int, kind: str = "table") -> list[str]:
    """The metrics of every row, and the calibration set each pruned row was calibrated on."""
    calibration = dict.fromkeys(paths.calibration(r.model, r.recipe) for r in required_rows(config, number, kind)
                                if r.recipe != paths.NO_RECIPE)
    return required_metrics(config, number, kind) + list(calibration)


def _calibration_tokens(path: Path) -> float:
    """Mean token length of a calibration set's sequences (Table 4 reports it per difficulty band)."""
    if not path.exists():
        return float("nan")
    lengths = [record["tokens"] for record in iter_jsonl(path)]
    return sum(lengths) / len(lengths) if lengths else float("nan")


def assemble(config: dict, number: int, root: str | Path = ".", kind: str = "table") -> "pd.DataFrame":
    """One row per table row: labels, pass@1 per benchmark, its standard error and the average; mean
    response length and truncation rate per benchmark; the calibration set's mean length."""
    benches = benchmarks(config)
    records = []
    for row in required_rows(config, number, kind):
        record = {"model": row.model, "method": row.method, "recipe": row.recipe,
                  "calibration_tokens": (float("nan") if row.recipe == paths.NO_RECIPE else
                                         _calibration_tokens(Path(root) / paths.calibration(row.model, row.recipe)))}
        for bench in benches:
            m = read_json(Path(root) / paths.eval_metrics(row.model, row.method, row.recipe, bench))
            record[bench] = m["pass@1"]
            record[bench + "_se"] = m["stderr"]
            record[bench + "_tokens"] = m["mean_tokens"]
            record[bench + "_truncated"] = m.get("truncation_rate", float("nan"))
        record["AVG"] = sum(record[b] for b in benches) / len(benches)
        records.append(record)
    columns = ["model", "method", "recipe"] + benches + ["AVG", "calibration_tokens"] + [b + "_se" for b in benches] + \
        [b + "_tokens" for b in benches] + [b + "_truncated" for b in benches]
    import pandas as pd  # here, not at import: the Snakefile imports this module to plan, and must plan fast

    return pd.DataFrame.from_records(records, columns=columns)


def write_table(config: dict, number: int, out_csv: str | Path, out_json: str | Path, root: str | Path = ".") -> None:
    frame = assemble(config, number, root)
    inputs = [Path(root) / p for p in required_inputs(config, number)]
    prov = provenance(inputs)
    header = "# " + json.dumps({"table": number, "provenance": prov}, sort_keys=True) + "\n"
    write_text(out_csv, header + frame.to_csv(index=False, float_format="%.4f"))
    write_json(out_json, {
        "table": number,
        "status": TABLES[number].status(config),
        "experiment": TABLES[number].experiment,
        "benchmarks": benchmarks(config),
        "rows": json.loads(frame.to_json(orient="records")),
        "provenance": prov,
    })


def fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
