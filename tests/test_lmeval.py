"""The second paper's task suite through lm-eval: same numbers as lm-eval itself, offline data,
sealed TruthfulQA, failures recorded, resumable runs, the config's checks and the task table."""

from __future__ import annotations

import inspect
import json
import math
import zipfile
from pathlib import Path

import pytest

from prunebench import grid, lmeval, paths
from prunebench.cli import main
from prunebench.config import validate
from prunebench.io import InputError, iter_jsonl, read_json, write_json
from prunebench.lmeval.tasks import mirror as mirror_data

from .conftest import build_tiny_model

LM_EVAL_TASKS = Path(__import__("lm_eval").__file__).parent / "tasks"
BUILTIN = {"boolq": "super_glue/boolq/default.yaml", "piqa": "piqa/piqa.yaml", "winogrande": "winogrande/default.yaml",
           "arc_challenge": "arc/arc_challenge.yaml", "openbookqa": "openbookqa/openbookqa.yaml",
           "ifeval": "ifeval/ifeval.yaml", "truthfulqa_mc2": "truthfulqa/truthfulqa_mc2.yaml"}
# The fields that make a task's prompts and scores: ours must equal lm-eval's own task.
TASK_FIELDS = ("task", "output_type", "doc_to_text", "doc_to_target", "doc_to_choice", "process_results",
               "metric_list", "generation_kwargs", "num_fewshot", "target_delimiter", "fewshot_delimiter",
               "filter_list", "repeats", "should_decontaminate", "doc_to_decontamination_query", "metadata")


def _load(path: Path) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path)


def _comparable(value):
    """A config value with functions as their source code (two imports of one module are two objects)."""
    if callable(value):
        return inspect.getsource(value)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


@pytest.mark.parametrize("task", sorted(BUILTIN))
def test_mirror_tasks_keep_lm_evals_prompts_and_metrics(task):
    ours, theirs = _load(lmeval.TASK_DIR / f"{task}.yaml"), _load(LM_EVAL_TASKS / BUILTIN[task])
    for field in TASK_FIELDS:
        assert _comparable(ours.get(field)) == _comparable(theirs.get(field)), f"{task}.{field}"
    assert task in lmeval.MIRRORED_TASKS


# ---------------------------------------------------------------- the mirror as the hub's rows


def test_mirror_loaders_give_the_hub_splits(mirror):
    counts = {"boolq": ("validation", 3270), "piqa": ("validation", 1838), "winogrande": ("validation", 1267),
              "arc_challenge": ("test", 1172), "openbookqa": ("test", 500), "ifeval": ("train", 541),
              "truthfulqa_mc": ("validation", 817)}
    for loader, (split, count) in counts.items():
        data = getattr(mirror_data, loader)(data_dir=str(mirror))
        assert list(data) == [split] and len(data[split]) == count, loader
    piqa = mirror_data.piqa(data_dir=str(mirror))["validation"]
    labels = (mirror / "piqa/valid-labels.lst").read_text().split()
    assert [str(x) for x in piqa["label"]] == labels
    arc = mirror_data.arc_challenge(data_dir=str(mirror))["test"][0]
    assert isinstance(arc["question"], str) and arc["answerKey"] in arc["choices"]["label"]
    mc = mirror_data.truthfulqa_mc(data_dir=str(mirror))["validation"][0]
    assert len(mc["mc2_targets"]["choices"]) == len(mc["mc2_targets"]["labels"]) and 1 in mc["mc2_targets"]["labels"]


def test_mirror_loader_names_a_missing_file(tmp_path):
    with pytest.raises(mirror_data.MirrorError, match="boolq/dev.jsonl"):
        mirror_data.boolq(data_dir=str(tmp_path))
    with pytest.raises(mirror_data.MirrorError, match="no data_dir"):
        mirror_data.boolq()


# ---------------------------------------------------------------- prunebench against lm-eval itself


def _hub_shaped(task: str, mirror_dir: Path, tmp: Path) -> tuple[dict, str]:
    """lm-eval's own task config, pointed at a JSON file written here from the mirror in the hub
    dataset's shape (an independent conversion of the rows), and the split it reads."""
    rows = [json.loads(line) for line in (mirror_dir / {
        "boolq": "boolq/dev.jsonl", "arc_challenge": "arc/ARC-Challenge-Test.jsonl",
        "winogrande": "winogrande/dev.jsonl", "ifeval": "ifeval/input_data.jsonl"}[task]).read_text().splitlines()]
    if task == "boolq":
        rows = [{"question": r["question"], "passage": r["passage"], "idx": i, "label": 1 if r["answer"] else 0}
                for i, r in enumerate(rows)]
    elif task == "arc_challenge":
        rows = [{"id": r["id"], "question": r["question"]["stem"], "answerKey": r["answerKey"],
                 "choices": {"text": [c["text"] for c in r["question"]["choices"]],
                             "label": [c["label"] for c in r["question"]["choices"]]}} for r in rows]
    elif task == "winogrande":
        rows = [{"sentence": r["sentence"], "option1": r["option1"], "option2": r["option2"], "answer": r["answer"]}
                for r in rows]
    path = tmp / f"{task}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = _load(LM_EVAL_TASKS / BUILTIN[task])
    split = next(s for s in ("test_split", "validation_split") if config.get(s))
    config.update({s: None for s in ("training_split", "validation_split", "test_split") if s != split})
    config.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": {config[split]: str(path)}})
    return config, split


@pytest.mark.parametrize("scoring_batch", [None, 2], ids=["one-batch-size", "own-loglikelihood-batch"])
def test_prunebench_scores_equal_lm_evals_own_run(tiny_model, mirror, tmp_path, scoring_batch):
    """Also with log-likelihood requests in smaller batches than generation's: the same numbers."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    suite = {"boolq": {"limit": 6}, "arc_challenge": {"limit": 6}, "winogrande": {"limit": 6},
             "ifeval": {"limit": 2, "max_gen_toks": 8, "metric": "prompt_level_loose_acc"}}
    out = tmp_path / "ours"
    assert main(["tasks", "--model", str(tiny_model), "--suite-json", json.dumps(suite), "--data-dir", str(mirror),
                 "--seed", "3", "--batch-size", "4", "--out-dir", str(out)]
                + ([] if scoring_batch is None else ["--loglikelihood-batch-size", str(scoring_batch)])) == 0
    lm = HFLM(pretrained=str(tiny_model), batch_size=4, device="cpu")
    for task, spec in suite.items():
        ours = read_json(out / f"{task}.json")
        doc_ids = sorted(r["doc_id"] for r in iter_jsonl(out / f"{task}.jsonl") if "doc_id" in r)
        assert len(doc_ids) == spec["limit"] and doc_ids == lmeval.subset(ours["of_documents"], spec["limit"], 3, task)
        config, _ = _hub_shaped(task, mirror, tmp_path)
        direct = simple_evaluate(model=lm, tasks=[config], task_manager=TaskManager(include_defaults=False),
                                 samples={task: doc_ids}, gen_kwargs={"max_gen_toks": 8} if task == "ifeval" else None,
                                 random_seed=3, numpy_random_seed=3, torch_random_seed=3, fewshot_random_seed=3,
                                 bootstrap_iters=1000)["results"][task]
        numbers = {k: v for k, v in direct.items() if "," in k}
        assert numbers and {k: ours["lm_eval"]["results"][task][k] for k in numbers} == pytest.approx(numbers, abs=1e-9)
        value = direct[f"{ours['metric']},none"] * 100
        assert ours["score"] == pytest.approx(value, abs=1e-9)
    assert read_json(out / "arc_challenge.json")["metric"] == "acc_norm"  # the entry names none: acc_norm


# ---------------------------------------------------------------- sealed, failures, resuming


def _truthfulqa_questions(mirror_dir: Path) -> list[str]:
    with zipfile.ZipFile(mirror_dir / "truthfulqa/truthfulqa.zip") as archive:
        rows = json.loads(archive.open("data/mc_task.json", pwd=mirror_data.TRUTHFULQA_PASSWORD).read())
    return [r["question"].strip() for r in rows]


def test_truthfulqa_leaves_no_question_text(tiny_model, mirror, tmp_path, capfd):
    import logging

    out = tmp_path / "tasks"
    logging.getLogger().setLevel(logging.DEBUG)  # the most lm-eval would ever log
    try:
        assert main(["-v", "tasks", "--model", str(tiny_model), "--task", "truthfulqa_mc2", "--limit", "5",
                     "--data-dir", str(mirror), "--out-dir", str(out)]) == 0
    finally:
        logging.getLogger().setLevel(logging.WARNING)
    captured = capfd.readouterr()
    result = read_json(out / "truthfulqa_mc2.json")
    assert result["sealed"] and result["documents"] == 5 and result["score"] is not None
    written = "".join(p.read_text() for p in out.rglob("*") if p.is_file()) + captured.out + captured.err
    leaked = [q for q in _truthfulqa_questions(mirror) if len(q) > 20 and q in written]
    assert not leaked
    records = list(iter_jsonl(out / "truthfulqa_mc2.jsonl"))
    assert records and all(set(r) <= {"doc_id", "filter", "metrics", "acc"} for r in records if "doc_id" in r)


@pytest.mark.parametrize("argv, message", [
    (["--task", "hellaswag"], "hellaswag: not a task prunebench ships"),
    (["--task", "boolqq"], "a misspelt name?"),
    (["--task", "livecodebench"], "livecodebench: reads the hub, which is not allowed"),
    (["--task", "../victim/data"], "is not a task name"),
    (["--suite-json", '{"a/b": {}}'], "is not a task name"),
    (["--task", "boolq", "--limit", "0"], "--limit: documents per task, at least 1"),
    (["--task", "boolq", "--limit", "-3"], "--limit: documents per task, at least 1"),
])
def test_tasks_that_cannot_run_are_refused_before_any_work(tiny_model, mirror, tmp_path, capsys, argv, message):
    out = tmp_path / "tasks"
    victim = tmp_path / "victim" / "data.json"
    assert main(["tasks", "--model", str(tiny_model), *argv, "--data-dir", str(mirror), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not victim.exists()


def test_an_unknown_task_is_refused_where_the_hub_is_allowed(tiny_model, mirror, tmp_path, capsys):
    out = tmp_path / "tasks"
    assert main(["tasks", "--model", str(tiny_model), "--task", "no_such_task_anywhere", "--allow-hub",
                 "--data-dir", str(mirror), "--out-dir", str(out)]) == 2
    assert "neither a task prunebench ships nor one of lm-eval's" in capsys.readouterr().err and not out.exists()


def test_a_failing_task_records_why_the_rest_run_and_a_rerun_tries_it_again(tiny_model, mirror, tmp_path):
    """BoolQ's data missing: it records why, PIQA still runs; once the data is there, a rerun in the
    same out-dir evaluates BoolQ and keeps PIQA."""
    partial = tmp_path / "partial"
    partial.mkdir()
    for folder in mirror.iterdir():
        if folder.name != "boolq":
            (partial / folder.name).symlink_to(folder)
    out, measured = tmp_path / "tasks", tmp_path / "m.json"
    args = ["tasks", "--model", str(tiny_model), "--task", "boolq", "--task", "piqa", "--limit", "3",
            "--measurements", str(measured), "--out-dir", str(out)]
    assert main(args + ["--data-dir", str(partial)]) == 0
    assert read_json(out / "boolq.json")["score"] is None and read_json(out / "boolq.json")["error"]
    assert read_json(out / "piqa.json")["score"] is not None
    piqa = (out / "piqa.json").read_bytes()
    assert main(args + ["--data-dir", str(mirror)]) == 0
    assert read_json(out / "boolq.json")["score"] is not None
    assert set(read_json(measured)["wall_seconds"]) == {"boolq"} and (out / "piqa.json").read_bytes() == piqa


def test_an_out_dir_reused_for_another_model_is_evaluated_again(tiny_model, mirror, tmp_path):
    other = build_tiny_model(tmp_path / "other", seed=1)
    out, measured = tmp_path / "tasks", tmp_path / "m.json"
    for model in (tiny_model, other):
        assert main(["tasks", "--model", str(model), "--task", "boolq", "--limit", "2", "--data-dir", str(mirror),
                     "--measurements", str(measured), "--out-dir", str(out)]) == 0
        assert set(read_json(measured)["wall_seconds"]) == {"boolq"}
    assert [key for key in read_json(out / "boolq.json")["provenance"]["inputs"]] == [str(other)]


def test_a_killed_run_resumes_at_the_next_task(tiny_model, mirror, tmp_path):
    out, measured = tmp_path / "tasks", tmp_path / "m.json"
    args = ["tasks", "--model", str(tiny_model), "--task", "boolq", "--task", "piqa", "--limit", "3",
            "--data-dir", str(mirror), "--measurements", str(measured), "--out-dir", str(out)]
    assert main(args) == 0
    first = (out / "boolq.json").read_bytes()
    (out / "piqa.json").unlink()  # as if killed after BoolQ
    assert main(args) == 0
    assert set(read_json(measured)["wall_seconds"]) == {"piqa"}  # only the missing task ran again
    assert (out / "boolq.json").read_bytes() == first


def test_subsets_are_seeded_sorted_and_shared():
    a = lmeval.subset(1000, 10, 0, "boolq")
    assert a == sorted(a) and len(set(a)) == 10 and a == lmeval.subset(1000, 10, 0, "boolq")
    assert a != lmeval.subset(1000, 10, 1, "boolq") and a != lmeval.subset(1000, 10, 0, "piqa")
    assert lmeval.subset(5, 10, 0, "boolq") is None and lmeval.subset(5, None, 0, "boolq") is None


def test_primary_metric_and_score():
    results = {"alias": "x", "acc,none": 0.5, "acc_stderr,none": 0.1, "acc_norm,none": 0.75, "acc_norm_stderr,none": 0.05}
    assert lmeval.primary_metric(results) == "acc_norm"
    assert lmeval.score(results, "acc_norm") == (75.0, 5.0)
    assert lmeval.primary_metric({"prompt_level_strict_acc,none": 0.1, "inst_level_strict_acc,none": 0.2}) == \
        "prompt_level_strict_acc"
    assert lmeval.score({"acc,none": 0.5, "acc_stderr,none": "N/A"}, "acc") == (50.0, None)


# ---------------------------------------------------------------- config and the task table


def _config(**suite) -> dict:
    return {"models": {"m": {"source": {"path": "."}}}, "evaluation": {"benchmarks": {"gsm8k": 4, "aime": 2}},
            "task_suite": suite}


def test_suite_config_is_checked():
    config = validate(_config(tasks={"boolq": {"category": "classification", "limit": 5}}, reasoning=["aime"]))
    suite = config["task_suite"]
    assert suite["methods"] == config["pruning"]["methods"] and suite["recipes"] == config["calibration"]["recipes"]
    assert suite["tasks"]["boolq"] == {"category": "classification", "metric": None, "limit": 5, "num_fewshot": None,
                                       "max_gen_toks": None, "chat_template": False, "samples": 1,
                                       "temperature": None}
    # a task the registry knows takes its category from there; lm-eval's own others must name one
    assert validate(_config(tasks={"boolq": {}}))["task_suite"]["tasks"]["boolq"]["category"] == "classification"
    with pytest.raises(InputError, match=r"task_suite.tasks.mmlu.category: missing, and prunebench does not know"):
        validate({**_config(tasks={"mmlu": {}}), "allow_hub": True})
    with pytest.raises(InputError, match=r"task_suite.reasoning\[0\]: 'math500' is not under"):
        validate(_config(reasoning=["math500"]))
    with pytest.raises(InputError, match=r"task_suite.tasks.boolq.limit"):
        validate(_config(tasks={"boolq": {"category": "classification", "limit": 0}}))
    with pytest.raises(InputError, match=r"task_suite.methods\[0\]"):
        validate(_config(methods=["sparsegpt-two"], tasks={"boolq": {"category": "classification"}}))


def test_suite_cli_refuses_a_bad_entry_before_any_work(tiny_model, tmp_path):
    out = tmp_path / "tasks"
    assert main(["tasks", "--model", str(tiny_model), "--suite-json", '{"boolq": {"limit": -1}}',
                 "--out-dir", str(out)]) != 0
    assert not out.exists()


def _task_result(root: Path, model, method, recipe, task, score, stderr=1.0, **extra):
    write_json(root / paths.task_result(model, method, recipe, task),
               {"task": task, "metric": "acc", "score": score, "stderr": stderr, **extra})


def test_task_table_averages_each_category(tmp_path):
    from prunebench import suite

    config = validate(_config(tasks={"boolq": {"category": "classification"}, "piqa": {"category": "classification"},
                                     "ifeval": {"category": "generation"}}, reasoning=["aime"],
                              methods=["wanda-0.5"], recipes=["c4"]))
    rows = {("dense", "none"): (60.0, 70.0, 30.0, 10.0), ("wanda-0.5", "c4"): (50.0, None, 20.0, 0.0)}
    for (method, recipe), (boolq, piqa, ifeval, aime) in rows.items():
        _task_result(tmp_path, "m", method, recipe, "boolq", boolq)
        _task_result(tmp_path, "m", method, recipe, "piqa", piqa, **({"error": "failed"} if piqa is None else {}))
        _task_result(tmp_path, "m", method, recipe, "ifeval", ifeval)
        write_json(tmp_path / paths.eval_metrics("m", method, recipe, "aime"), {"pass@1": aime, "stderr": None})
    frame = suite.assemble(config, tmp_path)
    dense, pruned = frame.iloc[0], frame.iloc[1]
    assert list(frame.method) == ["dense", "wanda-0.5"]
    assert dense.classification == pytest.approx((60 + 70) / 2) and dense.generation == 30 and dense.reasoning == 10
    assert math.isnan(pruned.classification) and pruned.note == "failed"  # never an average of fewer tasks
    assert pruned.generation == 20 and pruned.reasoning == 0
    out = tmp_path / "t.json"
    suite.write_table(config, tmp_path / "t.csv", out, tmp_path)
    table = read_json(out)
    assert [c["category"] for c in table["columns"]] == ["classification", "classification", "generation", "reasoning"]
    assert table["status"] == "built" and "BoolQ all" in table["caption"]


def test_task_table_params_find_the_workflows_rows():
    """The table's rule reads only its params: with a generator-only model in the config, the rows it
    reads must be the rows the workflow builds (a generator-only model has no task results)."""
    from prunebench import suite

    config = _config(tasks={"boolq": {"category": "classification"}}, methods=["wanda-0.5"], recipes=["c4"])
    config["models"]["teacher"] = {"source": {"path": "."}, "generator_only": True}
    config = validate(config)
    params = json.loads(json.dumps(suite.table_config(config)))
    assert grid.suite_rows(params) == grid.suite_rows(config)
    assert {r.model for r in grid.suite_rows(params)} == {"m"}
    assert suite.read_inputs(params) == suite.read_inputs(config)


def test_task_table_not_in_this_run_without_tasks(tmp_path):
    from prunebench import suite

    config = validate(_config())
    assert grid.suite_rows(config) == [] and suite.required_inputs(config) == []
    suite.write_table(config, tmp_path / "t.csv", tmp_path / "t.json", tmp_path)
    assert read_json(tmp_path / "t.json")["status"] == "not in this run"
    suite.write_figure(config, tmp_path / "f.svg", tmp_path / "f.pdf", tmp_path / "f.json", tmp_path)
    assert (tmp_path / "f.svg").stat().st_size > 0



def test_popqa_counts_an_answer_holding_any_alias():
    from prunebench.lmeval.tasks import popqa

    doc = {"possible_answers": '["Paris", "City of Light"]'}
    assert popqa.process_results(doc, [" It is paris, in France"]) == {"acc": 1.0}
    assert popqa.process_results(doc, ["the city of light"]) == {"acc": 1.0}
    assert popqa.process_results(doc, ["Lyon"]) == {"acc": 0.0}
    assert "popqa" in lmeval.SHIPPED_TASKS and "popqa" not in lmeval.MIRRORED_TASKS


def test_the_readmes_full_suite_is_a_valid_config_of_17_tasks():
    """docs/task-suite.md's block of the second paper's 17 tasks passes the config checks as written."""
    import re

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "docs" / "task-suite.md").read_text(encoding="utf-8")
    block = next(yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL)
                 if "livecodebench" in b and "task_suite" in b)
    suite = block["task_suite"]
    config = {**_config(**suite), "allow_hub": block["allow_hub"]}
    config["evaluation"]["benchmarks"] = {name: 1 for name in suite["reasoning"]}
    checked = validate(config)["task_suite"]
    categories = [spec["category"] for spec in checked["tasks"].values()] + ["reasoning"] * len(checked["reasoning"])
    assert len(categories) == 17
    assert {c: categories.count(c) for c in set(categories)} == {"classification": 7, "generation": 5, "reasoning": 5}
    assert set(checked["tasks"]) - {"hellaswag", "arc_easy"} <= set(lmeval.SHIPPED_TASKS)


def test_a_task_whose_config_holds_functions_is_recorded_the_same_in_every_process(tiny_model, mirror, tmp_path):
    """WinoGrande's task config holds Python functions, whose reprs carry a memory address that
    differs in every process: the record names them by module and name instead, so two runs in two
    processes write the same bytes (two rebuilds of the default differed here)."""
    import subprocess
    import sys

    records = []
    for run in ("first", "second"):
        out = tmp_path / run
        done = subprocess.run([sys.executable, "-m", "prunebench", "tasks", "--model", str(tiny_model), "--task",
                               "winogrande", "--limit", "2", "--data-dir", str(mirror), "--out-dir", str(out)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        records.append((out / "winogrande.json").read_bytes())
    assert records[0] == records[1]
    assert b" at 0x" not in records[0] and b"<function " in records[0]
