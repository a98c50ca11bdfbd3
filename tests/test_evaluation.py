"""Metrics: pass@1 averaged over k samples, its standard error, response lengths."""

import math

import pytest

from prunebench import evaluation


def samples(table):
    """table: {problem: [(correct, tokens, finish), ...]}"""
    return [{"id": pid, "sample": k, "correct": c, "tokens": t, "finish": f, "verdict": "correct" if c else "x",
             "meta": {"level": pid[-1]}}
            for pid, rows in table.items() for k, (c, t, f) in enumerate(rows)]


def test_pass_at_1_averages_per_problem_accuracy():
    data = samples({"a1": [(1, 10, "stop")] * 4,
                    "b2": [(1, 10, "stop"), (0, 10, "stop"), (0, 10, "stop"), (0, 10, "stop")]})
    p1, se = evaluation.pass_at_1(data)
    assert p1 == pytest.approx(62.5)
    # per-problem accuracies 1.0 and 0.25: sd 0.53033, se = sd / sqrt(2)
    assert se == pytest.approx(100 * 0.5303300858899106 / math.sqrt(2))


def test_pass_at_1_is_not_the_sample_mean_when_k_differs():
    data = samples({"a1": [(1, 5, "stop")], "b2": [(0, 5, "stop")] * 3})
    assert evaluation.pass_at_1(data)[0] == pytest.approx(50.0)


def test_lengths_and_truncation():
    data = samples({"a1": [(1, 100, "stop"), (0, 300, "length")], "b2": [(1, 200, "stop"), (0, 400, "length")]})
    m = evaluation.metrics(data, group_by="level")
    assert m["mean_tokens"] == 250 and m["mean_tokens_correct"] == 150
    assert m["truncation_rate"] == 50.0 and m["k"] == 2 and m["problems"] == 2
    assert m["by_level"] == {"1": 50.0, "2": 50.0}


def test_empty_and_single_problem():
    assert math.isnan(evaluation.pass_at_1([])[0])
    p1, se = evaluation.pass_at_1(samples({"a1": [(1, 1, "stop")]}))
    assert p1 == 100.0 and math.isnan(se)
