"""The second paper's study grid (config.study): its checks, its rows in the task table, and the
speed table computed from measurements against each dense model."""

from __future__ import annotations

import json
import math

import pytest

from prunebench import grid, paths, suite
from prunebench.config import validate
from prunebench.io import InputError, read_json, write_json


def _config(study=None, **suite_entry) -> dict:
    return {"models": {"m": {"source": {"path": "."}}}, "evaluation": {"benchmarks": {"gsm8k": 4}},
            "task_suite": suite_entry, "study": study or {},
            "calibration": {"recipes": ["c4"], "recipe_definitions": {
                "c4": {"type": "pretraining", "datasets": ["c4"]}, "sgr": {"type": "sgr", "sequences": 4}}}}


def test_study_config_is_checked():
    config = validate(_config({"methods": ["shortgpt", "slicegpt"]}))
    assert config["study"]["ratios"] == [0.2, 0.4, 0.6] and config["study"]["recipes"] == ["sgr"]
    assert config["study"]["speed"] == {"prompt_tokens": 128, "new_tokens": 64, "batch_size": 1, "repeats": 3}
    assert config["calibration"]["recipe_definitions"]["sgr"]["sequences"] == 4
    with pytest.raises(InputError, match=r"config.study.methods\[1\]: unknown pruning method 'shortgtp'"):
        validate(_config({"methods": ["shortgpt", "shortgtp"]}))
    with pytest.raises(InputError, match=r"config.study.recipes: 'ssgr' is not defined"):
        validate(_config({"methods": ["shortgpt"], "recipes": ["ssgr"]}))
    with pytest.raises(InputError, match=r"config.study.ratios\[0\]"):
        validate(_config({"methods": ["shortgpt"], "ratios": [1.0]}))
    with pytest.raises(InputError, match=r"config.study.models\[0\]: 'x' is not an evaluated model"):
        validate(_config({"methods": ["shortgpt"], "models": ["x"]}))
    with pytest.raises(InputError, match=r"recipe_definitions.sgr.sequences"):
        validate({**_config(), "calibration": {"recipe_definitions": {"sgr": {"type": "sgr", "sequences": 0}}}})


def test_study_cells_join_the_task_table_after_the_suites_rows():
    config = validate(_config({"methods": ["shortgpt", "llm_pruner"], "ratios": [0.2, 0.4]},
                              tasks={"boolq": {"category": "classification"}}, methods=["wanda-0.5"]))
    assert [(r.method, r.recipe) for r in grid.suite_rows(config)] == [
        ("dense", "none"), ("wanda-0.5", "c4"), ("shortgpt-0.2", "sgr"), ("shortgpt-0.4", "sgr"),
        ("llm_pruner-0.2", "sgr"), ("llm_pruner-0.4", "sgr")]
    assert [r.method for r in grid.speed_rows(config)] == ["dense", "shortgpt-0.2", "shortgpt-0.4",
                                                             "llm_pruner-0.2", "llm_pruner-0.4"]
    params = json.loads(json.dumps(suite.table_config(config)))  # what the table rules read
    assert grid.suite_rows(params) == grid.suite_rows(config) and suite.speed_inputs(params) == suite.speed_inputs(config)
    no_study = validate(_config(tasks={"boolq": {"category": "classification"}}))
    assert grid.speed_rows(no_study) == [] and suite.speed_inputs(no_study) == [paths.table(suite.TABLE, "json")]


def test_dynamic_and_recovered_cells_are_rows_of_the_grid():
    config = validate({**_config({"methods": ["shortgpt", "skipgpt"], "ratios": [0.2, 0.4], "recipes": ["sgr", "c4"],
                                  "recovery": {"methods": ["shortgpt"], "ratios": [0.4],
                                               "recoveries": ["aligned", "generic"]}},
                                 tasks={"boolq": {"category": "classification"}}),
                       "recovery": {"aligned": {"recipe": "sgr"}, "generic": {"recipe": "c4"}}})
    assert config["recovery"]["aligned"]["recipe"] == "sgr" and config["recovery"]["generic"]["steps"] == 1000
    assert [(r.method, r.recipe) for r in grid.study_rows(config)] == [
        ("shortgpt-0.2", "sgr"), ("shortgpt-0.2", "c4"), ("shortgpt-0.4", "sgr"), ("shortgpt-0.4", "c4"),
        ("shortgpt-0.4+aligned", "sgr"), ("shortgpt-0.4+generic", "sgr"),
        ("skipgpt-0.2", "sgr"), ("skipgpt-0.2", "c4"), ("skipgpt-0.4", "sgr"), ("skipgpt-0.4", "c4")]
    with pytest.raises(InputError, match=r"config.study.recovery.methods\[0\]: 'sleb' is not among config.study.methods"):
        validate(_config({"methods": ["shortgpt"], "recovery": {"methods": ["sleb"], "recoveries": ["aligned"]}}))
    with pytest.raises(InputError, match=r"config.study.recovery.recoveries\[0\]: 'tulu' is not among config.recovery"):
        validate(_config({"methods": ["shortgpt"], "recovery": {"methods": ["shortgpt"], "recoveries": ["tulu"]}}))
    with pytest.raises(InputError, match=r"config.recovery.tulu.recipe: 'tulu_mix' is not defined"):
        validate({**_config(), "recovery": {"tulu": {"recipe": "tulu_mix"}}})
    from prunebench.config import recovery_settings

    per_model = {**_config(), "recovery": {"aligned": {"recipe": "c4", "steps": 100, "by_model": {"m": {"steps": 30}}}}}
    assert recovery_settings(validate(per_model), "aligned", "m")["steps"] == 30
    with pytest.raises(InputError, match=r"recovery.aligned.by_model.m.steps"):
        validate({**per_model, "recovery": {"aligned": {"recipe": "c4", "by_model": {"m": {"steps": 0}}}}})
    with pytest.raises(InputError, match=r"by_model: 'x' is not under config.models"):
        validate({**per_model, "recovery": {"aligned": {"recipe": "c4", "by_model": {"x": {}}}}})
    with pytest.raises(InputError, match=r"config.recovery: 'Bad' does not match"):
        validate({**_config(), "recovery": {"Bad": {"recipe": "c4"}}})


def _speed(root, method, recipe, parameters, prefill, decode, size, peak):
    write_json(root / paths.speed("m", method, recipe),
               {"parameters": parameters, "checkpoint_bytes": size, "prefill_tokens_per_second": prefill,
                "decode_tokens_per_second": decode, "peak_memory_bytes": peak})


def test_speed_table_divides_by_the_dense_model_and_shows_category_averages(tmp_path):
    config = validate(_config({"methods": ["shortgpt", "slicegpt"], "ratios": [0.2]},
                              tasks={"boolq": {"category": "classification"}}, methods=[]))
    _speed(tmp_path, "dense", "none", 1000, 200.0, 20.0, 4000, 8e9)
    _speed(tmp_path, "shortgpt-0.2", "sgr", 800, 250.0, 25.0, 3200, 6e9)
    _speed(tmp_path, "slicegpt-0.2", "sgr", 850, 180.0, 0.0, 3400, 7e9)
    write_json(tmp_path / paths.sparsity_record("m", "shortgpt-0.2", "sgr"), {"family": "depth", "overall_sparsity": 0.2083})
    write_json(tmp_path / paths.sparsity_record("m", "slicegpt-0.2", "sgr"), {"family": "width", "overall_sparsity": 0.19})
    write_json(tmp_path / paths.table(suite.TABLE, "json"), {"rows": [
        {"model": "m", "method": "dense", "recipe": "none", "classification": 61.0},
        {"model": "m", "method": "shortgpt-0.2", "recipe": "sgr", "classification": 55.5},
        {"model": "m", "method": "slicegpt-0.2", "recipe": "sgr", "classification": None}]})
    frame = suite.assemble_speed(config, tmp_path)
    dense, short, sliced = (frame.iloc[i] for i in range(3))
    assert dense.family == "dense" and dense.removed == 0 and dense.decode_tokens_per_second_vs_dense == 1
    assert short.family == "depth" and short.removed == pytest.approx(0.2083)
    assert short.decode_tokens_per_second_vs_dense == pytest.approx(25 / 20)
    assert short.prefill_tokens_per_second_vs_dense == pytest.approx(250 / 200)
    assert short.parameters_vs_dense == pytest.approx(0.8) and short.peak_memory_bytes_vs_dense == pytest.approx(0.75)
    assert short.classification == 55.5 and math.isnan(sliced.classification)
    assert sliced.decode_tokens_per_second_vs_dense == 0.0
    suite.write_speed_table(config, tmp_path / "s.csv", tmp_path / "s.json", tmp_path)
    table = read_json(tmp_path / "s.json")
    assert table["status"] == "built" and table["categories"] == ["classification"] and len(table["rows"]) == 3
    assert "128-token seeded prompts" in table["caption"]


def test_speed_table_not_in_this_run_without_a_study(tmp_path):
    config = validate(_config())
    suite.write_speed_table(config, tmp_path / "s.csv", tmp_path / "s.json", tmp_path)
    assert read_json(tmp_path / "s.json")["status"] == "not in this run"


def test_speed_measurements_stay_out_of_the_manifest():
    for path in (paths.speed("m", "dense", "none"), paths.table(paths.SPEED_TABLE, "csv"),
                 paths.report(paths.SPEED_PAGE)):
        assert any(path == u or path.startswith(u + "/") for u in paths.UNHASHED), path
    assert paths.report("index.html") not in paths.UNHASHED


def test_the_readmes_study_block_is_a_valid_config():
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "docs" / "pruning.md").read_text(encoding="utf-8")
    block = next(yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL) if b.startswith("study:"))
    config = {**_config(block["study"]), "recovery": block["recovery"]}
    definitions = config["calibration"]["recipe_definitions"]
    definitions.update({name: {"type": "sgr", "sequences": int(name[4:])} for name in ("sgr_16", "sgr_64", "sgr_256",
                                                                                      "sgr_1024")})
    definitions.update({"sgr": {"type": "sgr"}, **{n: {"type": "pretraining", "datasets": [n]}
                                                   for n in ("wikitext2", "ptb", "alpaca")}})
    config["models"]["think-model"] = {"source": {"path": "."}}
    study = validate(config)["study"]
    # 9 methods x 3 ratios; 2 recovered x 2 recoveries; 2 methods x 4 more sources; 4 more sizes
    assert len(grid.study_rows(config)) == 2 * (9 * 3 + 2 * 2 + 2 * 4 + 4) and study["speed"]["new_tokens"] == 64


def _task_table(rows):
    """A task table as lrm_tasks.json holds it: one task per category, each score with its error."""
    columns = [{"name": "boolq", "category": "classification"}, {"name": "ifeval", "category": "generation"},
               {"name": "gsm8k", "category": "reasoning"}]
    out = []
    for method, recipe, (c, g, r), se in rows:
        out.append({"model": "m", "method": method, "recipe": recipe, "boolq": c, "boolq_se": se,
                    "ifeval": g, "ifeval_se": se, "gsm8k": r, "gsm8k_se": se})
    return {"columns": columns, "rows": out}


def _study_config():
    return validate({**_config({"methods": ["shortgpt", "slicegpt", "skipgpt"], "ratios": [0.2], "recipes": ["sgr", "c4"],
                                "recovery": {"methods": ["shortgpt"], "recoveries": ["aligned", "generic"]}},
                               tasks={"boolq": {"category": "classification"}, "ifeval": {"category": "generation"}},
                               reasoning=["gsm8k"]),
                     "recovery": {"aligned": {"recipe": "sgr"}, "generic": {"recipe": "c4"}}})


def test_findings_are_computed_with_a_verdict_for_each_kind_of_difference():
    from prunebench import study

    rows = [("dense", "none", (80, 60, 40), 1.0),
            ("shortgpt-0.2", "sgr", (70, 30, 20), 1.0),      # depth: strong on classification, weak elsewhere
            ("slicegpt-0.2", "sgr", (60, 50, 21), 1.0),      # width
            ("skipgpt-0.2", "sgr", (75, 55, 20.5), 1.0),     # dynamic: keeps classification and generation
            ("shortgpt-0.2", "c4", (69, 29, 19), 1.0), ("slicegpt-0.2", "c4", (61, 50, 21), 1.0),
            ("skipgpt-0.2", "c4", (74, 55, 20), 1.0),
            ("shortgpt-0.2+aligned", "sgr", (72, 32, 22), 1.0), ("shortgpt-0.2+generic", "sgr", (72, 32, 22), 1.0)]
    records = study.study_records(_task_table(rows))
    found = {f["claim"]: f for f in study.findings(records, _study_config())}
    # 1: depth 70 vs width 60 on classification, se sqrt(1 + 1) (one task per category)
    assert found[1]["difference"] == pytest.approx(10) and found[1]["se"] == pytest.approx(math.sqrt(2))
    assert found[1]["verdict"] == "holds"
    # 2: width (50 + 21) / 2 vs depth (30 + 20) / 2 on generation and reasoning
    assert found[2]["difference"] == pytest.approx(10.5) and found[2]["verdict"] == "holds"
    # 3: static reasoning (20 + 21) / 2 = 20.5 vs dynamic 20.5: no difference
    assert found[3]["difference"] == pytest.approx(0) and found[3]["verdict"] == "not separable at this scale"
    # 4: dynamic loses 19.5 on reasoning and (5 + 5) / 2 = 5 elsewhere
    assert found[4]["difference"] == pytest.approx(14.5) and found[4]["verdict"] == "holds"
    # 5: aligned minus generic, three calibration pairs and one recovery pair: (1 + 0 + 1/3·(1+0+1) ... ) computed
    aligned = [(70 + 30 + 20) / 3, (60 + 50 + 21) / 3, (75 + 55 + 20.5) / 3, (72 + 32 + 22) / 3]
    generic = [(69 + 29 + 19) / 3, (61 + 50 + 21) / 3, (74 + 55 + 20) / 3, (72 + 32 + 22) / 3]
    assert found[5]["n_a"] == found[5]["n_b"] == 4
    assert found[5]["difference"] == pytest.approx(sum(aligned) / 4 - sum(generic) / 4)
    assert found[5]["verdict"] == "not separable at this scale"
    reversed_rows = [r if r[0] != "slicegpt-0.2" or r[1] != "sgr" else ("slicegpt-0.2", "sgr", (80, 50, 21), 1.0)
                     for r in rows]
    flipped = study.findings(study.study_records(_task_table(reversed_rows)), _study_config())
    assert flipped[0]["verdict"] == "reversed" and flipped[0]["difference"] == pytest.approx(-10)
    none = study.findings(study.study_records(_task_table(rows[:2])), _study_config())
    assert none[0]["verdict"] == "not in this run" and none[0]["n_b"] == 0
    # a width method beyond the paper (RESP) is a row of the study, not a member of the paper's width family
    beyond = study.findings(study.study_records(_task_table(rows + [("resp-0.2", "sgr", (10, 90, 90), 1.0)])),
                            _study_config())
    assert [(f["difference"], f["n_b"]) for f in beyond] == [(f["difference"], f["n_b"]) for f in found.values()]


def test_study_targets_are_written_from_the_task_and_speed_tables(tmp_path):
    from prunebench import study

    config = _study_config()
    rows = [("dense", "none", (80, 60, 40), 2.0), ("shortgpt-0.2", "sgr", (70, 30, 20), 2.0),
            ("shortgpt-0.2", "c4", (69, 29, 19), 2.0), ("shortgpt-0.2+aligned", "sgr", (72, 33, 21), 2.0),
            ("shortgpt-0.2+generic", "sgr", (71, 31, 20), 2.0), ("slicegpt-0.2", "sgr", (60, 50, 21), 2.0),
            ("skipgpt-0.2", "sgr", (75, 55, 20.5), 2.0)]
    write_json(tmp_path / paths.table(suite.TABLE, "json"), _task_table(rows))
    write_json(tmp_path / paths.table(paths.SPEED_TABLE, "json"), {"rows": [
        {"method": "dense", "family": "dense", "decode_tokens_per_second_vs_dense": 1.0, "classification": 80},
        {"method": "shortgpt-0.2", "family": "depth", "decode_tokens_per_second_vs_dense": 1.3, "classification": 70}]})
    for name in ("main", "calibration", "recovery", "findings"):
        study.write_table(name, config, tmp_path / f"{name}.csv", tmp_path / f"{name}.json", root=tmp_path)
    main = read_json(tmp_path / "main.json")
    assert main["status"] == "built" and [r["method"] for r in main["rows"]] == [
        "dense", "shortgpt-0.2", "slicegpt-0.2", "skipgpt-0.2"]
    assert main["rows"][1]["classification_se"] == pytest.approx(2.0) and main["rows"][1]["family"] == "depth"
    recovery = read_json(tmp_path / "recovery.json")["rows"]
    assert [(r["recovery"], r["generation_change"]) for r in recovery] == [("aligned", 3), ("generic", 1)]
    assert recovery[0]["generation_change_se"] == pytest.approx(math.sqrt(8))
    assert read_json(tmp_path / "calibration.json")["status"] == "not in this run"   # no calibration_sources
    assert len(read_json(tmp_path / "findings.json")["rows"]) == 5
    assert (tmp_path / "findings.csv").read_text().startswith("# ")
    for name in ("ratios", "samples", "tradeoff"):
        study.write_figure(name, config, tmp_path / f"{name}.svg", tmp_path / f"{name}.pdf", tmp_path / f"{name}.json",
                           root=tmp_path)
        assert (tmp_path / f"{name}.svg").stat().st_size > 0
    assert read_json(tmp_path / "ratios.json")["status"] == "built"
    assert read_json(tmp_path / "samples.json")["status"] == "not in this run"
