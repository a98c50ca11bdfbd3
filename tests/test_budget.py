"""The thinking-budget axis: the ladder against a direct re-grading of cut responses, the paired
token difference against numbers worked by hand, and the outputs over a small results tree."""

from __future__ import annotations

import json
import math

import pytest

from prunebench import budget, paths
from prunebench.grading import grade_records
from prunebench.io import read_json, write_jsonl
from prunebench.provenance import provenance

MAX_NEW = 40
# (problem, words before the answer, the answer, finished within MAX_NEW): answers that finish
# before, at and after each budget of the ladder (10, 20, 30, 40 words), right and wrong, and one
# that never finishes.
RESPONSES = [
    ("p1", 5, "7", True), ("p1", 9, "7", True), ("p1", 19, "7", True), ("p1", 25, "8", True),
    ("p2", 12, "3", True), ("p2", 29, "3", True), ("p2", 39, "3", True), ("p2", 45, "3", False),
    ("p3", 2, "5", True), ("p3", 30, "4", True), ("p3", 18, "5", True), ("p3", 50, None, False),
]
GOLD = {"p1": "7", "p2": "3", "p3": "5"}


def _response(words: int, answer: str | None) -> list[str]:
    """Whitespace tokens: reasoning words, then the boxed answer as the last token."""
    return ["step"] * words + ([f"\\boxed{{{answer}}}"] if answer is not None else [])


def _graded(responses: list[tuple[list[str], str]]) -> list[dict]:
    samples = [{"id": problem, "sample": i, "text": " ".join(tokens), "finish": finish, "tokens": len(tokens)}
               for i, (problem, tokens, finish) in enumerate(responses)]
    return grade_records(samples, GOLD, {p: "math" for p in GOLD}, think=None, timeout=10, workers=1)


def test_the_ladder_equals_regrading_each_response_cut_at_each_budget():
    full = []
    for problem, words, answer, finished in RESPONSES:
        tokens = _response(words, answer)
        full.append((problem, tokens[:MAX_NEW], "stop" if finished and len(tokens) <= MAX_NEW else "length"))
    graded = _graded(full)
    assert budget.budgets(MAX_NEW) == [10, 20, 30, 40]
    for cap in budget.budgets(MAX_NEW):
        # what a generation stopped at `cap` would have produced: the first `cap` tokens, finished only
        # if the whole response was within them
        cut = _graded([(p, tokens[:cap], finish if len(tokens) <= cap else "length") for p, tokens, finish in full])
        per = {}
        for sample in cut:
            per.setdefault(sample["id"], []).append(sample["correct"])
        direct = 100 * sum(sum(v) / len(v) for v in per.values()) / len(per)
        value, se, problems = budget.accuracy_at(graded, cap)
        assert problems == 3 and value == pytest.approx(direct), cap
    # by hand: at 10 tokens only p1's 6- and 10-token answers and p3's 3-token one count; at 40 every right one
    assert budget.accuracy_at(graded, 10)[0] == pytest.approx(100 * (2 / 4 + 0 + 1 / 4) / 3)
    assert budget.accuracy_at(graded, 40)[0] == pytest.approx(100 * (3 / 4 + 3 / 4 + 2 / 4) / 3)


@pytest.mark.parametrize("dense, pruned, expected", [
    ({"a": 10, "b": 20, "c": 30}, {"a": 14, "b": 26, "c": 30, "d": 5}, (10 / 3, math.sqrt(28 / 3) / math.sqrt(3), 3, budget.NOT_SEPARABLE)),
    ({"a": 10, "b": 20, "c": 30}, {"a": 20, "b": 32, "c": 41}, (11.0, 1 / math.sqrt(3), 3, budget.LONGER)),
    ({"a": 10, "b": 20, "c": 30}, {"a": 0, "b": 8, "c": 19}, (-11.0, 1 / math.sqrt(3), 3, budget.SHORTER)),
    ({"a": 10, "b": 20}, {"a": 15, "c": 9}, (5.0, math.nan, 1, budget.TOO_FEW)),
])
def test_the_paired_token_difference_is_worked_as_by_hand(dense, pruned, expected):
    found = budget.paired_difference(dense, pruned)
    mean, se, n, verdict = expected
    assert found["difference"] == pytest.approx(mean) and found["problems"] == n and found["verdict"] == verdict
    assert (math.isnan(found["se"]) and math.isnan(se)) or found["se"] == pytest.approx(se)


def test_the_outputs_over_a_run(tmp_path, monkeypatch):
    """Table 2's cells with samples: every cell graded at every budget, the pruned cells against the dense."""
    from prunebench.config import validate
    from prunebench.outputs import OUTPUTS

    monkeypatch.chdir(tmp_path)
    config = validate({"models": {"m": {"source": {"path": "/x"}}}, "calibration": {"recipes": ["sgr"]},
                       "pruning": {"methods": ["wanda-0.5"]}, "experiments": {"figure4": {"methods": ["wanda-0.5"]}},
                       "evaluation": {"benchmarks": {"wordproblems": 3, "gsm8k": 2}, "max_new_tokens": 40,
                                      "token_limits": {"gsm8k": 80}}})
    config = budget.config_read(config)
    lengths = {"dense": [8, 12, 30], "wanda-0.5": [20, 24, 50]}
    for method, recipe in (("dense", "none"), ("wanda-0.5", "sgr")):
        samples = [{"id": f"q{i}", "sample": 0, "tokens": min(t, 40), "finish": "stop" if t <= 40 else "length",
                    "correct": t <= 40} for i, t in enumerate(lengths[method])]
        write_jsonl(paths.eval_samples("m", method, recipe, "wordproblems"), samples, provenance=provenance([]))
        # GSM8K has its own limit (80): answers at 50 and 70 tokens count from 3/4 and from all of it
        write_jsonl(paths.eval_samples("m", method, recipe, "gsm8k"),
                    [{"id": f"g{i}", "sample": 0, "tokens": t, "finish": "stop", "correct": method == "dense"}
                     for i, t in enumerate((50, 70))], provenance=provenance([]))
    for name in ("budget", "tokens_to_answer", "budget_curve", "tokens_distribution"):
        output = OUTPUTS[name]
        output.write(config, output.files(), tmp_path)
    table = read_json(paths.table("budget", "json"))
    dense = next(r for r in table["rows"] if r["method"] == "dense" and r["benchmark"] == "wordproblems")
    assert table["budgets"] == [10, 20, 30, 40] and dense["problems"] == 3 and dense["budgets"] == [10, 20, 30, 40]
    assert [dense[f"pass@1@{f}"] for f in table["steps"]] == pytest.approx([100 / 3, 200 / 3, 100, 100])
    own = next(r for r in table["rows"] if r["method"] == "dense" and r["benchmark"] == "gsm8k")
    assert own["budgets"] == [20, 40, 60, 80] and [own[f"pass@1@{f}"] for f in table["steps"]] == [0, 0, 50, 100]
    (tokens,) = read_json(paths.table("tokens_to_answer", "json"))["rows"]
    assert tokens["method"] == "wanda-0.5" and tokens["problems"] == 2 and tokens["difference"] == pytest.approx(12.0)
    assert tokens["verdict"] == budget.LONGER   # +12 and +12: no spread, a difference all the same
    assert json.loads(open(paths.figure("budget_curve", "json")).read())["status"] == "built"
