"""The Snakemake workflow: dry-runs of both shipped configs, the linter, and an end-to-end run of
the whole DAG on a tiny model built here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from prunebench.config import load as load_config
from prunebench.outputs import OUTPUTS, names
from prunebench.grid import study_method
from prunebench.pruning.spec import SEARCHING, algorithm
from prunebench.grid import first_paper_rows
from prunebench.verify import planned, planned_jobs

from .conftest import MIRROR, ROOT, build_tiny_model

BIN = Path(sys.executable).parent


def dry_run(workdir: Path, configfile: Path | None, targets=("report",)) -> None:
    """Plan the DAG with Snakemake's Python API (raises if the workflow or a target is broken)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[configfile] if configfile else []),
            snakefile=ROOT / "Snakefile", workdir=workdir,
        )
        dag = workflow.dag(DAGSettings(targets=list(targets)))
        dag.execute_workflow(executor="dryrun")


def snakemake(*args, cwd: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", HF_HUB_OFFLINE="1")
    return subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("configfile,models", [("config/config.yaml", 1), ("config/paper.yaml", 3)])
def test_dry_run_plans_every_target(tmp_path, configfile, models):
    targets = ["report", "all", *OUTPUTS]  # every table and figure of both papers is a target
    counts = planned_jobs(ROOT / "Snakefile", tmp_path, targets, configfiles=[ROOT / configfile],
                          config={"data_dir": str(MIRROR)})
    config = load_config(ROOT / configfile)
    # every (model, method, recipe) cell of Table 2, Figure 4 and each configured ablation, once
    evaluated = [m for m, e in config["models"].items() if not e["generator_only"]]
    grids = [(config["pruning"]["methods"], config["calibration"]["recipes"], evaluated)]
    grids += [(e["methods"] if "methods" in e else [e["method"]], e["recipes"], e.get("models") or evaluated)
              for e in config["experiments"].values()]
    study = config["study"]  # the second paper's cells: its grid, the calibration comparisons, recoveries
    study_models = study["models"] or evaluated
    grids.append(([study_method(m, r) for m in study["methods"] for r in study["ratios"]], study["recipes"], study_models))
    sources, samples = study["calibration_sources"], study["calibration_samples"]
    grids.append(([study_method(m, sources["ratio"]) for m in sources["methods"]], sources["recipes"], study_models))
    if samples["method"]:
        grids.append(([study_method(samples["method"], samples["ratio"])], samples["recipes"], study_models))
    pruned = {(model, m, r) for methods, recipes, ms in grids for model in ms for m in methods for r in recipes}
    recovered = {(model, f"{study_method(m, r)}+{name}", study["recipes"][0]) for model in study_models
                 for m in study["recovery"]["methods"] for r in study["recovery"]["ratios"] or study["ratios"]
                 for name in study["recovery"]["recoveries"]}
    assert len(evaluated) == models
    transient = [m for m, e in config["models"].items() if e["generator_only"] and "gguf" in e["source"]]
    assert counts["prepare_model"] + counts.get("prepare_transient_model", 0) == len(config["models"])
    assert counts.get("prepare_transient_model", 0) == len(transient) and counts["prune"] == len(pruned)
    assert counts.get("recover", 0) == len(recovered)
    assert counts["evaluate"] == models + len(pruned) + len(recovered)
    assert counts["table"] == len(names("table")) == 18 and counts["figure"] == len(names("figure")) == 11
    assert counts["render_report"] == 1


def test_paper_dry_run_is_fast_and_offline(tmp_path):
    env_probe = snakemake("report", "-n", "--cores", "1", "--configfile", str(ROOT / "config" / "paper.yaml"),
                          cwd=tmp_path)
    assert env_probe.returncode == 0
    assert not (tmp_path / "results").exists()  # planning wrote nothing and fetched nothing


def test_paper_b_plans_every_structured_cell(tmp_path):
    """The second paper's grid: 2 models x 9 methods x 3 ratios, each pruned, recovered twice (aligned
    and generic data), speed measured and run through the task suite, plus the calibration-source
    (2 methods x 4 generic recipes) and calibration-size (5 more sizes) cells; SliceGPT, LLM-Pruner
    and the dynamic methods' jobs fall back to hf."""
    jobs = planned(ROOT / "Snakefile", tmp_path, ["report"], configfiles=[ROOT / "config" / "paper-b.yaml"])
    counts = Counter(job["rule"] for job in jobs)
    pruned = 2 * (9 * 3 + 2 * 4 + 5)
    recovered = 2 * 9 * 3 * 2
    assert counts["prune"] == pruned + 2 * 2 and counts["recover"] == recovered
    assert counts["measure_speed"] == pruned + recovered + 2
    assert counts["evaluate_tasks"] == pruned + recovered + 2 * 2 + 2
    products = {p for job in jobs for p in job["products"]}
    assert "results/pruned/r1-distill-llama-8b/llm_pruner-0.6/sgr" in products
    assert "results/pruned/r1-distill-llama-8b/skipgpt-0.4+generic/sgr" in products
    recover = next(job for job in jobs if job["rule"] == "recover" and job["wildcards"]["model"] == "r1-distill-llama-8b")
    think = json.loads(re.search(r"--settings-json '([^']*)'", recover["shell"]).group(1))
    assert think["steps"] == 3000 and think["patience"] == 3   # the think model's
    backend = {(job["wildcards"]["model"], job["wildcards"]["method"]): re.search(r"--backend (\w+)", job["shell"]).group(1)
               for job in jobs if job["rule"] == "evaluate_tasks"}
    assert backend["tulu-3-8b-sft", "slicegpt-0.4"] == "hf"
    assert backend["tulu-3-8b-sft", "shortgpt-0.4"] == "vllm"
    assert backend["tulu-3-8b-sft", "shortgpt-0.4+aligned"] == "vllm"
    assert backend["tulu-3-8b-sft", "mod-0.4"] == "hf"
    assert not (tmp_path / "results").exists()  # planning writes nothing (its speed: bench/plan_speed.py)


def test_resp_config_plans_its_ratios_on_its_own_traces(tmp_path):
    """config/resp.yaml: RESP at 20 to 50% on the model's own unfiltered GSM8K responses, each prune
    job reading the pool's problems and regenerating with the self-generation settings."""
    jobs = planned(ROOT / "Snakefile", tmp_path, ["report"], configfiles=[ROOT / "config" / "resp.yaml"],
                   config={"data_dir": str(MIRROR)})
    prunes = {j["wildcards"]["method"]: j for j in jobs if j["rule"] == "prune" and j["wildcards"]["method"].startswith("resp-")}
    assert sorted(prunes) == ["resp-0.2", "resp-0.3", "resp-0.4", "resp-0.5"]
    for job in prunes.values():
        assert job["wildcards"]["recipe"] == "traces"
        assert "--problems results/data/gsm8k_train.jsonl --temperature 0.6 --top-p 0.95 --seed 0 --trace-tokens 2304" \
            in job["shell"]
        assert "--resp-iterations 112 --resp-final-ratio 0.7 --resp-milestones 0.1 0.2 0.3 0.4 0.5" in job["shell"]
    backend = {j["wildcards"]["method"]: j["shell"] for j in jobs if j["rule"] == "evaluate"}
    assert "--backend vllm" in backend["resp-0.2"]   # zeroed, not reshaped: vLLM serves it
    assert not (tmp_path / "results").exists()


def test_the_first_papers_jobs_run_before_the_studys(tmp_path):
    """Of the jobs ready at once, Snakemake runs the higher priority first: every job of a cell the
    first paper shows outranks every job of a cell only the study has, so a cold run draws the
    first paper's tables first and the second paper's share is the time after them."""
    config = load_config(ROOT / "config" / "config.yaml")
    first = {(r.model, r.method, r.recipe) for r in first_paper_rows(config)}
    jobs = planned(ROOT / "Snakefile", tmp_path, ["report"], config={"data_dir": str(MIRROR)})
    by_cell: dict[bool, list[int]] = {True: [], False: []}
    for job in jobs:
        w = job["wildcards"]
        if job["rule"] in ("prune", "recover", "evaluate", "evaluate_tasks", "measure_speed"):
            by_cell[(w["model"], w["method"], w["recipe"]) in first].append(job["priority"])
    assert len(by_cell[True]) > 40 and len(by_cell[False]) > 40
    assert min(by_cell[True]) > max(by_cell[False])
    generator_pool = [j["priority"] for j in jobs if j["rule"] == "generate" and j["wildcards"]["model"] == "smollm2-135m-instruct"]
    assert generator_pool and min(generator_pool) > max(by_cell[True]) > max(by_cell[False])
    # The evaluated model's largest pool (the critical path) goes before its smaller one, which
    # Snakemake would otherwise pick by its larger input file when one core is free.
    pools = {j["wildcards"]["dataset"]: j["priority"] for j in jobs if j["rule"] == "generate"
             and j["wildcards"]["model"] == "qwen2.5-coder-0.5b-instruct"}
    assert config["self_generation"]["sources"] == {"wordproblems_train": 20, "gsm8k_train": 4}
    assert pools["wordproblems_train"] > pools["gsm8k_train"] > max(generator_pool)
    # Among the study's prunes the searching depth methods (the longest) start first.
    study_prunes = {j["wildcards"]["method"]: j["priority"] for j in jobs if j["rule"] == "prune"
                    and (j["wildcards"]["model"], j["wildcards"]["method"], j["wildcards"]["recipe"]) not in first}
    searching = {m: p for m, p in study_prunes.items() if algorithm(m) in SEARCHING}
    assert sorted(algorithm(m) for m in searching) == sorted(SEARCHING)
    assert min(searching.values()) > max(p for m, p in study_prunes.items() if m not in searching)
    # Every job that writes a checkpoint ranks below every evaluation, and a recovery (its
    # checkpoint is kept until the last one is written) above every other prune.
    recoveries = [j["priority"] for j in jobs if j["rule"] == "recover"]
    evaluations = [j["priority"] for j in jobs if j["rule"] in ("evaluate", "evaluate_tasks", "measure_speed")
                   and (j["wildcards"]["model"], j["wildcards"]["method"], j["wildcards"]["recipe"]) not in first]
    assert max(study_prunes.values()) < min(recoveries) <= max(recoveries) < min(evaluations)


@pytest.mark.integration
def test_a_generators_converted_weights_leave_once_its_pool_is_written(tmp_path):
    """Table 8's generator (SmolLM2, converted from its GGUF) answers its pool, and its fp32 weights
    leave results/ with that job, model.json staying; the plan is then complete (nothing reruns)."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["data_dir"] = str(MIRROR)
    config["self_generation"].update(sources={"wordproblems_train": 1}, samples=1, max_new_tokens=8)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    model = tmp_path / "results/models/smollm2-135m-instruct"
    pool = "results/generations/smollm2-135m-instruct/wordproblems_train.jsonl"
    plan = {job["rule"]: job["products"] for job in planned(ROOT / "Snakefile", tmp_path, [pool], configfiles=[configfile])}
    assert f"{model.relative_to(tmp_path)}/checkpoint" in plan["prepare_transient_model"] and "prepare_model" not in plan
    done = snakemake(pool, "--cores", "1", "--configfile", str(configfile), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (model / "model.json").is_file() and not (model / "checkpoint").exists()
    assert len((tmp_path / pool).read_text().splitlines()) == 2   # its provenance and one response
    assert planned(ROOT / "Snakefile", tmp_path, [pool], configfiles=[configfile]) == []


def test_table8_calibrates_on_another_models_responses(tmp_path):
    target = "results/calibration/deepseek-r1-distill-qwen-7b/ssgr_from_qwen3.jsonl"
    result = snakemake(target, "-n", "--cores", "1", "--configfile", str(ROOT / "config" / "paper.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "results/graded/qwen3-14b/gsm8k_train.jsonl" in result.stdout
    assert "results/graded/deepseek-r1-distill-qwen-7b/" not in result.stdout


def test_dry_run_through_the_python_api(tmp_path):
    dry_run(tmp_path, ROOT / "config" / "paper.yaml", targets=("table2",))


def test_bad_config_fails_before_any_job_naming_the_key(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["evaluation"]["samples"] = -2
    config["data_dir"] = str(MIRROR)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--cores", "1", "--configfile", str(bad), cwd=tmp_path)
    assert result.returncode != 0
    assert "config.evaluation.samples" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def test_lint_is_clean(tmp_path):
    result = snakemake("--lint", cwd=ROOT)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


# ---------------------------------------------------------------- end to end


def _teach(model_dir: Path, problems: list[dict]) -> None:
    """A few seconds of training on the pool's worked solutions, so that some sampled answers are
    right and the self-generated recipes have something to select."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prunebench.datasets import DATASETS
    from prunebench.prompts import conversation

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    entry = {"system_prompt": None, "chat_template": None, "response_prefix": ""}
    instruction = DATASETS["wordproblems_train"].instruction
    texts = [conversation(tokenizer, entry, p["question"], instruction, p["solution"]) for p in problems]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for _ in range(120):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(model_dir)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    """A taught tiny model (outside every working directory) and a config over it."""
    from prunebench import datasets

    model_dir = build_tiny_model(tmp_path_factory.mktemp("e2e-model") / "tiny-model")
    pool, _ = datasets.load("wordproblems_train", None)
    _teach(model_dir, datasets.subset(pool, 6, 0, "wordproblems_train"))
    return {
        "title": "end-to-end test", "data_dir": str(MIRROR), "seed": 0,
        "models": {"tiny": {"source": {"path": str(model_dir)}, "dtype": "float32", "max_model_len": 512,
                            "batch_size": 8}},
        "self_generation": {"sources": {"wordproblems_train": 6}, "samples": 3, "max_new_tokens": 96,
                            "temperature": 1.0},
        # tau = 1: a model taught its pool problems solves them all; tau itself is unit-tested
        "calibration": {"sequences": 4, "max_length": 96, "recipes": ["c4", "mathr", "sgr", "ssgr"],
                        "recipe_definitions": {
                            "c4": {"type": "pretraining", "datasets": ["c4"], "label": "C4"},
                            "mathr": {"type": "gold", "datasets": ["gsm8k_train", "math_train"], "label": "MathR"},
                            "sgr": {"type": "sgr", "label": "SGR"}, "ssgr": {"type": "ssgr", "tau": 1.0, "label": "SSGR"},
                            "true_samples": {"type": "correctness", "correct": True, "label": "True samples"}}},
        "pruning": {"methods": ["sparsegpt-0.5", "wanda-0.5"], "router_steps": 3, "router_batch_size": 2},
        "recovery": {"generic": {"recipe": "c4", "steps": 3, "batch_size": 2}},
        "experiments": {"figure4": {"methods": ["sparsegpt-0.6", "sparsegpt-2of4"], "recipes": ["c4", "ssgr"]},
                        "table1": {"recipes": ["true_samples"]}, "table5": {"recipes": ["c4", "ssgr"]},
                        "owl": {"methods": ["wanda-0.5", "owl_wanda-0.5"], "recipes": ["ssgr"]}},
        "evaluation": {"samples": 2, "max_new_tokens": 24, "token_limits": {"gsm8k": 32},
                       "benchmarks": {"wordproblems": 4, "gsm8k": 2, "gpqa_diamond": 2}},
        "task_suite": {"tasks": {"boolq": {"category": "classification", "limit": 4},
                                 "truthfulqa_mc2": {"category": "generation", "limit": 4},
                                 "ifeval": {"category": "generation", "metric": "prompt_level_loose_acc", "limit": 2,
                                            "max_gen_toks": 16, "chat_template": True}},
                       "reasoning": ["gsm8k"], "methods": ["wanda-0.5"], "recipes": ["c4", "ssgr"]},
        "study": {"methods": ["shortgpt", "slicegpt", "skipgpt"], "ratios": [0.5], "recipes": ["c4"],
                  "speed": {"prompt_tokens": 16, "new_tokens": 4, "repeats": 1},
                  "recovery": {"methods": ["shortgpt"], "recoveries": ["generic"]}},
        "grading": {"workers": 1},
    }


def _run_report(work: Path, config: dict) -> dict:
    configfile = work / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake("report", "--cores", "2", "--configfile", str(configfile), cwd=work)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return {"work": work, "config": configfile, "result": result}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, tiny_config):
    """The whole DAG, `snakemake report`, on a tiny model, in a scratch working directory."""
    return _run_report(tmp_path_factory.mktemp("e2e"), tiny_config)


@pytest.mark.e2e
def test_e2e_builds_the_report(e2e):
    work = e2e["work"]
    html = (work / "results/report/index.html").read_text()
    tex = (work / "results/report/paper.tex").read_text()
    for n in range(1, 9):
        assert f'id="table{n}"' in html and f"Table {n}" in tex
    for n in range(1, 6):
        assert f'id="figure{n}"' in html
    assert "<svg" in html and "Table 3 is not part of this run" in html and "not yet built" not in html
    # beyond the papers: the first paper's claims as verdicts, and the thinking-budget axis
    claims = json.loads((work / "results/tables/first_findings.json").read_text())["rows"]
    assert [c["claim"] for c in claims] == list(range(1, 9)) and claims[0]["n"] > 0
    assert 'id="first_findings"' in html and 'id="budget"' in html and 'id="tokens_to_answer"' in html
    ladder = json.loads((work / "results/tables/budget.json").read_text())
    assert ladder["budgets"] == [6, 12, 18, 24] and all(r["problems"] > 0 for r in ladder["rows"])
    assert {r["benchmark"]: r["budgets"] for r in ladder["rows"]}["gsm8k"] == [8, 16, 24, 32]   # its own limit
    gsm8k = [json.loads(line) for line in (work / "results/eval/tiny/dense/none/gsm8k.jsonl").read_text().splitlines()]
    assert max(s.get("tokens", 0) for s in gsm8k) <= 32 and gsm8k[0]["_provenance"]["params"]["max_new_tokens"] == 32
    # OWL against uniform Wanda on the same recipe: the uniform row is Table 2's cell, OWL's is paired with it
    owl = json.loads((work / "results/tables/owl.json").read_text())
    assert [(r["method"], r["recipe"]) for r in owl["rows"]] == [("dense", "none"), ("wanda-0.5", "ssgr"),
                                                               ("owl_wanda-0.5", "ssgr")]
    uniform, allocated = owl["rows"][1], owl["rows"][2]
    assert uniform["layer_sparsity_min"] == uniform["layer_sparsity_max"] == 0.5
    assert allocated["layer_sparsity_min"] < 0.5 < allocated["layer_sparsity_max"]
    assert allocated["paired_problems"] > 0 and allocated["baseline"] == "wanda-0.5" and 'id="owl"' in html


@pytest.mark.e2e
def test_e2e_ablation_tables_have_their_rows(e2e):
    table1 = json.loads((e2e["work"] / "results/tables/table1.json").read_text())
    assert table1["status"] == "built"
    assert [(r["method"], r["recipe"]) for r in table1["rows"]] == [("dense", "none"), ("sparsegpt-0.5", "true_samples")]
    table2 = {(r["method"], r["recipe"]): r for r in json.loads((e2e["work"] / "results/tables/table2.json").read_text())["rows"]}
    table5 = json.loads((e2e["work"] / "results/tables/table5.json").read_text())["rows"]
    for row in table5:  # the same cells as Table 2's: the same numbers
        assert row["AVG"] == table2[(row["method"], row["recipe"])]["AVG"]
    calibration = e2e["work"] / "results/calibration/tiny/true_samples.jsonl"
    from prunebench.io import read_jsonl

    assert all(r["why"] == "first correct response" for r in read_jsonl(calibration))


@pytest.mark.e2e
def test_e2e_table2_has_every_row_with_real_numbers(e2e):
    table = json.loads((e2e["work"] / "results/tables/table2.json").read_text())
    rows = {(r["method"], r["recipe"]) for r in table["rows"]}
    assert rows == {("dense", "none")} | {(m, r) for m in ("sparsegpt-0.5", "wanda-0.5")
                                          for r in ("c4", "mathr", "sgr", "ssgr")}
    for row in table["rows"]:
        for bench in ("wordproblems", "gsm8k", "gpqa_diamond"):
            assert 0.0 <= row[bench] <= 100.0
    assert table["provenance"]["code_commit"] and table["provenance"]["versions"]["torch"]


@pytest.mark.e2e
def test_e2e_pruned_checkpoints_have_exactly_their_sparsity(e2e):
    found = set()
    pruned = e2e["work"] / "results/pruned/tiny"
    # checkpoints are not kept (pruning.keep_checkpoints), their sparsity records are
    assert not [p for p in pruned.glob("*/*") if p.is_dir()]
    for sparsity in pruned.glob("*/*.json"):
        report = json.loads(sparsity.read_text())
        found.add(report["method"])
        if report.get("family") in ("depth", "width", "dynamic"):  # the study's cells, checked apart
            continue
        if "layer_sparsity_targets" in report:   # OWL: each layer at its own sparsity, rounded down per row
            targets = report["layer_sparsity_targets"]
            assert sum(targets) / len(targets) == pytest.approx(report["sparsity_target"]), sparsity
            assert report["sparsity_target"] - 0.02 <= report["overall_sparsity"] <= report["sparsity_target"], sparsity
            assert report["provenance"]["params"] == {"true_sequential": False, "owl_lambda": 0.08, "owl_m": 5.0}
            continue
        # exact counts per 128-column block are int(numel * s): at most one weight per block short
        assert report["sparsity_target"] - 1e-3 <= report["overall_sparsity"] <= report["sparsity_target"], sparsity
        if report["sparsity_target"] == 0.5:
            assert report["overall_sparsity"] == 0.5, sparsity
        assert all(m["pattern_ok"] is not False for m in report["modules"].values()), sparsity
        params = report["provenance"]["params"]
        assert report["provenance"]["inputs"]
        if report["method"].startswith("sparsegpt"):
            assert params["mask_selection"] == "exact"
        else:  # an option is recorded only for the methods that read it (schema x-methods)
            assert params == {"true_sequential": False}, sparsity
    assert found == {"sparsegpt-0.5", "wanda-0.5", "sparsegpt-0.6", "sparsegpt-2of4", "shortgpt-0.5", "slicegpt-0.5",
                     "skipgpt-0.5", "shortgpt-0.5+generic", "owl_wanda-0.5"}


@pytest.mark.e2e
def test_e2e_figure4_compares_calibration_sets_at_each_setting(e2e):
    meta = json.loads((e2e["work"] / "results/figures/figure4.json").read_text())
    assert meta["status"] == "built" and meta["provenance"]["inputs"]
    svg = (e2e["work"] / "results/figures/figure4.svg").read_text()
    for label in ("SparseGPT 60%", "SparseGPT 2:4", "C4", "SSGR", "Dense"):
        assert label in svg


@pytest.mark.e2e
def test_e2e_self_generated_recipes_selected_responses(e2e):
    from prunebench.io import read_jsonl, read_provenance

    for recipe in ("sgr", "ssgr"):
        path = e2e["work"] / f"results/calibration/tiny/{recipe}.jsonl"
        records = read_jsonl(path)
        assert records and all(r["problem_id"].startswith("wordproblems-train") for r in records)
        assert all(r["tokens"] <= 96 and r["why"] for r in records)
        assert read_provenance(path)["params"]["recipe"] == recipe


@pytest.mark.e2e
def test_e2e_every_result_carries_provenance(e2e):
    from prunebench.io import read_provenance

    results = e2e["work"] / "results"
    for path in list(results.glob("*/tiny/**/*.jsonl")) + list(results.glob("data/*.jsonl")):
        prov = read_provenance(path)
        assert prov and "code_commit" in prov and "versions" in prov, path
    import torch

    for path in results.glob("eval/tiny/**/*.json"):
        prov = json.loads(path.read_text())["provenance"]
        assert prov["seed"] == 0 and prov["model"]["revision"] and prov["inputs"], path
        # computed with the kernels this machine picks, and saying so
        assert prov["kernels"]["aten"] == torch.backends.cpu.get_cpu_capability() and prov["kernels"]["blas"], path


@pytest.mark.e2e
def test_e2e_task_table_has_every_row(e2e):
    table = json.loads((e2e["work"] / "results/tables/lrm_tasks.json").read_text())
    assert table["status"] == "built"
    assert [(r["method"], r["recipe"]) for r in table["rows"]] == [
        ("dense", "none"), ("wanda-0.5", "c4"), ("wanda-0.5", "ssgr"), ("shortgpt-0.5", "c4"),
        ("shortgpt-0.5+generic", "c4"), ("slicegpt-0.5", "c4"), ("skipgpt-0.5", "c4")]
    findings = json.loads((e2e["work"] / "results/tables/lrm_findings.json").read_text())
    assert findings["status"] == "built" and [f["claim"] for f in findings["rows"]] == [1, 2, 3, 4, 5]
    assert all(f["verdict"] in ("holds", "reversed", "not separable at this scale", "not in this run")
               for f in findings["rows"])
    for row in table["rows"]:
        assert row["boolq"] is not None and row["gsm8k"] is not None and row["classification"] == row["boolq"]
        assert row["generation"] == pytest.approx((row["truthfulqa_mc2"] + row["ifeval"]) / 2)
    assert (e2e["work"] / "results/figures/lrm_categories.svg").exists()
    assert "tasks by category" in (e2e["work"] / "results/report/index.html").read_text()


@pytest.mark.e2e
def test_e2e_study_rows_are_measured_against_the_dense_model(e2e):
    work = e2e["work"]
    table = json.loads((work / "results/tables/lrm_speed.json").read_text())
    assert table["status"] == "built"
    assert [(r["method"], r["family"]) for r in table["rows"]] == [
        ("dense", "dense"), ("shortgpt-0.5", "depth"), ("shortgpt-0.5+generic", "depth"), ("slicegpt-0.5", "width"),
        ("skipgpt-0.5", "dynamic")]
    dense, short, recovered, sliced, routed = table["rows"]
    assert recovered["parameters"] == short["parameters"] and recovered["classification"] is not None
    assert routed["parameters"] > dense["parameters"] and 0 <= routed["skipped_when_timed"] <= 1
    assert short["skipped_when_timed"] is None
    assert short["parameters"] < dense["parameters"] and sliced["parameters"] < dense["parameters"]
    assert short["removed"] == pytest.approx(0.5) and 0 < sliced["removed"] < 1
    assert short["decode_tokens_per_second"] > 0 and short["classification"] is not None
    assert short["parameters_vs_dense"] == pytest.approx(short["parameters"] / dense["parameters"])
    speed_page = (work / "results/report/speed.html").read_text()
    assert "ShortGPT 50%" in speed_page and "SliceGPT 50%" in speed_page and "ShortGPT 50% + generic" in speed_page
    assert "SkipGPT 50%" in speed_page
    recovered_record = json.loads((work / "results/pruned/tiny/shortgpt-0.5+generic/c4.json").read_text())
    assert recovered_record["recovery"]["training"]["steps"] == 3
    assert 'href="speed.html"' in (work / "results/report/index.html").read_text()
    files = {f["path"] for f in json.loads((work / "results/manifest.json").read_text())["files"]}
    assert not any(p.startswith("results/speed/") or p.endswith(("lrm_speed.csv", "speed.html")) for p in files)
    # the structured checkpoints were removed after their evaluation, speed and task jobs; records stay
    assert not (work / "results/pruned/tiny/shortgpt-0.5/c4").exists()
    assert json.loads((work / "results/pruned/tiny/slicegpt-0.5/c4.json").read_text())["family"] == "width"


@pytest.mark.e2e
def test_e2e_gpqa_and_truthfulqa_questions_stay_out_of_results(e2e):
    import zipfile

    from prunebench import datasets
    from prunebench.lmeval.tasks.mirror import TRUTHFULQA_PASSWORD

    rows, _ = datasets.fetch_raw(datasets.get("gpqa_diamond"), MIRROR)
    questions = [str(r["Question"])[:80] for r in rows]
    with zipfile.ZipFile(MIRROR / "truthfulqa/truthfulqa.zip") as archive:
        tqa = json.loads(archive.open("data/mc_task.json", pwd=TRUTHFULQA_PASSWORD).read())
    questions += [r["question"].strip()[:80] for r in tqa if len(r["question"].strip()) > 20]
    for path in (e2e["work"] / "results").rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".json", ".html", ".tex", ".csv", ".log"):
            text = path.read_text(errors="replace")
            assert not any(q in text for q in questions), path


@pytest.mark.e2e
def test_e2e_verify_reruns_jobs_and_finds_them_identical(e2e):
    """The default slice (the SSGR calibration set, the Wanda/SSGR checkpoint's record, which holds
    every weight's sha256) rerun on CPU is the recorded result, byte for byte; the checkpoint itself
    was not kept for it, and the rerun wrote none of its files (log, measurements) over the run's."""
    from prunebench.provenance import sha256_file

    work = e2e["work"]
    rows = {r["target"]: r for r in json.loads((work / "results/verify/reproducibility.json").read_text())["rows"]}
    assert rows["results/calibration/tiny/ssgr.jsonl"]["status"] == "identical"
    pruned = rows["results/pruned/tiny/wanda-0.5/ssgr.json"]
    assert pruned["rule"] == "prune" and pruned["status"] == "identical" and pruned["files"] == 1
    weights = json.loads((work / "results/pruned/tiny/wanda-0.5/ssgr.json").read_text())["weights_sha256"]
    assert any(name.endswith("mlp.up_proj.weight") for name in weights) and "config.json" in weights
    assert not (work / "results/pruned/tiny/wanda-0.5/ssgr").exists()
    # written by the recorded job, not seconds later by verify's (planning a rerun alone takes longer)
    made = (work / "results/pruned/tiny/wanda-0.5/ssgr.json").stat().st_mtime
    for recorded in ("results/logs/prune/tiny/wanda-0.5/ssgr.log", "results/measurements/prune/tiny/wanda-0.5/ssgr.json"):
        assert (work / recorded).stat().st_mtime < made + 3, recorded
    html = (work / "results/report/index.html").read_text()
    assert html.split('id="reproducibility"', 1)[1].count("identical") >= 2
    files = {f["path"]: f for f in json.loads((work / "results/manifest.json").read_text())["files"]}
    record = "results/pruned/tiny/wanda-0.5/ssgr.json"
    assert files[record]["sha256"] == sha256_file(work / record) and files[record]["code_commit"]
    assert "results/report/index.html" in files and not any(p.startswith("results/logs/") for p in files)
    assert not any(p.startswith(("results/measurements/", "results/verify/")) for p in files)
    assert not (work / "results/verify/scratch/1").exists()  # a matching rerun is not kept


@pytest.mark.e2e
def test_e2e_the_same_run_in_another_clone_writes_the_same_manifest(e2e, tiny_config, tmp_path_factory):
    """Timing and machine paths stay out of what results hash: the same inputs in a second
    working directory give a manifest equal byte for byte."""
    other = _run_report(tmp_path_factory.mktemp("e2e-elsewhere"), tiny_config)
    ours, theirs = ((run["work"] / "results/manifest.json").read_bytes() for run in (e2e, other))
    if ours != theirs:
        a = {f["path"]: f for f in json.loads(ours)["files"]}
        b = {f["path"]: f for f in json.loads(theirs)["files"]}
        differing = sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))
        pytest.fail(f"{len(differing)} entries differ: {differing[:10]}")
    # and `prunebench reproduce` against a reference record of the first run says so, output by output
    from prunebench import reference

    result = reference.compare(reference.record(e2e["work"]), other["work"])
    assert set(result["files"].values()) == {reference.IDENTICAL} and not reference.failures(result)
    assert {v["output"] for v in result["outputs"]} == set(OUTPUTS) - {"lrm_speed", "lrm_tradeoff"}
    assert {v["verdict"] for v in result["outputs"]} == {reference.IDENTICAL}
    # named in the config, the record makes the workflow compare and the report say so
    record = other["work"] / "reference.json"
    reference.write(e2e["work"], record)
    done = snakemake("report", "--cores", "2", "--configfile", str(other["config"]),
                     "--config", f"reference={record}", cwd=other["work"])
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert "reproduce" in done.stdout + done.stderr and "table2: identical" in done.stdout + done.stderr
    html = (other["work"] / "results/report/index.html").read_text().split('id="reproduction"', 1)[1]
    assert "This run reproduced" in html and html.count("<td class=\"label\">identical</td>") == len(result["outputs"])
    assert "Against the reference record" in (other["work"] / "results/report/paper.tex").read_text()


@pytest.mark.e2e
def test_e2e_second_run_is_a_no_op(e2e):
    result = snakemake("report", "--cores", "2", "--configfile", str(e2e["config"]), cwd=e2e["work"])
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.e2e
def test_e2e_a_new_recipe_reruns_only_its_own_jobs(e2e, tmp_path):
    """Adding a recipe (and the table that uses it) to a finished run plans its calibration set,
    its prune and its evaluation, and the report; no pool, no other calibration set."""
    config = yaml.safe_load(e2e["config"].read_text())
    config["calibration"]["recipe_definitions"]["easy"] = {"type": "difficulty", "band": "easy"}
    config["experiments"]["table4"] = {"recipes": ["easy"]}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    counts = planned_jobs(ROOT / "Snakefile", e2e["work"], ["report"], configfiles=[configfile])
    assert (counts.get("calibrate"), counts.get("prune"), counts.get("evaluate")) == (1, 1, 1), counts
    assert "generate" not in counts and "grade" not in counts, counts


@pytest.mark.e2e
def test_e2e_snakemakes_own_report_has_captioned_tables_and_figures(e2e):
    out = e2e["work"] / "snakemake-report.html"
    result = snakemake("--report", str(out), "--configfile", str(e2e["config"]), cwd=e2e["work"])
    assert result.returncode == 0, result.stderr[-3000:]
    html = out.read_text()
    assert "rebuilt by prunebench" in html and "redrawn by prunebench" in html
    for name in ("table2.csv", "figure1.svg", "figure5.svg"):
        assert name in html


@pytest.mark.e2e
def test_e2e_adaptive_sampling_gives_the_fixed_n_selection(e2e, tmp_path):
    """The taught model solves most of its pool every time: adaptive sampling at tau 1/3 stops early
    on those problems and draws a subset of the fixed-n samples with identical text. SGR (first
    correct response) picks the same; SSGR's equality on mixed pools is tests/test_adaptive.py's."""
    from prunebench.io import read_jsonl, read_provenance

    work, env = e2e["work"], dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", HF_HUB_OFFLINE="1")
    model, data = "results/models/tiny/model.json", "results/data/wordproblems_train.jsonl"

    def run(*args):
        result = subprocess.run([str(BIN / "prunebench"), *args], cwd=work, env=env, capture_output=True, text=True,
                                timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]

    common = ["--model", model, "--dataset", "wordproblems_train", "--data", data, "--count", "6", "--samples", "6",
              "--temperature", "1.0", "--max-new-tokens", "96", "--batch-size", "8", "--seed", "0"]
    sets = {}
    for name, extra in (("fixed", []), ("adaptive", ["--adaptive-tau", "0.34", "--workers", "1"])):
        run("generate", *common, *extra, "--out", str(tmp_path / f"{name}.jsonl"))
        run("grade", "--model", model, "--dataset", "wordproblems_train", "--data", data, "--workers", "1",
            "--generations", str(tmp_path / f"{name}.jsonl"), "--out", str(tmp_path / f"{name}.graded.jsonl"))
        run("calibrate", "--model", model, "--recipe", "sgr", "--spec", '{"type": "sgr"}',
            "--sequences", "6", "--max-length", "160", "--data", f"wordproblems_train={data}",
            "--graded", f"wordproblems_train={tmp_path / name}.graded.jsonl",
            "--out", str(tmp_path / f"{name}.sgr.jsonl"))
        sets[name] = [(r["problem_id"], r["sample"], r["input_ids"]) for r in read_jsonl(tmp_path / f"{name}.sgr.jsonl")]
    fixed = {(r["id"], r["sample"]): r["text"] for r in read_jsonl(tmp_path / "fixed.jsonl")}
    adaptive = {(r["id"], r["sample"]): r["text"] for r in read_jsonl(tmp_path / "adaptive.jsonl")}
    assert all(fixed[key] == text for key, text in adaptive.items())
    saved = read_provenance(tmp_path / "adaptive.jsonl")["params"]["adaptive"]
    assert saved["samples_generated"] == len(adaptive) and saved["samples_skipped"] == len(fixed) - len(adaptive)
    assert saved["samples_skipped"] > 0, "the taught model should settle some problems early"
    assert sets["adaptive"] == sets["fixed"] and sets["fixed"]


def test_nested_config_overrides_are_read_by_the_schema(tmp_path):
    result = snakemake("table2", "-n", "-p", "--cores", "1", "--config", f"data_dir={MIRROR}",
                       "evaluation={samples: 3, max_new_tokens: 64}", cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "--samples 3 " in result.stdout and "--max-new-tokens 64 " in result.stdout
