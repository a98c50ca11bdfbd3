"""The HTML page and the LaTeX paper, rendered with Jinja2 from tables, figures and run metadata.

Everything that reaches a template is escaped on the way out: HTML by autoescaping, LaTeX by a
`finalize` hook that escapes every value that is not explicitly marked as LaTeX. Model text is
additionally cut to a bounded length, so a hostile response cannot bloat or break either document.
"""

from __future__ import annotations

import math

import re
import unicodedata
from collections import Counter
from pathlib import Path

import jinja2
import yaml

from . import paths, reference
from .grading import FILTER_REASONS
from .grid import benchmarks, calibration_sets
from .io import iter_jsonl, read_json, write_text
from .lmeval.tasks.mirror import SEALED_TASKS
from .outputs import FIRST, OUTPUTS, Output
from .provenance import code_commit, package_versions
from .suite import TABLE as TASK_TABLE
from .tables import benchmark_label, fmt, method_label, model_label, recipe_label, run_notes, too_small_to_read

MAX_EXCERPT = 600
RESPONSE_LENGTH_TABLE = "table2"  # the rows whose response lengths the report tabulates beside Figure 5
# The second paper's full title, as its report section names it.
SECOND_TITLE = "From LLMs to LRMs: Rethinking Pruning for Reasoning-Centric Models"

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "%": r"\%", "#": r"\#",
    "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", '"': r"\textquotedbl{}",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIALS))
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _greek_macros() -> dict[str, str]:
    """Greek letters as math macros (\\tau); capitals without a macro are the Latin letter they look like."""
    capitals = ("gamma", "delta", "theta", "lambda", "xi", "pi", "sigma", "upsilon", "phi", "psi", "omega")
    out = {}
    for code in range(0x391, 0x3CA):
        name = unicodedata.name(chr(code), "")
        if "LETTER" not in name:
            continue
        word = name.split()[-1].lower().replace("lamda", "lambda")
        if "SMALL" in name:
            out[chr(code)] = "o" if word == "omicron" else rf"\ensuremath{{\{word}}}"
        elif word in capitals:
            out[chr(code)] = rf"\ensuremath{{\{word.capitalize()}}}"
        else:
            out[chr(code)] = "H" if word == "eta" else word[0].upper()
    return out


# What pdflatex's utf8 input encoding with T1 fonts cannot typeset stops the whole document, so
# every other character becomes a macro or a "?": model text may hold any script or emoji.
_LATEX_UNICODE = {
    **_greek_macros(), "−": r"\ensuremath{-}", "±": r"\ensuremath{\pm}", "×": r"\ensuremath{\times}",
    "÷": r"\ensuremath{\div}", "≤": r"\ensuremath{\leq}", "≥": r"\ensuremath{\geq}", "≠": r"\ensuremath{\neq}",
    "≈": r"\ensuremath{\approx}", "→": r"\ensuremath{\rightarrow}", "←": r"\ensuremath{\leftarrow}",
    "∞": r"\ensuremath{\infty}", "√": r"\ensuremath{\surd}",
}
_LATEX_UNTYPESETTABLE = re.compile("[^\t\n\x20-\x7e\xa0-\u017f–—‘’“”…•]|[ĦħĸĿŀŉŦŧſ\xad]")


class Latex(str):
    """A string that is already LaTeX and must not be escaped again."""


def latex_escape(value) -> str:
    if isinstance(value, Latex):
        return value
    text = _CONTROL.sub(" ", str(value))
    text = _LATEX_RE.sub(lambda m: _LATEX_SPECIALS[m.group()], text)
    return _LATEX_UNTYPESETTABLE.sub(lambda m: _LATEX_UNICODE.get(m.group(), "?"), text)


def excerpt(text: str, limit: int = MAX_EXCERPT) -> str:
    text = _CONTROL.sub(" ", text or "")
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def signed(value) -> str:
    """A change in percentage points; a dash where a side has no dense model to change from."""
    return "–" if value is None else f"{value:+.1f}"


def number(value, digits: int = 1, scale: float = 1.0) -> str:
    """A measured quantity (divided by `scale`) to `digits` decimals; a dash where there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value / scale:,.{digits}f}"


def _environments(templates: Path, config: dict) -> tuple[jinja2.Environment, jinja2.Environment]:
    # A template part renders exactly as its text would where it is included, its last newline too.
    loader = jinja2.FileSystemLoader(str(templates))
    html = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    tex = jinja2.Environment(
        loader=loader, autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True,
        block_start_string="((*", block_end_string="*))", variable_start_string="(((",
        variable_end_string=")))", comment_start_string="((=", comment_end_string="=))",
        finalize=latex_escape,
    )
    for env in (html, tex):
        env.filters.update(fmt=fmt, signed=signed, number=number, method_label=method_label,
                           recipe_label=lambda recipe: recipe_label(config, recipe),
                           excerpt=excerpt)
    tex.filters["latex"] = Latex
    return html, tex


def source_description(source: dict) -> str:
    """A model source in a few words; the config and model.json hold it whole."""
    if "hub" in source:
        return f"hub {source['hub']} at {source['revision'][:12]}"
    if "path" in source:
        return f"local directory {source['path']}"
    parts = source["gguf"]["parts"]
    packages = sorted({part.split("/", 1)[0] for part in parts if "/" in part})
    if not packages:
        where = f"{len(parts)} file(s)"
    else:
        where = f"{len(parts)} part(s) in {packages[0]}" + (f" … {packages[-1]}" if len(packages) > 1 else "")
    return f"GGUF, {where} (sha256 {source['gguf']['sha256'][:12]}…)"


def source_lines(source: dict) -> list[str]:
    """A model source whole, one short line per field (a PDF cannot break a long JSON line)."""
    if "gguf" in source:
        parts = source["gguf"]["parts"]
        return [f"gguf part {i}: {part}" for i, part in enumerate(parts, 1)] + [f"sha256: {source['gguf']['sha256']}"]
    return [f"{key}: {value}" for key, value in source.items()]


def _rel(target: str, start: str) -> str:
    import os

    return os.path.relpath(target, start)


def _filter_counts(config: dict, root: Path) -> list[dict]:
    """Quality-filter reasons counted over every graded self-generated pool."""
    rows = []
    for model in config["models"]:
        for dataset in config["self_generation"]["sources"]:
            path = root / paths.graded(model, dataset)
            if not path.exists():
                continue
            counts, total, correct = Counter(), 0, 0
            for sample in iter_jsonl(path):
                total += 1
                correct += bool(sample["correct"])
                counts.update(sample["filters"])
            rows.append({"model": model, "dataset": dataset, "samples": total, "correct": correct,
                         "counts": [counts.get(r, 0) for r in FILTER_REASONS]})
    return rows


def _calibration_summaries(config: dict, root: Path) -> list[dict]:
    out = []
    for model, recipe in calibration_sets(config):
        path = root / paths.calibration(model, recipe)
        if not path.exists():
            continue
        records = list(iter_jsonl(path))
        lengths = [r["tokens"] for r in records]
        bands = Counter(r["meta"]["band"] for r in records if "band" in r.get("meta", {}))
        example = next((r for r in records if r.get("problem_id")), None)
        out.append({"model": model, "recipe": recipe, "sequences": len(records), "tokens": sum(lengths),
                    "mean_tokens": sum(lengths) / max(len(lengths), 1), "bands": dict(sorted(bands.items())),
                    "example": example, "href": _rel(str(path), str(root / paths.report("")))})
    return out


def _published_label(config: dict, row: dict, with_model: bool = True) -> str:
    """A published row's name from whichever of model, group, method, recipe and label it has."""
    parts = [row.get("model") if with_model else None, row.get("group"), method_label(row["method"]) if row.get("method") else None,
             row.get("label") or (recipe_label(config, row["recipe"]) if row.get("recipe") else None)]
    return " · ".join(p for p in parts if p)


def _recipe_traits(config: dict, recipe: str) -> dict:
    """A recipe's definition with its defaults filled in: what a published row's `match` reads."""
    calibration = config["calibration"]
    traits = dict(calibration["recipe_definitions"].get(recipe, {}))
    if traits.get("max_length") is None:
        traits["max_length"] = calibration["max_length"]
    traits["generator"] = "another" if traits.get("generator") else "self"
    return traits


def _published_match(row: dict, method: str, recipe: str, traits: dict, table_method: str | None) -> bool:
    if (row.get("method") or table_method) != method:
        return False
    if "recipe" in row:
        return row["recipe"] == recipe
    alternatives = row.get("match", [])  # one definition, or a list of definitions that are the same data
    alternatives = [alternatives] if isinstance(alternatives, dict) else alternatives
    return any(all(traits.get(key) == value for key, value in match.items()) for match in alternatives)


def _paper_dense(paper_numbers: dict) -> dict[str, dict[str, float]]:
    """The paper's dense models, column by column, from Table 2."""
    table2 = paper_numbers["tables"][2]
    return {r["model"]: dict(zip(table2["columns"], r["values"]))
            for r in table2["rows"] if r.get("method") == paths.DENSE}


def _dense_average(dense: dict | None, columns: list[str]) -> float | None:
    """The dense model's average over the table's own benchmark columns (Table 1 has three)."""
    if dense is None:
        return None
    benches = [c for c in columns if c in dense and c != "AVG"]
    return sum(dense[c] for c in benches) / len(benches) if benches else dense.get("AVG")


def _change(value, base):
    return None if value is None or base is None else value - base


def _beside_paper(config: dict, rows: list[dict], published: dict, paper_dense: dict) -> dict | None:
    """Our rows against the paper's, each as its change from its own dense model.

    Absolute pass@1 of a small model on a small suite says nothing against a 7B model on the full
    benchmarks; how much of the dense accuracy a method and recipe keep is comparable. Published
    rows that no row of this run matches are named, so a reader sees what is left to run.
    """
    columns = (published or {}).get("columns", [])
    if "AVG" not in columns:
        return None
    avg = columns.index("AVG")
    paper_model = published.get("model") or next((r["model"] for r in published["rows"] if r.get("model")), None)
    paper_rows = [r for r in published["rows"]
                  if r.get("model", paper_model) == paper_model and r.get("method") != paths.DENSE]
    paper_dense_avg = _dense_average(paper_dense.get(paper_model), columns)
    out, matched = [], set()
    for model in dict.fromkeys(r["model"] for r in rows):
        ours = {(r["method"], r["recipe"]): r["AVG"] for r in rows if r["model"] == model}
        dense = ours.get((paths.DENSE, paths.NO_RECIPE))
        for (method, recipe), value in ours.items():
            if method == paths.DENSE:
                continue
            traits = _recipe_traits(config, recipe)
            index = next((i for i, r in enumerate(paper_rows)
                          if _published_match(r, method, recipe, traits, published.get("method"))), None)
            if index is None:
                continue
            matched.add(index)
            paper = paper_rows[index]["values"][avg]
            ours_change, paper_change = _change(value, dense), _change(paper, paper_dense_avg)
            out.append({"model_label": next(r["model_label"] for r in rows if r["model"] == model),
                        "method": method, "recipe": recipe, "paper_label": _published_label(config, paper_rows[index], with_model=False),
                        "ours": value, "ours_change": ours_change, "paper": paper, "paper_change": paper_change,
                        "difference": _change(ours_change, paper_change)})
    unmatched = [_published_label(config, r, with_model=False) for i, r in enumerate(paper_rows) if i not in matched]
    return {"paper_model": paper_model, "rows": out, "unmatched": unmatched,
            "paper_dense": paper_dense_avg is not None}


def _reproducibility(root: Path, report_dir: str) -> list[dict]:
    """The rows `snakemake verify` wrote: each rerun job against its recorded result."""
    path = root / paths.verify("reproducibility.json")
    if not path.exists():
        return []
    rows = read_json(path)["rows"]
    for row in rows:
        row["href"] = _rel(str(root / paths.record_of(row["target"])), report_dir)
    return rows


def _reproduction(root: Path, report_dir: str) -> dict | None:
    """This run against the reference record (`prunebench reproduce`, written by the workflow where
    the config names a record): counts, the verdict per table and figure, where results diverge."""
    path = root / paths.verify("reproduce.json")
    if not path.exists():
        return None
    result = read_json(path)
    outputs = {output.name: output for output in OUTPUTS.values()}
    return {"reference_commit": result["reference_commit"], "reference_machine": result["reference_machine"],
            "machine": result["machine"], "reference_threads": reference.threads_described(result["reference_machine"]),
            "threads": reference.threads_described(result["machine"]),
            "reference_kernels": reference.kernels_described(result["reference_machine"]),
            "kernels": reference.kernels_described(result["machine"]), "counts": {k: v for k, v in result["counts"].items() if v},
            "outputs": [{**v, "label": outputs[v["output"]].label if v["output"] in outputs else v["output"]}
                        for v in result["outputs"]],
            "reproduced": all(v["verdict"] != reference.DIFFERENT for v in result["outputs"])
            and not reference.failures(result),
            "first_divergences": result["first_divergences"], "weights": result.get("weights", []),
            "metrics_beyond_noise": [m for m in result["metrics"] if m["status"] != reference.WITHIN_NOISE],
            "metrics_within_noise": sum(m["status"] == reference.WITHIN_NOISE for m in result["metrics"]),
            "z": reference.Z, "href": _rel(str(path), report_dir)}


def _row_files(root: Path, row: dict, benches: list[str], report_dir: str) -> tuple[dict, list]:
    """Where a table row's numbers come from: each benchmark's metrics (its cell links there), and
    the calibration set and pruned checkpoint's sparsity record behind the row (or the dense model)."""
    model, method, recipe = row["model"], row["method"], row["recipe"]
    links = {b: _rel(str(root / paths.eval_metrics(model, method, recipe, b)), report_dir) for b in benches}
    if method == paths.DENSE:
        files = [("model", paths.model_json(model))]
    else:
        files = [("calibration", paths.calibration(model, recipe)),
                 ("sparsity", paths.sparsity_record(model, method, recipe))]
    return links, [(name, _rel(str(root / path), report_dir)) for name, path in files]


def _read_if_exists(path: Path) -> dict | None:
    return read_json(path) if path.exists() else None


PAGES = {"index": "html", "paper": "tex", "speed": "html"}  # each page and the kind of its template parts


def _parts(templates: Path) -> dict[str, set[str]]:
    """Per page, the template parts it has (report/templates/parts/<page>/<part>.<ext>.j2): an
    output whose part a page lacks is not shown there."""
    return {page: {p.name.removesuffix(f".{ext}.j2") for p in (templates / "parts" / page).glob(f"*.{ext}.j2")}
            for page, ext in PAGES.items()}


def _output_entry(config: dict, root: Path, report_dir: str, output: Output) -> dict:
    """An output's JSON, with the links to its files and, for a figure, its SVG to inline; each row
    that names a model gets the model's label."""
    files = output.files()
    entry = {**read_json(root / files["json"]), "name": output.name, "label": output.label, "paper": output.paper,
             "part": output.part, "section": output.section}
    for ext, path in files.items():
        entry[ext] = _rel(str(root / path), report_dir)
    if output.kind == "figure":
        svg = (root / files["svg"]).read_text(encoding="utf-8")
        entry["svg"] = svg[svg.find("<svg"):]  # without the XML prolog and doctype, for inline use
        entry["pdf_from_tex"] = _rel(files["pdf"], paths.report(""))
    for row in entry.get("rows", []):
        if "model" in row:
            row["model_label"] = model_label(config, row["model"])
    return entry


def _first_paper_table(config: dict, root: Path, report_dir: str, entry: dict, published: dict,
                       paper_dense: dict) -> None:
    """A first-paper table's rows linked to the files behind them, beside the paper's numbers."""
    for row in entry["rows"]:
        row["links"], row["files"] = _row_files(root, row, entry["benchmarks"], report_dir)
    beside = _beside_paper(config, entry["rows"], published, paper_dense) if entry["status"] == "built" else None
    if published:  # the paper's caption goes with the paper's numbers; ours says what this run holds
        published = {**published, "rows": [{"label": _published_label(config, r), "values": r["values"]}
                                           for r in published["rows"]]}
    entry.update(published=published, beside=beside, too_small=too_small_to_read(entry["rows"], entry["benchmarks"]),
                 benchmark_labels=[benchmark_label(b) for b in entry["benchmarks"]])


def _task_table(config: dict, root: Path, report_dir: str, entry: dict) -> None:
    """The task table's cells linked to the result behind each, the sealed tasks, and how the code
    tasks ran model-written code."""
    for row in entry["rows"]:
        row["links"] = {c["name"]: _rel(str(root / (paths.task_result(row["model"], row["method"], row["recipe"], c["name"])
                                                    if c["source"] == "task" else
                                                    paths.eval_metrics(row["model"], row["method"], row["recipe"], c["name"]))),
                                        report_dir) for c in entry["columns"]}
    entry["sealed"] = [name for name in config["task_suite"]["tasks"] if name in SEALED_TASKS]
    entry["code_runs"] = sorted({(c["name"], result["sandbox"]) for row in entry["rows"] for c in entry["columns"]
                                 if c["source"] == "task"
                                 for result in [_read_if_exists(root / paths.task_result(row["model"], row["method"],
                                                                                          row["recipe"], c["name"]))]
                                 if result and result.get("sandbox")})


def context(config: dict, root: str | Path, paper_numbers: dict, parts: dict[str, set[str]] | None = None) -> dict:
    """What the templates render: the run's settings and, in report order, every output of the
    registry (`outputs`, each with the pages whose parts show it; `output` by name)."""
    root = Path(root)
    report_dir = str(root / paths.report(""))
    paper_dense = _paper_dense(paper_numbers)
    outputs = []
    for output in OUTPUTS.values():
        entry = _output_entry(config, root, report_dir, output)
        if output.part == "first_table":
            _first_paper_table(config, root, report_dir, entry, paper_numbers["tables"].get(entry["table"], {}),
                               paper_dense)
        elif output.part == "first_figure":
            entry["paper_caption"] = paper_numbers["figures"].get(entry["figure"], "")
        elif output.name == TASK_TABLE:
            _task_table(config, root, report_dir, entry)
        entry["shown"] = {page: output.part in (parts or {}).get(page, ()) for page in PAGES}
        outputs.append(entry)
    by_name = {entry["name"]: entry for entry in outputs}
    benches = benchmarks(config)
    return {
        "config": config,
        "title": config["title"],
        "benchmarks": benches,
        "benchmark_labels": [benchmark_label(b) for b in benches],
        "models": [{"name": m, "label": model_label(config, m), "entry": e, "source": source_description(e["source"]),
                    "source_lines": source_lines(e["source"]),
                    "role": "generator only" if e.get("generator_only") else "pruned and evaluated"}
                   for m, e in config["models"].items()],
        "outputs": outputs,
        "output": by_name,
        "first_paper": FIRST,
        "second_paper": SECOND_TITLE,
        "lengths": by_name[RESPONSE_LENGTH_TABLE]["rows"],
        "filters": _filter_counts(config, root),
        "run_notes": run_notes(config),
        "reproducibility": _reproducibility(root, report_dir),
        "reproduction": _reproduction(root, report_dir),
        "filter_reasons": FILTER_REASONS,
        "calibration": _calibration_summaries(config, root),
        "code_commit": code_commit(),
        "versions": package_versions(),
        "paper": paper_numbers["paper"],
    }


def render(config: dict, root: str | Path, templates: str | Path, paper_yaml: str | Path,
           out_html: str | Path, out_tex: str | Path, out_speed_html: str | Path | None = None) -> None:
    """The HTML page and the LaTeX paper (results: the same inputs give the same bytes) and, where
    asked, the speed page (measurements of the machine, which the manifest does not hash)."""
    paper_numbers = yaml.safe_load(Path(paper_yaml).read_text(encoding="utf-8"))
    ctx = context(config, root, paper_numbers, _parts(Path(templates)))
    html_env, tex_env = _environments(Path(templates), config)
    write_text(out_html, html_env.get_template("index.html.j2").render(**ctx))
    write_text(out_tex, tex_env.get_template("paper.tex.j2").render(**ctx))
    if out_speed_html is not None:
        write_text(out_speed_html, html_env.get_template("speed.html.j2").render(**ctx))

