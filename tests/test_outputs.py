"""The output registry: every table and figure of both papers is one entry, and the workflow's rules,
targets, the `prunebench table`/`figure` commands and the report's pages all follow from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunebench import paths, report
from prunebench.cli import build_parser
from prunebench.config import validate
from prunebench.io import write_json
from prunebench.outputs import EXTENSIONS, OUTPUTS, names

from .conftest import ROOT

TEMPLATES = ROOT / "report" / "templates"


def test_names_are_unique_targets_and_file_stems():
    assert len(OUTPUTS) == 29 and names("table")[:8] == [f"table{n}" for n in range(1, 9)]
    for name, output in OUTPUTS.items():
        assert name == output.name and output.kind in EXTENSIONS
        files = output.files()
        assert list(files) == list(EXTENSIONS[output.kind])
        assert all(Path(f).stem == name and Path(f).parent.name == f"{output.kind}s" for f in files.values())
    # what measures the machine is exactly what the manifest leaves out
    measured = {f for o in OUTPUTS.values() if o.measured for f in o.files().values()}
    hashed = {f for o in OUTPUTS.values() if not o.measured for f in o.files().values()}
    assert measured <= set(paths.UNHASHED) and not hashed & set(paths.UNHASHED)


def test_every_part_is_shown_and_every_template_part_has_an_output():
    parts = report._parts(TEMPLATES)
    used = {o.part for o in OUTPUTS.values() if o.part}
    for page, available in parts.items():
        assert available <= used, (page, available - used)  # no part left behind by a removed output
    assert all(o.part in parts["index"] or o.part in parts["speed"] for o in OUTPUTS.values() if o.part)


def test_the_commands_choices_come_from_the_registry():
    parser = build_parser()
    for kind in EXTENSIONS:
        sub = parser._subparsers._group_actions[0].choices[kind]
        choices = next(a.choices for a in sub._actions if a.dest == "name")
        assert list(choices) == names(kind)
    with pytest.raises(SystemExit):
        parser.parse_args(["table", "--name", "table9", "--config-json", "{}", "--out-csv", "a", "--out-json", "b"])


def test_prunebench_table_writes_an_output_by_name(tmp_path, monkeypatch):
    """The command the `table` rule runs: the registry's writer for that name, with the config it reads."""
    from prunebench.cli import main

    monkeypatch.chdir(tmp_path)
    config = validate({"models": {"m": {"source": {"path": "/x"}}}, "calibration": {"recipes": ["sgr"]},
                       "pruning": {"methods": ["wanda-0.5"]}, "evaluation": {"benchmarks": {"wordproblems": 2}}})
    for method, recipe in (("dense", "none"), ("wanda-0.5", "sgr")):
        write_json(paths.eval_metrics("m", method, recipe, "wordproblems"),
                   {"pass@1": 25.0, "stderr": 5.0, "mean_tokens": 10.0, "truncation_rate": 0.0})
    output = OUTPUTS["table2"]
    files = output.files()
    main(["table", "--name", "table2", "--config-json", json.dumps(output.reads(config)),
          "--out-csv", files["csv"], "--out-json", files["json"]])
    table = json.loads(Path(files["json"]).read_text())
    assert table["table"] == 2 and [r["wordproblems"] for r in table["rows"]] == [25.0, 25.0]
