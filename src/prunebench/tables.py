"""The paper's tables as specifications over the config, assembled with pandas from metrics files.

A table's rows come from the config (every configured model, method and recipe gets its row), so
adding one of them to the config adds its rows everywhere. A table is written with its columns and
no rows, and status "not in this run", when its experiment lists no recipes. Each carries a caption
that says what this run's table holds (its models, method and scale); the paper's caption stays
with the published numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from . import paths
from .datasets import DATASETS
from .grid import BENCHMARK_ORDER, BEYOND_TABLES, SHOWN, Row, evaluated_models, required_rows, scaled, table_benchmarks
from .io import iter_jsonl, read_json, write_json, write_text
from .provenance import provenance
from .pruning.spec import DECLARED

def benchmark_label(name: str) -> str:
    """A benchmark's column label: its dataset registry entry's (datasets.DATASETS)."""
    return DATASETS[name].shown if name in DATASETS else name


READABLE_Z = 2.0   # a column is read where its dense model's pass@1 is at least this many standard errors


def too_small_to_read(rows: list[dict], benchmarks: list[str]) -> list[dict]:
    """The columns of a table whose dense model's pass@1 is less than READABLE_Z standard errors
    (or has none): there a pruned row's difference from the dense model cannot be read."""
    out = []
    for row in rows:
        if row.get("method") != paths.DENSE:
            continue
        for bench in benchmarks:
            value, se = row.get(bench), row.get(f"{bench}_se")
            if value is None or se is None or (isinstance(se, float) and math.isnan(se)) or value < READABLE_Z * se \
                    or value == 0:
                out.append({"model": row["model"], "benchmark": bench, "label": benchmark_label(bench),
                            "value": value, "se": se})
    return out


def method_label(method: str) -> str:
    """`sparsegpt-0.5` -> SparseGPT 50%, `wanda-2of4` -> Wanda 2:4, `shortgpt-0.2+aligned` ->
    ShortGPT 20% + aligned (recovered as config recovery.aligned says)."""
    if method == paths.DENSE:
        return "Dense"
    method, plus, recovery = method.partition("+")
    if plus:
        return f"{method_label(method)} + {recovery}"
    name, _, setting = method.partition("-")
    pretty = DECLARED[name].label if name in DECLARED else name
    if "of" in setting:
        return f"{pretty} {setting.replace('of', ':')}"
    return f"{pretty} {float(setting) * 100:g}%" if setting else pretty


def recipe_label(config: dict, recipe: str) -> str:
    """A recipe's label: its definition's `label`, else its name (the dense rows' recipe: none)."""
    if recipe == paths.NO_RECIPE:
        return ""
    return config["calibration"]["recipe_definitions"].get(recipe, {}).get("label") or recipe


def model_label(config: dict, model: str) -> str:
    return config["models"][model].get("label") or model


def table_config(config: dict) -> dict:
    """What tables and figures read of a config (their rules' params, so that nothing else reruns
    them): the models and labels, the grids, recipes, benchmarks, and the evaluation's settings."""
    return {
        "models": {m: {"label": e.get("label"), "generator_only": e.get("generator_only", False)}
                   for m, e in config["models"].items()},
        "scale": config["scale"],
        "pruning": {"methods": config["pruning"]["methods"]},
        "calibration": {k: config["calibration"][k] for k in ("recipes", "recipe_definitions", "max_length")},
        "experiments": config["experiments"],
        "evaluation": {k: config["evaluation"][k] for k in ("benchmarks", "samples", "max_new_tokens", "token_limits")},
    }


@dataclass(frozen=True)
class Spec:
    """A table or figure of the first paper: which it is, and what it compares (its caption's
    start). Its cells and benchmarks are the grid's (prunebench.grid.SHOWN)."""

    kind: str
    number: int
    subject: str

    @property
    def experiment(self) -> str | None:
        """The experiments key that configures it, if any."""
        return SHOWN[(self.kind, self.number)].experiment

    def rows(self, config: dict) -> list[Row]:
        return required_rows(config, self.number, self.kind)

    def status(self, config: dict) -> str:
        return "built" if self.rows(config) else "not in this run"


TABLES: dict[int, Spec] = {n: Spec("table", n, subject) for n, subject in {
    1: "Correctness and reasoning length of the calibration responses",
    2: "Calibration data compared under each pruning method",
    3: "Kinds of calibration data",
    4: "Calibration data of varying difficulty (mean sequence length in tokens)",
    5: "Kinds of calibration data on a further model",
    6: "Calibration sequence lengths",
    7: "SSGR difficulty thresholds \N{GREEK SMALL LETTER TAU}",
    8: "Generation sources of the calibration responses",
}.items()}
FIGURES: dict[int, Spec] = {n: Spec("figure", n, subject) for n, subject in {
    1: "pass@1 per benchmark with C4, MathR and SSGR calibration",
    2: "Three kinds of calibration data (pre-training: the best per benchmark)",
    3: "Calibration data of varying difficulty (Table 4), per benchmark",
    4: "Average pass@1 at further pruning settings with different calibration data",
    5: "Mean response length per benchmark (a response cut at the limit counts there)",
}.items()}


def run_notes(config: dict) -> list[str]:
    """How this run's tables differ from the paper's by the config's own choices, said in the report."""
    notes = []
    definitions = config["calibration"]["recipe_definitions"]
    experiments = config["experiments"]
    keys = [key for key, e in experiments.items() if e.get("benchmarks") and e.get("recipes") and key not in BEYOND_TABLES]
    narrowed = [f"{key[:-1].capitalize()} {key[-1]}" if key != "figure4" else "Figure 4" for key in keys]
    if narrowed:
        benches = sorted({b for key in keys for b in experiments[key]["benchmarks"]},
                         key=lambda b: (BENCHMARK_ORDER.index(b) if b in BENCHMARK_ORDER else 99, b))
        notes.append(f"{', '.join(narrowed)} show only {', '.join(benchmark_label(b) for b in benches)}; "
                     f"a cell that only they show is evaluated on those benchmarks alone.")
    if any(definitions[r]["type"] == "sgr" for r in experiments["table1"]["recipes"]):
        notes.append("Table 1's True Sample row is SGR: each problem's first correct response, the same definition.")
    hard = [r for r in experiments["table4"]["recipes"] if definitions[r]["type"] == "ssgr"]
    if hard:
        notes.append(f"Table 4's Hard band (c ≤ 0.5, each response by eq. 1) is {recipe_label(config, hard[0])}, the same "
                     f"selection (the paper prints the same average for both rows).")
    main = set(evaluated_models(config))
    if experiments["table5"]["recipes"] and set(experiments["table5"]["models"] or main) <= main and len(main) == 1:
        notes.append("Table 5 compares recipes on a further model; this run prunes one model, so its rows are "
                     "Table 2's cells.")
    for name, entry in config["models"].items():
        if entry.get("generator_only"):
            users = [recipe_label(config, r) for r, d in definitions.items() if d.get("generator") == name]
            notes.append(f"{model_label(config, name)} only answers the self-generation pool for another model's "
                         f"recipes ({', '.join(users) or 'none in this run'}); it is not pruned or evaluated.")
    return notes


def caption(config: dict, number: int, kind: str = "table") -> str:
    """What this run's table or figure holds: its subject, models, methods and scale."""
    spec = (FIGURES if kind == "figure" else TABLES)[number]
    return caption_of_rows(config, spec.rows(config), table_benchmarks(config, number, kind), spec.subject)


def caption_of_rows(config: dict, rows: list[Row], benches: list[str], subject: str) -> str:
    """A caption over a table's cells: its subject, models, methods, samples and problem counts."""
    if not rows:
        return f"{subject}: not part of this run."
    models = ", ".join(model_label(config, m) for m in dict.fromkeys(r.model for r in rows))
    methods = ", ".join(method_label(m) for m in dict.fromkeys(r.method for r in rows) if m != paths.DENSE)
    evaluation = config["evaluation"]
    counts = ", ".join(f"{benchmark_label(b)} {scaled(evaluation['benchmarks'][b], config['scale'])}" for b in benches)
    return (f"{subject}: {models}, {methods}. {evaluation['samples']} sample(s) per problem; "
            f"problems per benchmark: {counts}.")


def required_metrics(config: dict, number: int, kind: str = "table") -> list[str]:
    return [paths.eval_metrics(r.model, r.method, r.recipe, b)
            for r in required_rows(config, number, kind) for b in table_benchmarks(config, number, kind)]


def _calibration_inputs(config: dict, number: int, kind: str) -> list[str]:
    return list(dict.fromkeys(paths.calibration(r.model, r.recipe) for r in required_rows(config, number, kind)
                              if r.recipe != paths.NO_RECIPE))


def required_inputs(config: dict, number: int, kind: str = "table") -> list[str]:
    """What a table or figure needs built: each row's evaluation, and the calibration set each
    pruned row was calibrated on."""
    evaluations = dict.fromkeys(paths.eval_dir(r.model, r.method, r.recipe) for r in required_rows(config, number, kind))
    return list(evaluations) + _calibration_inputs(config, number, kind)


def read_inputs(config: dict, number: int, kind: str = "table") -> list[str]:
    """The files a table or figure reads (its provenance): metrics and calibration sets."""
    return required_metrics(config, number, kind) + _calibration_inputs(config, number, kind)


def _number(value) -> float:
    """A metric as a float: NaN where it is undefined (null in JSON), so that sums and plots skip it."""
    return float("nan") if value is None else float(value)


def _calibration_tokens(path: Path) -> float:
    """Mean token length of a calibration set's sequences (Table 4 reports it per difficulty band)."""
    if not path.exists():
        return float("nan")
    lengths = [record["tokens"] for record in iter_jsonl(path)]
    return sum(lengths) / len(lengths) if lengths else float("nan")


def assemble(config: dict, number: int, root: str | Path = ".", kind: str = "table") -> "pd.DataFrame":
    """One row per table row: labels, pass@1 per benchmark, its standard error and the average; mean
    response length and truncation rate per benchmark; the calibration set's mean length."""
    benches = table_benchmarks(config, number, kind)
    records = []
    for row in required_rows(config, number, kind):
        record = {"model": row.model, "method": row.method, "recipe": row.recipe,
                  "calibration_tokens": (float("nan") if row.recipe == paths.NO_RECIPE else
                                         _calibration_tokens(Path(root) / paths.calibration(row.model, row.recipe)))}
        notes = []
        for bench in benches:
            m = read_json(Path(root) / paths.eval_metrics(row.model, row.method, row.recipe, bench))
            record[bench] = _number(m["pass@1"])
            record[bench + "_se"] = _number(m["stderr"])
            record[bench + "_tokens"] = _number(m["mean_tokens"])
            record[bench + "_truncated"] = _number(m.get("truncation_rate"))
            notes.append(m.get("skipped"))
        record["AVG"] = sum(record[b] for b in benches) / len(benches)  # NaN where a benchmark has no number
        record["note"] = next((note for note in notes if note), "")
        records.append(record)
    columns = ["model", "method", "recipe"] + benches + ["AVG", "calibration_tokens"] + [b + "_se" for b in benches] + \
        [b + "_tokens" for b in benches] + [b + "_truncated" for b in benches] + ["note"]
    import pandas as pd  # here, not at import: the Snakefile imports this module to plan, and must plan fast

    return pd.DataFrame.from_records(records, columns=columns)


def write_table(config: dict, number: int, out_csv: str | Path, out_json: str | Path, root: str | Path = ".") -> None:
    frame = assemble(config, number, root)
    inputs = [Path(root) / p for p in read_inputs(config, number)]
    prov = provenance(inputs)
    header = "# " + json.dumps({"table": number, "provenance": prov}, sort_keys=True) + "\n"
    write_text(out_csv, header + frame.to_csv(index=False, float_format="%.4f"))
    write_json(out_json, {
        "table": number,
        "status": TABLES[number].status(config),
        "experiment": TABLES[number].experiment,
        "caption": caption(config, number),
        "benchmarks": table_benchmarks(config, number),
        "rows": json.loads(frame.to_json(orient="records")),
        "provenance": prov,
    })


def write_rows(files: dict, name: str, rows: list[dict], fields: dict, prov: dict) -> None:
    """A table of plain rows: its CSV (the provenance in a comment line first, lists joined by commas)
    and its JSON (`fields`, the rows and the provenance, with no NaN)."""
    import pandas as pd

    from .evaluation import finite

    frame = pd.DataFrame([{k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()} for r in rows])
    write_text(files["csv"], "# " + json.dumps({"table": name, "provenance": prov}, sort_keys=True) + "\n"
               + frame.to_csv(index=False, float_format="%.4f"))
    write_json(files["json"], finite({**fields, "rows": rows, "provenance": prov}))


def fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
