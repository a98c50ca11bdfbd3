"""What a run builds, asked of prunebench.grid on plain configs (no Snakemake): the priority policy,
the cells of both papers, the calibration sets."""

from __future__ import annotations

import pytest

from prunebench import config as pb_config
from prunebench import grid

from .conftest import ROOT

QWEN, SMOL = "qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def default():
    return pb_config.load(ROOT / "config" / "config.yaml")


def test_pools_come_first_the_largest_before_the_others_a_generators_after(default):
    priority = grid.Priorities(default)
    largest = max(default["self_generation"]["sources"], key=default["self_generation"]["sources"].get)
    other = next(d for d in default["self_generation"]["sources"] if d != largest)
    assert priority.pool(QWEN, largest) == priority.CRITICAL + 1 > priority.pool(QWEN, other) == priority.CRITICAL
    assert priority.pool(SMOL, largest) == priority.LIGHT < priority.CRITICAL
    assert default["models"][SMOL]["generator_only"]


def test_cells_go_first_paper_main_table_ablations_then_study_evaluations_before_prunes(default):
    priority = grid.Priorities(default)
    main = grid.required_rows(default, 2)[1]                                   # a Table 2 cell
    ablation = next(r for r in grid.first_paper_rows(default) if r not in set(grid.required_rows(default, 2)))
    searching = next(r for r in grid.study_rows(default) if r.method.startswith("sleb"))
    other = next(r for r in grid.study_rows(default) if r.method.startswith("shortgpt") and "+" not in r.method)

    def rank(row, evaluation=False):
        return priority.cell(row.model, row.method, row.recipe, evaluation)

    ranks = [rank(main, True), rank(main), rank(ablation, True), rank(ablation), rank(other, True), rank(other)]
    assert ranks == [7, 6, 5, 4, 3, 0]
    assert rank(searching) == 1  # a searching depth prune starts before the study's other prunes
    assert min(ranks[:4]) > rank(searching) and max(ranks) < priority.LIGHT


def test_the_study_cells_and_the_suite_rows_of_a_plain_config():
    config = pb_config.validate({
        "models": {"m": {"source": {"path": "."}}, "g": {"source": {"path": "."}, "generator_only": True}},
        "pruning": {"methods": ["wanda-0.5"]}, "calibration": {"recipes": ["c4"]},
        "task_suite": {"tasks": {"boolq": {"category": "classification"}}},
        "study": {"methods": ["shortgpt"], "ratios": [0.2, 0.4], "recipes": ["sgr"],
                  "recovery": {"methods": ["shortgpt"], "ratios": [0.2], "recoveries": ["aligned"]}},
        "recovery": {"aligned": {"recipe": "sgr"}}})
    study = [(r.model, r.method, r.recipe) for r in grid.study_rows(config)]
    assert study == [("m", "shortgpt-0.2", "sgr"), ("m", "shortgpt-0.2+aligned", "sgr"), ("m", "shortgpt-0.4", "sgr")]
    assert [(r.method, r.recipe) for r in grid.suite_rows(config)] == [
        ("dense", "none"), ("wanda-0.5", "c4"), *((m, r) for _, m, r in study)]
    assert [r.method for r in grid.speed_rows(config)] == ["dense", *(m for _, m, _ in study)]
    assert grid.calibration_sets(config) == [("m", "c4"), ("m", "sgr")]  # a generator-only model prunes nothing


def test_a_recovery_goes_after_its_checkpoints_evaluations_before_any_other_prune(default):
    """A pruned checkpoint is kept until its last recovery is written: a recovery outranks every
    prune of the study, so the checkpoint is not held while other prunes write theirs, and ranks
    below every evaluation, as every job that writes a checkpoint does."""
    priority = grid.Priorities(default)
    study = grid.study_rows(default)
    recovered = next(r for r in study if "+" in r.method)
    recovery = priority.recovery(recovered.model, recovered.method.split("+")[0], recovered.recipe)
    assert max(priority.cell(r.model, r.method, r.recipe) for r in study) < recovery
    assert recovery < min(priority.cell(r.model, r.method, r.recipe, True) for r in study)


def test_only_a_generator_only_gguf_models_converted_weights_are_transient(default):
    assert grid.transient_checkpoints(default) == [SMOL]
    kept = {**default, "pruning": {**default["pruning"], "keep_checkpoints": True}}
    assert grid.transient_checkpoints(kept) == []
    local = {**default, "models": {**default["models"], SMOL: {**default["models"][SMOL], "source": {"path": "."}}}}
    assert grid.transient_checkpoints(local) == []  # a local directory is read in place, never copied
