"""Every table and figure of both papers, one entry each: the output registry.

An entry says what the output is (name, kind, paper, label), what it needs built first, what part
of the config it reads (its rule's params, so that nothing else reruns it), how it is written, and
which part of the report's templates shows it. The workflow's one `table` rule and one `figure`
rule, the `prunebench table` and `prunebench figure` commands, the per-output targets and the report
all read this registry, so a new table is its entry here, its builder and its test.

An output's name is its target (`snakemake table2`, `snakemake lrm_findings`) and its files' stem
(paths.table, paths.figure). The first paper's are `table1`..`table8` and `figure1`..`figure5`; the
second paper's carry the prefix `lrm_`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import budget, comparison, findings, paths, study, suite, tables
from .grid import ALL_FIGURES, ALL_TABLES

EXTENSIONS = {"table": ("csv", "json"), "figure": ("svg", "pdf", "json")}
FIRST, SECOND, BEYOND = "Think Before You Prune", "From LLMs to LRMs", "Beyond the papers"
# (the config as `reads` gives it, the output's files by extension, the results' root)
Writer = Callable[[dict, dict, Path], None]


@dataclass(frozen=True)
class Output:
    """One table or figure.

    `part` names the report's template part that shows it (report/templates/parts/<page>/<part>.*.j2;
    a page without that part does not show it); None where another output's part shows it beside
    its own (the task table's part draws the category figure under the table). `section` groups
    outputs that the report sets one after another under one heading."""

    name: str
    kind: str
    paper: str
    label: str
    about: str
    needs: Callable[[dict], list[str]]
    reads: Callable[[dict], dict]
    write: Writer
    part: str | None
    section: str

    @property
    def measured(self) -> bool:
        """Measurements of the machine rather than results: the manifest does not hash them."""
        return self.name in paths.MEASURED_OUTPUTS

    def files(self) -> dict[str, str]:
        """Its files by extension (the table's CSV and JSON, the figure's SVG, PDF and JSON)."""
        where = paths.table if self.kind == "table" else paths.figure
        return {ext: where(self.name, ext) for ext in EXTENSIONS[self.kind]}


# ---------------------------------------------------------------- the first paper: Think Before You Prune

def _first_paper(kind: str, number: int) -> Output:
    spec = (tables.TABLES if kind == "table" else tables.FIGURES)[number]

    def needs(config: dict) -> list[str]:
        return tables.required_inputs(config, number, kind)

    def write(config: dict, files: dict, root: Path) -> None:
        if kind == "table":
            tables.write_table(config, number, files["csv"], files["json"], root)
        else:
            from .figures import write_figure

            write_figure(config, number, files["svg"], files["pdf"], files["json"], root)

    about = (f"Table {number} of *{FIRST}*, rebuilt by prunebench: pass@1 in % per benchmark (averaged over each "
             "problem's samples), its standard error, and the average. The rows come from the config (models, "
             "methods, calibration recipes). ``results/report/index.html`` sets them beside the paper's "
             "published numbers and names the files behind every row." if kind == "table" else
             f"Figure {number} of *{FIRST}*, redrawn by prunebench from the same metrics as the tables. Its JSON "
             "beside it records the provenance of every number drawn.")
    return Output(f"{kind}{number}", kind, FIRST, f"{kind.capitalize()} {number}", f"{about} ({spec.subject}.)",
                  needs, tables.table_config, write, f"first_{kind}", f"first_{kind}s")


FIRST_FINDINGS = Output(
    "first_findings", "table", FIRST, "Findings (Think Before You Prune)",
    f"The claims of *{FIRST}* that its tables support, each computed from this run's rows as a paired difference "
    "of per-problem pass@1 between two calibration recipes, with its standard error and a verdict (holds, "
    "reversed, not separable at this scale, not in this run).",
    findings.inputs, tables.table_config, findings.write_table, "first_findings", "first_findings")


# ---------------------------------------------------------------- the second paper: From LLMs to LRMs

def _suite_needs(config: dict) -> list[str]:
    return suite.required_inputs(config)


def _write_tasks(config: dict, files: dict, root: Path) -> None:
    suite.write_table(config, files["csv"], files["json"], root)


def _write_categories(config: dict, files: dict, root: Path) -> None:
    suite.write_figure(config, files["svg"], files["pdf"], files["json"], root)


def _write_speed(config: dict, files: dict, root: Path) -> None:
    suite.write_speed_table(config, files["csv"], files["json"], root)


def _study(kind: str, target: str, label: str, part: str | None) -> Output:
    """A target of the study, computed from the task table (the trade-off also from the speed table)."""

    def needs(config: dict) -> list[str]:
        return study.inputs(target)

    def write(config: dict, files: dict, root: Path) -> None:
        if kind == "table":
            study.write_table(target, config, files["csv"], files["json"], root)
        else:
            study.write_figure(target, config, files["svg"], files["pdf"], files["json"], root)

    about = (f"A target of the study *{SECOND}*, rebuilt by prunebench from the task table (and, for the trade-off "
             "figure, the speed table): the main table of category averages per method and ratio, the "
             "calibration-source and recovery tables, the five claims as findings with their verdicts, and the "
             "figures of category average against ratio, against calibration size and against measured speed. "
             "Each target's own caption (in its JSON file and the report) says what it holds in this run.")
    return Output(paths.LRM + target, kind, SECOND, label, about, needs, suite.table_config, write, part,
                  "lrm_speed" if paths.LRM + target == paths.TRADEOFF_FIGURE else "lrm_study")


_SECOND_PAPER = [
    Output(suite.TABLE, "table", SECOND, "Tasks by category (LLMs to LRMs)",
           f"The task table of *{SECOND}*, rebuilt by prunebench: each task's score in % (lm-eval's metric the "
           "config names, acc_norm where a task has it) with its standard error, prunebench's reasoning benchmarks "
           "as pass@1, and the average of each category (classification, generation, reasoning). Rows: the dense "
           "model and every pruned model of ``task_suite`` and of ``study``.",
           _suite_needs, suite.table_config, _write_tasks, "lrm_tasks", "lrm_tasks"),
    Output(suite.FIGURE, "figure", SECOND, "Category averages (LLMs to LRMs)",
           f"Category averages of *{SECOND}*'s tasks for the dense model and every pruned model of ``task_suite`` "
           "(one panel per model), as the table ``lrm_tasks`` lists them.",
           _suite_needs, suite.table_config, _write_categories, None, "lrm_tasks"),
    Output(paths.SPEED_TABLE, "table", SECOND, "Speed and size (LLMs to LRMs)",
           f"The speed table of *{SECOND}*, rebuilt by prunebench: for every structured model of ``study`` and its "
           "dense model, the parameters, checkpoint bytes, prefill and decode tokens per second and peak memory, "
           "each also relative to the dense model measured the same way in the same run, beside the row's "
           "category averages. Measurements of the machine that ran them.",
           suite.speed_inputs, suite.table_config, _write_speed, "lrm_speed", "lrm_speed"),
    _study("table", "findings", "Findings (LLMs to LRMs)", "lrm_findings"),
    _study("table", "main", "Category averages by method and ratio", "lrm_categories_table"),
    _study("table", "calibration", "Calibration source", "lrm_categories_table"),
    _study("table", "recovery", "Recovery", "lrm_recovery"),
    _study("figure", "ratios", "Category average against ratio (LLMs to LRMs)", "lrm_figure"),
    _study("figure", "samples", "Category averages against calibration size (LLMs to LRMs)", "lrm_figure"),
    _study("figure", "tradeoff", "Accuracy against speed (LLMs to LRMs)", "lrm_tradeoff"),
]

# ---------------------------------------------------------------- beyond the papers: the thinking budget

def _budget(name: str, kind: str, label: str, about: str, write: Writer, part: str) -> Output:
    """An output of the thinking-budget axis (prunebench.budget): every evaluated cell's samples."""
    return Output(name, kind, BEYOND, label, about, budget.inputs, budget.config_read, write, part, "budget")


_BEYOND = [
    _budget("budget", "table", "Accuracy along the thinking budget",
            "Every evaluated cell graded at a ladder of token budgets (a quarter, half, three quarters and all of "
            "the evaluation's max_new_tokens) from the one generation it already made: a response not finished "
            "within a budget counts as wrong there.", budget.write_accuracy_table, "budget"),
    _budget("budget_curve", "figure", "pass@1 against the token budget",
            "pass@1 against the token budget for Table 2's cells, per model and benchmark (dashed: the dense model).",
            budget.write_accuracy_figure, "budget_figure"),
    _budget("tokens_to_answer", "table", "Tokens to an answer, pruned against dense",
            "For every pruned cell, the mean length of its correct responses per problem minus its dense model's, "
            "over the problems both solve (paired, with its standard error), and whether it is longer, shorter or "
            "not separable.", budget.write_tokens_table, "tokens_to_answer"),
    _budget("tokens_distribution", "figure", "Response lengths, dense against pruned",
            "The cumulative distribution of response lengths for Table 2's cells, correct responses and all.",
            budget.write_tokens_figure, "budget_figure"),
]

# ---------------------------------------------------------------- beyond the papers: other methods compared

_BEYOND.append(Output(
    "owl", "table", BEYOND, "Layer-wise sparsity (OWL) against uniform",
    "OWL's outlier-weighted layer-wise sparsity (Yin et al. 2024) over an unstructured method, against the uniform "
    "method at the same overall sparsity on the same calibration (``experiments.owl``): pass@1 per benchmark, the "
    "spread of the layers' sparsities, and OWL minus uniform paired per problem with its standard error and verdict.",
    comparison.inputs("owl"), tables.table_config, comparison.writer("owl"), "comparison", "comparison"))

# In the order the report shows them.
OUTPUTS: dict[str, Output] = {o.name: o for o in [
    *(_first_paper("table", n) for n in ALL_TABLES),
    *(_first_paper("figure", n) for n in ALL_FIGURES),
    FIRST_FINDINGS,
    *_SECOND_PAPER,
    *_BEYOND,
]}


def names(kind: str) -> list[str]:
    """The tables' or the figures' names, in report order."""
    return [name for name, output in OUTPUTS.items() if output.kind == kind]


def all_files(kind: str | None = None) -> list[str]:
    """Every file of every output (of one kind), in report order."""
    return [f for o in OUTPUTS.values() if kind in (None, o.kind) for f in o.files().values()]
