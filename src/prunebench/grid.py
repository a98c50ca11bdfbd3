"""What a run builds, computed from its config alone: the cells of both papers (model, method,
recipe; a recovered model's method carries its recovery), each cell's benchmarks, the calibration
sets, and the priority of each job.

Torch-free and free of presentation, so that the config's checks, the workflow's input functions,
the tables and the tests all ask one place and none derives it again. Tables, figures, the task
suite and the study are presentation over these cells (prunebench.tables, .suite, .study).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import paths
from .pruning.spec import SEARCHING, PruneSpec, algorithm

# prunebench's own benchmarks in the order the first paper's tables show them (others after, by name).
BENCHMARK_ORDER = ["wordproblems", "gsm8k", "math500", "aime", "olympiadbench", "gpqa_diamond"]
ALL_TABLES = range(1, 9)
ALL_FIGURES = range(1, 6)


@dataclass(frozen=True)
class Row:
    """A cell of the grid, as a table shows it in one row: a model pruned by a method on a recipe
    (the dense model: method dense, recipe none)."""

    model: str
    method: str
    recipe: str


def scaled(count: int, scale: float) -> int:
    """A problem count multiplied by the config's `scale`, never below one."""
    return max(1, round(count * scale))


def evaluated_models(config: dict) -> list[str]:
    """The models that are pruned and evaluated: every model but generator-only ones."""
    return [name for name, entry in config["models"].items() if not entry.get("generator_only")]


def transient_checkpoints(config: dict) -> list[str]:
    """The models whose converted (GGUF) weights are removed once their pools are generated: a
    generator-only model's weights are read by its generation alone, and the half gigabyte of
    SmolLM2's fp32 copy, held to the end, is what took the default's results/ over its disk budget
    beside the study's checkpoints. Kept, like every checkpoint, with pruning.keep_checkpoints."""
    if config["pruning"]["keep_checkpoints"]:
        return []
    return [name for name, entry in config["models"].items()
            if entry.get("generator_only") and "gguf" in entry["source"]]


def study_method(method: str, ratio: float) -> str:
    """The method name of a study cell: `shortgpt` at 0.2 is shortgpt-0.2 (the one spelling paths use)."""
    return PruneSpec(method, float(ratio)).name


def token_limit(config: dict, benchmark: str) -> int:
    """A benchmark's new-token limit: its own under `evaluation.token_limits`, else the evaluation's."""
    return config["evaluation"]["token_limits"].get(benchmark, config["evaluation"]["max_new_tokens"])


def benchmarks(config: dict) -> list[str]:
    configured = list(config["evaluation"]["benchmarks"])
    return sorted(configured, key=lambda b: (BENCHMARK_ORDER.index(b) if b in BENCHMARK_ORDER else 99, b))


# ---------------------------------------------------------------- the first paper's tables and figures

def _grid(config: dict, methods: list[str], recipes: list[str]) -> list[Row]:
    """For every evaluated model: the dense model, then every method with every recipe."""
    rows = []
    for model in evaluated_models(config):
        rows.append(Row(model, paths.DENSE, paths.NO_RECIPE))
        rows.extend(Row(model, m, r) for m in methods for r in recipes)
    return rows


def _main_grid(config: dict) -> list[Row]:
    """Table 2: every configured method with every configured recipe."""
    return _grid(config, config["pruning"]["methods"], config["calibration"]["recipes"])


def _methods_grid(key: str) -> Callable[[dict], list[Row]]:
    """An experiment of several methods (`experiments.<key>.methods`), each on each of its recipes:
    Figure 4 (SparseGPT at further sparsities and patterns), the OWL comparison (the uniform method
    and its layer-wise allocation), for its models (all by default)."""

    def rows(config: dict) -> list[Row]:
        grid = config["experiments"][key]
        models = grid.get("models") or evaluated_models(config)
        return [row for row in _grid(config, grid["methods"], grid["recipes"]) if row.model in models] \
            if grid["recipes"] else []

    return rows


def _experiment_grid(key: str) -> Callable[[dict], list[Row]]:
    """An ablation of the paper (`experiments.<key>`): one method on each of its recipes, for its
    models (all by default). No recipes means the experiment is not part of this run."""

    def rows(config: dict) -> list[Row]:
        experiment = config["experiments"][key]
        if not experiment["recipes"]:
            return []
        models = experiment["models"] or evaluated_models(config)
        return [row for row in _grid(config, [experiment["method"]], experiment["recipes"]) if row.model in models]

    return rows


@dataclass(frozen=True)
class Shown:
    """The cells a table or figure of the first paper shows, and the experiments key that
    configures it (its benchmarks and recipes), if any."""

    rows: Callable[[dict], list[Row]]
    experiment: str | None = None


SHOWN: dict[tuple[str, int], Shown] = {
    **{("table", n): Shown(_experiment_grid(f"table{n}"), f"table{n}") for n in (1, 3, 4, 5, 6, 7, 8)},
    ("table", 2): Shown(_main_grid),
    ("figure", 1): Shown(_main_grid),
    ("figure", 2): Shown(_main_grid),
    ("figure", 3): Shown(_experiment_grid("table4"), "table4"),
    ("figure", 4): Shown(_methods_grid("figure4"), "figure4"),
    ("figure", 5): Shown(_main_grid),
}
# Beyond the papers: tables over cells of the same kind (prunebench.comparison), keyed by name.
BEYOND_TABLES = ("owl",)
SHOWN.update({("table", name): Shown(_methods_grid(name), name) for name in BEYOND_TABLES})


def required_rows(config: dict, number: int | str, kind: str = "table") -> list[Row]:
    """The cells a table or figure of the first paper (by number) or beyond the papers (by name,
    BEYOND_TABLES) shows, in its row order."""
    return SHOWN[(kind, number)].rows(config)


def table_benchmarks(config: dict, number: int | str, kind: str = "table") -> list[str]:
    """The benchmarks of a table's columns: its experiment's `benchmarks`, else every benchmark."""
    experiment = SHOWN[(kind, number)].experiment
    chosen = config["experiments"][experiment].get("benchmarks") if experiment else None
    return [b for b in benchmarks(config) if chosen is None or b in chosen]


def _drawn_rows(config: dict):
    """(kind, number or name, row) for each row of each table and figure over prunebench's own
    benchmarks: the first paper's, then those beyond the papers."""
    for kind, number in SHOWN:
        for row in required_rows(config, number, kind):
            yield kind, number, row


def first_paper_rows(config: dict) -> set[Row]:
    """The cells the first paper's tables and figures show."""
    return {row for _, number, row in _drawn_rows(config) if isinstance(number, int)}


# ---------------------------------------------------------------- the second paper's study and task suite

def study_rows(config: dict) -> list[Row]:
    """The study's cells (config.study): each model, method, ratio and recipe, in that order; a
    recovered cell (config.study.recovery) follows the aligned-recipe cell it starts from; then the
    calibration-source and calibration-size cells not already there."""
    study = config["study"]
    if not study["methods"]:
        return []
    recovered, sources, samples = study["recovery"], study["calibration_sources"], study["calibration_samples"]
    out = []
    for model in study["models"] or evaluated_models(config):
        for method in study["methods"]:
            for ratio in study["ratios"]:
                name = study_method(method, ratio)
                out.extend(Row(model, name, recipe) for recipe in study["recipes"])
                if method in recovered["methods"] and ratio in (recovered["ratios"] or study["ratios"]):
                    out.extend(Row(model, f"{name}+{recovery}", study["recipes"][0])
                               for recovery in recovered["recoveries"])
        out.extend(Row(model, study_method(m, sources["ratio"]), r) for m in sources["methods"] for r in sources["recipes"])
        if samples["method"] is not None:
            out.extend(Row(model, study_method(samples["method"], samples["ratio"]), r) for r in samples["recipes"])
    return list(dict.fromkeys(out))


def suite_rows(config: dict) -> list[Row]:
    """The task table's cells, per model: the dense model, every suite method with every suite
    recipe, then the study's cells."""
    suite = config["task_suite"]
    if not suite["tasks"] and not suite["reasoning"]:
        return []
    suite_models = suite["models"] or evaluated_models(config)
    study = study_rows(config)
    out = []
    for model in dict.fromkeys([*suite_models, *(r.model for r in study)]):
        out.append(Row(model, paths.DENSE, paths.NO_RECIPE))
        if model in suite_models:
            out.extend(Row(model, m, r) for m in suite["methods"] for r in suite["recipes"])
        out.extend(r for r in study if r.model == model)
    return list(dict.fromkeys(out))


def speed_rows(config: dict) -> list[Row]:
    """Rows of the speed table: each study model's dense row, then its study cells."""
    study = study_rows(config)
    out = []
    for model in dict.fromkeys(r.model for r in study):
        out.append(Row(model, paths.DENSE, paths.NO_RECIPE))
        out.extend(r for r in study if r.model == model)
    return out


# ---------------------------------------------------------------- the whole run

def calibration_sets(config: dict) -> list[tuple[str, str]]:
    """Every (model, recipe) calibration set some table or figure of this run prunes with, plus
    Table 2's recipes for every model, in first-use order."""
    sets = dict.fromkeys((m, r) for m in evaluated_models(config) for r in config["calibration"]["recipes"])
    for _, _, row in _drawn_rows(config):
        if row.recipe != paths.NO_RECIPE:
            sets[(row.model, row.recipe)] = None
    sets.update(dict.fromkeys((row.model, row.recipe) for row in suite_rows(config) if row.recipe != paths.NO_RECIPE))
    return list(sets)


def cell_benchmarks(config: dict) -> dict[Row, list[str]]:
    """Each evaluated cell and the benchmarks it is evaluated on: those of every table and figure
    that shows it (a cell only ablations show runs only their benchmarks), and the task suite's
    reasoning benchmarks for a cell of the second paper's table."""
    cells: dict[Row, set[str]] = {}
    for kind, number, row in _drawn_rows(config):
        cells.setdefault(row, set()).update(table_benchmarks(config, number, kind))
    if config["task_suite"]["reasoning"]:  # its reasoning category: prunebench's own benchmarks
        for row in suite_rows(config):
            cells.setdefault(row, set()).update(config["task_suite"]["reasoning"])
    return {row: [b for b in benchmarks(config) if b in benches] for row, benches in cells.items()}


# ---------------------------------------------------------------- priorities

class Priorities:
    """The priority of each job, so that both cores always hold the job the critical path needs
    next: an evaluated model's preparation, pool and grading first (its largest pool before the
    others; a generator-only model's after); calibration sets as soon as they can be built; tables
    and figures as soon as their inputs exist; then the first paper's cells before the study's (so
    that its tables are drawn first, and what the second paper adds to a run is the time after
    them), Table 2's before the ablations', and within each an evaluation before the next prune.
    Among the study's prunes the searching depth methods go first (longest first, so that the
    run's last job is short).

    What keeps results/ within its disk budget: every job that writes a checkpoint (a prune, a
    recovery) ranks below every evaluation of its band, so a new checkpoint is started only when
    each written one's evaluations have all started, and a recovery ranks above every prune, so a
    checkpoint kept for its recoveries is not held while other prunes write theirs. Then at most
    three pruned checkpoints are on disk at once (one whose last evaluation runs on one core, one
    being written on the other, and one kept for its recoveries).

    Computed once per config: the workflow asks it for every job it plans."""

    CRITICAL, LIGHT = 10, 8
    FIRST_PAPER = 4
    STUDY_PRUNE, STUDY_SEARCHING, STUDY_RECOVERY, STUDY_EVALUATION = 0, 1, 2, 3

    def __init__(self, config: dict):
        self.config = config
        self.main_cells = set(required_rows(config, 2))
        self.first_paper_cells = first_paper_rows(config)
        sources = config["self_generation"]["sources"]
        # The pool with the most problems is the longest job on the critical path (it feeds SGR
        # and SSGR): when one core is free (the other busy with Table 8's generator), it goes first.
        self.largest_pool = max(sources, key=lambda dataset: sources[dataset], default=None)

    def pool(self, model: str, dataset: str) -> int:
        """A model's pool and grading. A generator-only model's (Table 8's other source) goes
        before any cell: it heads a chain of its own (grading, calibration, a prune, an evaluation)
        that, left to the ablations' priority, waited behind every ablation prune and ran last."""
        if self.config["models"][model]["generator_only"]:
            return self.LIGHT
        return self.CRITICAL + (1 if dataset == self.largest_pool else 0)

    def cell(self, model: str, method: str, recipe: str, evaluation: bool = False) -> int:
        """A cell's jobs by the cell: a first-paper cell's task-suite job goes with its
        evaluation, so that its checkpoint is removed as soon after it is written as any other's."""
        row = Row(model, method, recipe)
        if row in self.first_paper_cells:
            return self.FIRST_PAPER + (2 if row in self.main_cells else 0) + (1 if evaluation else 0)
        if evaluation:
            return self.STUDY_EVALUATION
        return self.STUDY_SEARCHING if algorithm(method) in SEARCHING else self.STUDY_PRUNE

    def recovery(self, model: str, method: str, recipe: str) -> int:
        """A recovery of the pruned `method` (the study's cells have them): after its checkpoint's
        evaluations, before any other prune. Left at a prune's priority, a recovery waited behind
        other prunes, and the checkpoint it reads was held while they wrote theirs."""
        if Row(model, method, recipe) in self.first_paper_cells:
            return self.cell(model, method, recipe)
        return self.STUDY_RECOVERY
