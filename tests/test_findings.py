"""The first paper's claims as verdicts, on crafted per-problem results whose numbers are worked by hand."""

from __future__ import annotations

import math

import pytest

from prunebench import findings, paths, tables
from prunebench.config import validate
from prunebench.io import read_json, write_jsonl
from prunebench.outputs import OUTPUTS
from prunebench.provenance import provenance

CONFIG = {"models": {"m": {"source": {"path": "/x"}}},
          "calibration": {"recipes": ["c4", "mathr", "sgr", "ssgr"]},
          "pruning": {"methods": ["sparsegpt-0.5"]},
          "evaluation": {"benchmarks": {"wordproblems": 4}},
          "experiments": {"figure4": {"methods": ["sparsegpt-0.5", "sparsegpt-0.6"], "recipes": ["c4", "ssgr"],
                                      "benchmarks": ["wordproblems"]}}}
# per cell, whether each of problems p0..p3 was solved (one sample each)
SOLVED = {("sparsegpt-0.5", "ssgr"): [1, 0, 0, 0], ("sparsegpt-0.5", "c4"): [0, 0, 0, 0],
          ("sparsegpt-0.5", "mathr"): [1, 0, 0, 0], ("sparsegpt-0.5", "sgr"): [1, 1, 1, 1],
          ("sparsegpt-0.6", "ssgr"): [1, 1, 1, 0], ("sparsegpt-0.6", "c4"): [0, 0, 0, 0],
          ("dense", "none"): [1, 1, 1, 1]}


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for (method, recipe), solved in SOLVED.items():
        samples = [{"id": f"p{i}", "sample": 0, "correct": bool(s), "tokens": 5, "finish": "stop"}
                   for i, s in enumerate(solved)]
        write_jsonl(paths.eval_samples("m", method, recipe, "wordproblems"), samples, provenance=provenance([]))
    return tables.table_config(validate(CONFIG)), tmp_path


def test_each_verdict_on_numbers_worked_by_hand(run):
    config, root = run
    found = {row["claim"]: row for row in findings.rows(config, root)}
    # 1: SSGR minus C4 per problem: 100, 0, 0, 0 -> mean 25, sd 50, se 25: within 2 SE
    assert found[1]["difference"] == pytest.approx(25) and found[1]["se"] == pytest.approx(25) and found[1]["n"] == 4
    assert found[1]["verdict"] == findings.NOT_SEPARABLE
    # 2: SSGR minus MathR: all 0 -> no difference at all
    assert found[2]["difference"] == 0 and found[2]["verdict"] == findings.NOT_SEPARABLE
    # 3: SSGR minus SGR: 0, -100, -100, -100 -> mean -75, se 25: -3 SE, reversed
    assert found[3]["difference"] == pytest.approx(-75) and found[3]["se"] == pytest.approx(25)
    assert found[3]["verdict"] == findings.REVERSED
    # 4-7: Tables 1, 4 and 8 list no recipes in this config
    assert {found[n]["verdict"] for n in (4, 5, 6, 7)} == {findings.ABSENT}
    # 8: (SSGR - C4) at 60% minus at 50%, per problem: 0, 100, 100, 0 -> mean 50, se 28.87: within 2 SE
    assert found[8]["difference"] == pytest.approx(50) and found[8]["se"] == pytest.approx(100 / math.sqrt(12))
    assert found[8]["verdict"] == findings.NOT_SEPARABLE and "sparsegpt-0.6" in found[8]["comparison"]


@pytest.mark.parametrize("differences, verdict", [
    ([100, 100, 100, 0], findings.HOLDS),            # 75 >= 2 x 25
    ([-100, -100, -100, 0], findings.REVERSED),
    ([100, -100, 0, 0], findings.NOT_SEPARABLE),
    ([], findings.ABSENT),
    ([100], findings.NOT_SEPARABLE),                  # one problem has no standard error: no claim
])
def test_the_verdict_never_claims_more_than_the_numbers(differences, verdict):
    assert findings.summarize(differences)["verdict"] == verdict


def test_the_table_is_an_output_with_every_claim(run):
    config, root = run
    output = OUTPUTS["first_findings"]
    output.write(config, output.files(), root)
    table = read_json(paths.table("first_findings", "json"))
    assert [r["claim"] for r in table["rows"]] == list(range(1, 9)) and table["status"] == "built"
    assert set(output.needs(validate(CONFIG))) >= {paths.eval_dir("m", "sparsegpt-0.6", "ssgr")}
