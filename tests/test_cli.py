"""The command line as a new user and an adversary meet it: outputs that would destroy data are
refused before any work (and nothing is written or removed), bad inputs fail with one line naming
the file, and the orchestration around each command (defaults, flags, checks) is the schema's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunebench import cli
from prunebench.io import OUTPUT_MARK, write_jsonl

from .conftest import build_tiny_model


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: what a refusal must leave exactly as it was."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line(err: str) -> bool:
    """One error line and no traceback (progress bars of the libraries aside)."""
    return "Traceback" not in err and sum(line.startswith("prunebench ") for line in err.splitlines()) == 1 \
        and err.rstrip().splitlines()[-1].startswith("prunebench ")


def run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture
def workdir(tmp_path, tiny_model, monkeypatch):
    """A working directory holding a user's files, a model and a calibration set."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.csv").write_text("a,b\n1,2\n")
    write_jsonl(tmp_path / "cal.jsonl", [{"input_ids": list(range(1, 40))}, {"text": "The answer is 42."}])
    return tmp_path


def prune_args(model, out, calibration="cal.jsonl", method="wanda-0.5", *extra):
    return ["prune", "--model", str(model), "--calibration", calibration, "--method", method, "--out", str(out),
            *extra]


@pytest.mark.parametrize("out", [".", "..", "./", "data/.."])
def test_prune_refuses_the_working_directory_and_its_parents(workdir, tiny_model, capsys, out):
    before = snapshot(workdir)
    code, err = run(capsys, *prune_args(tiny_model, out))
    assert code == 2 and "is the working directory or one of its parents" in err and one_line(err)
    assert snapshot(workdir) == before


def test_prune_refuses_the_model_directory(workdir, tiny_model, capsys):
    before = snapshot(tiny_model)
    code, err = run(capsys, *prune_args(tiny_model, tiny_model))
    assert code == 2 and f"overlaps the input {tiny_model}" in err
    assert snapshot(tiny_model) == before
    code, err = run(capsys, *prune_args(tiny_model, tiny_model.parent))  # a directory holding the input
    assert code == 2 and "overlaps the input" in err
    assert snapshot(tiny_model) == before


def test_prune_refuses_a_folder_another_program_wrote(workdir, tiny_model, capsys):
    before = snapshot(workdir)
    code, err = run(capsys, *prune_args(tiny_model, "data"))
    assert code == 2 and "output data: is not empty and is not an earlier output of `prunebench prune`" in err
    assert snapshot(workdir) == before
    code, err = run(capsys, *prune_args(tiny_model, "notes.txt"))
    assert code == 2 and "exists and is not a directory" in err
    assert snapshot(workdir) == before


def test_prune_replaces_its_own_earlier_output(workdir, tiny_model, capsys):
    code, err = run(capsys, *prune_args(tiny_model, "pruned"))
    assert code == 0, err
    assert (workdir / "pruned" / OUTPUT_MARK).read_text().strip() == "prune"
    (workdir / "pruned" / "stale.bin").write_text("left by the first run")
    code, err = run(capsys, *prune_args(tiny_model, "pruned", "cal.jsonl", "magnitude-0.5"))
    assert code == 0, err
    assert not (workdir / "pruned" / "stale.bin").exists()
    assert json.loads((workdir / "pruned" / "sparsity.json").read_text())["method"] == "magnitude-0.5"
    assert (workdir / "notes.txt").read_text() == "my notes"


def test_prune_records_no_timing_and_no_machine_path(workdir, tiny_model, capsys):
    code, err = run(capsys, *prune_args(tiny_model, "pruned", "cal.jsonl", "sparsegpt-0.5", "--record", "record.json",
                                        "--measurements", "measured.json"))
    assert code == 0, err
    record = json.loads((workdir / "record.json").read_text())
    assert record == json.loads((workdir / "pruned" / "sparsity.json").read_text())
    text = json.dumps(record)
    assert "wall_seconds" not in text and "peak_memory" not in text and str(workdir) not in text
    assert record["provenance"]["inputs"].keys() == {"cal.jsonl", str(tiny_model)}
    measured = json.loads((workdir / "measured.json").read_text())
    assert measured["wall_seconds"] > 0 and measured["peak_memory_bytes"] > 0
    # the weights as the checkpoint holds them, for verify once the checkpoint is gone
    from prunebench.provenance import checkpoint_digest

    assert record["weights_sha256"] == checkpoint_digest(workdir / "pruned", leave_out=["sparsity.json"])
    assert any(name.startswith("model.safetensors:") for name in record["weights_sha256"])


def test_an_output_file_that_is_an_input_is_refused(workdir, tiny_model, capsys):
    before = snapshot(workdir)
    code, err = run(capsys, "grade", "--model", str(tiny_model), "--dataset", "wordproblems_train",
                    "--data", "cal.jsonl", "--generations", "cal.jsonl", "--out", "cal.jsonl")
    assert code == 2 and "output cal.jsonl: is also an input" in err
    assert snapshot(workdir) == before


@pytest.mark.parametrize("command", [
    ["speed", "--out", "{model}/model.safetensors"],
    ["prune", "--calibration", "cal.jsonl", "--method", "wanda-0.5", "--out", "pruned", "--record", "{model}/config.json"],
    ["prune", "--calibration", "cal.jsonl", "--method", "wanda-0.5", "--out", "pruned", "--measurements",
     "{model}/new.json"],
    ["data", "--dataset", "gsm8k_test", "--data-dir", "data", "--out", "data/keep.csv"],
    ["data", "--dataset", "gsm8k_test", "--data-dir", "data", "--out", "data/new/gsm8k.jsonl"],
])
def test_an_output_file_inside_an_input_directory_is_refused(workdir, tiny_model, capsys, command):
    """A model's folder or the data mirror is never written into: the output is refused before any
    work, with one line naming it, and both folders are left as they were."""
    copy = build_tiny_model(workdir / "model")
    argv = [part.replace("{model}", str(copy)) for part in command]
    if argv[0] != "data":
        argv[1:1] = ["--model", str(copy)]
    before = snapshot(workdir)
    code, err = run(capsys, *argv)
    assert code == 2 and ("lies inside the input" in err or "is also an input" in err), err
    assert one_line(err) and snapshot(workdir) == before


def test_evaluate_refuses_a_foreign_output_directory(workdir, tiny_model, capsys):
    before = snapshot(workdir)
    code, err = run(capsys, "evaluate", "--model", str(tiny_model), "--data", "wordproblems=cal.jsonl",
                    "--out-dir", "data")
    assert code == 2 and "not an earlier output of `prunebench evaluate`" in err
    assert snapshot(workdir) == before


def test_prepare_model_refuses_its_own_source(workdir, tiny_model, capsys):
    before = snapshot(tiny_model)
    entry = json.dumps({"source": {"path": str(tiny_model)}, "dtype": "float32"})
    code, err = run(capsys, "prepare-model", "--name", "tiny", "--entry", entry, "--out", str(tiny_model))
    assert code == 2 and "overlaps the input" in err
    assert snapshot(tiny_model) == before


def test_verify_refuses_a_scratch_directory_it_did_not_make(workdir, capsys):
    before = snapshot(workdir)
    code, err = run(capsys, "verify", "--target", "notes.txt", "--snakefile", "Snakefile", "--config-json", "{}",
                    "--scratch", ".")
    assert code == 2 and "working directory" in err
    assert snapshot(workdir) == before


def test_calibration_refuses_a_sealed_dataset(workdir, tiny_model, capsys):
    before = snapshot(workdir)
    code, err = run(capsys, "calibrate", "--model", str(tiny_model), "--recipe", "x",
                    "--spec", '{"type": "gold", "datasets": ["gpqa_diamond"]}', "--data", "gpqa_diamond=cal.jsonl",
                    "--out", "out.jsonl")
    assert code == 2 and "gpqa_diamond: sealed" in err
    assert snapshot(workdir) == before


def test_calibration_refuses_a_recipe_with_unknown_keys(workdir, tiny_model, capsys):
    code, err = run(capsys, "calibrate", "--model", str(tiny_model), "--recipe", "x",
                    "--spec", '{"type": "ssgr", "tua": 0.5}', "--out", "out.jsonl")
    assert code == 2 and "'tua' was unexpected" in err and not (workdir / "out.jsonl").exists()


# ---------------------------------------------------------------- what prune reads

@pytest.mark.parametrize("record,message", [
    ({"input_ids": [1, True, 3]}, "input_ids must be a non-empty list of token ids"),
    ({"input_ids": [1, 2.0]}, "input_ids must be a non-empty list of token ids"),
    ({"input_ids": [1, 100_000]}, "token id 100000 is outside the model's embedding"),
    ({"input_ids": list(range(1, 300)) * 4}, "1196 tokens, more than the model's 1024 positions"),
    ({"text": ""}, "needs 'input_ids' or a non-empty 'text'"),
])
def test_prune_refuses_bad_calibration_by_line(workdir, tiny_model, capsys, record, message):
    write_jsonl(workdir / "bad.jsonl", [{"input_ids": [1, 2, 3]}, record])
    code, err = run(capsys, *prune_args(tiny_model, "pruned", "bad.jsonl"))
    assert code == 2 and "bad.jsonl: sequence 2: " + message in err, err
    assert not (workdir / "pruned").exists()


def test_token_ids_the_embedding_holds_beyond_the_tokenizer_are_accepted(tmp_path, capsys, monkeypatch):
    model = build_tiny_model(tmp_path / "padded")
    config = json.loads((model / "config.json").read_text())
    from transformers import AutoTokenizer

    vocabulary = len(AutoTokenizer.from_pretrained(model))
    assert config["vocab_size"] == vocabulary
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(model)
    loaded.resize_token_embeddings(vocabulary + 64)  # as Qwen's embedding has rows no token uses
    loaded.save_pretrained(model)
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "cal.jsonl", [{"input_ids": [1, vocabulary + 10, 3]}])
    code, err = run(capsys, *prune_args(model, "pruned"))
    assert code == 0, err


def test_a_truncated_checkpoint_fails_with_one_line(tmp_path, capsys, monkeypatch):
    model = build_tiny_model(tmp_path / "broken")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "cal.jsonl", [{"input_ids": [1, 2, 3]}])
    code, err = run(capsys, *prune_args(model, "pruned"))
    assert code == 2 and str(model) in err and "cannot load the model" in err and one_line(err), err
    assert not (tmp_path / "pruned").exists()


@pytest.mark.parametrize("content", ["", "{}", "[]", '{"name": "x"}'])
def test_a_broken_model_json_fails_with_one_line(workdir, capsys, content):
    (workdir / "model.json").write_text(content)
    code, err = run(capsys, *prune_args("model.json", "pruned"))
    assert code == 2 and "model.json" in err and one_line(err), err


RECOVERY = json.dumps({"recipe": "c4", "steps": 4, "batch_size": 1, "learning_rate": 0.01, "held_out": 0.0,
                       "checkpoint_every": 2})


def test_recover_fine_tunes_a_pruned_checkpoint_into_the_next_column(workdir, tiny_model, capsys):
    code, err = run(capsys, *prune_args(tiny_model, "pruned", "cal.jsonl", "shortgpt-0.5"))
    assert code == 0, err
    code, err = run(capsys, "recover", "--model", "pruned", "--data", "cal.jsonl", "--recovery", "generic",
                    "--settings-json", RECOVERY, "--out", "recovered", "--record", "recovered.json",
                    "--measurements", "measured.json")
    assert code == 0, err
    record = json.loads((workdir / "recovered" / "sparsity.json").read_text())
    assert record == json.loads((workdir / "recovered.json").read_text())
    assert record["method"] == "shortgpt-0.5+generic" and len(record["removed_blocks"]) == 1   # the pruned record's
    assert record["recovery"]["training"]["steps"] == 4 and record["recovery"]["recipe"] == "c4"
    assert record["provenance"]["params"]["recovery"]["lora_rank"] == 16   # defaults filled
    pruned = json.loads((workdir / "pruned" / "sparsity.json").read_text())
    assert record["weights_sha256"] != pruned["weights_sha256"]   # the recovered weights', not the pruned ones'
    assert "adapter/adapter_model.safetensors:" in " ".join(record["weights_sha256"])
    adapter = json.loads((workdir / "recovered" / "adapter" / "adapter_config.json").read_text())
    # peft writes target_modules from a set (order by hash seed): sorted, the checkpoint hashes the same
    assert adapter["target_modules"] == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                "down_proj"])
    assert not (workdir / "recovered.parts").exists()
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(workdir / "recovered")
    assert reloaded.config.num_hidden_layers == 1


def test_recover_refuses_a_model_that_is_not_pruned_and_bad_settings(workdir, tiny_model, capsys):
    before = snapshot(workdir)
    code, err = run(capsys, "recover", "--model", str(tiny_model), "--data", "cal.jsonl", "--recovery", "aligned",
                    "--settings-json", RECOVERY, "--out", "recovered")
    assert code == 2 and "recovery starts from a pruned checkpoint" in err and one_line(err)
    code, err = run(capsys, "recover", "--model", str(tiny_model), "--data", "cal.jsonl", "--recovery", "aligned",
                    "--settings-json", json.dumps({"recipe": "c4", "steps": 0}), "--out", "recovered")
    assert code == 2 and "--settings-json: aligned.steps" in err
    assert snapshot(workdir) == before


# ---------------------------------------------------------------- orchestration

def test_cli_defaults_and_pruning_flags_are_the_schemas(capsys):
    from prunebench.config import pruning_defaults, schema_default

    parser = cli.build_parser()
    prune = parser.parse_args(["prune", "--model", "m", "--calibration", "c", "--method", "wanda-0.5", "--out", "o"])
    for name, default in pruning_defaults().items():
        assert getattr(prune, name) == default, name
    custom = parser.parse_args(["prune", "--model", "m", "--calibration", "c", "--method", "wanda-0.5", "--out", "o",
                                "--blocksize", "64", "--true-sequential", "--mask-selection", "reference"])
    assert (custom.blocksize, custom.true_sequential, custom.mask_selection) == (64, True, "reference")
    evaluate = parser.parse_args(["evaluate", "--model", "m", "--data", "x=y", "--out-dir", "o"])
    generate = parser.parse_args(["generate", "--model", "m", "--dataset", "d", "--data", "x", "--out", "o"])
    assert evaluate.samples == schema_default("evaluation", "samples")
    assert generate.samples == schema_default("self_generation", "samples")
    assert evaluate.timeout == schema_default("grading", "timeout_seconds")
    assert evaluate.batch_size == schema_default("models", "*", "batch_size")


def test_sparsity_and_pattern_flags_name_the_method(workdir, tiny_model, capsys):
    code, err = run(capsys, *prune_args(tiny_model, "a", "cal.jsonl", "magnitude", "--sparsity", "0.00001"))
    assert code == 0, err
    assert json.loads((workdir / "a" / "sparsity.json").read_text())["method"] == "magnitude-0.00001"
    code, err = run(capsys, *prune_args(tiny_model, "b", "cal.jsonl", "magnitude", "--pattern", "2of4"))
    assert code == 2 and "--pattern '2of4': expected N:M" in err


def test_prune_works_on_gpt2_and_opt(tmp_path):
    """The README's claim: any decoder-only model that transformers loads, learned positions included."""
    import torch

    from prunebench.pruning import parse_method, prune_model
    from transformers import AutoConfig, AutoModelForCausalLM

    for arch, layers, extra in (("gpt2", "transformer.h", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64}),
                                ("opt", "model.decoder.layers", {"hidden_size": 32, "num_hidden_layers": 2,
                                                                 "num_attention_heads": 4, "ffn_dim": 64,
                                                                 "word_embed_proj_dim": 32,
                                                                 "max_position_embeddings": 64})):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(arch, vocab_size=100, **extra)).eval()
        calibration = [torch.randint(0, 100, (n,)) for n in (20, 33)]
        before = model(torch.randint(0, 100, (1, 10))).logits
        report = prune_model(model, calibration, parse_method("sparsegpt-0.5"), layers_path=layers, log=lambda *a: None)
        assert report["overall_sparsity"] == pytest.approx(0.5, abs=0.01), arch
        assert len(report["modules"]) >= 8, arch
        assert model(torch.randint(0, 100, (1, 10))).logits.shape == before.shape


def test_stale_temporaries_are_removed_and_never_listed(tmp_path, monkeypatch):
    from prunebench.io import write_json
    from prunebench.verify import manifest

    monkeypatch.chdir(tmp_path)
    target = tmp_path / "results" / "calibration" / "m" / "ssgr.jsonl"
    target.parent.mkdir(parents=True)
    stale = target.parent / ".ssgr.jsonl.k1ll3d.tmp"
    stale.write_text("half a calibration set")
    assert manifest(".", "results/manifest.json") == 0  # a temporary is never a result
    write_json(target, {"a": 1})
    assert not stale.exists() and target.exists()
    assert manifest(".", "results/manifest.json") == 1


def test_the_manifest_skips_what_describes_the_machine(tmp_path, monkeypatch):
    from prunebench import paths
    from prunebench.io import write_json
    from prunebench.verify import manifest

    monkeypatch.chdir(tmp_path)
    write_json(paths.measurements("prune", "m", "wanda-0.5", "c4"), {"wall_seconds": 1.0})
    write_json(paths.sparsity_record("m", "wanda-0.5", "c4"), {"overall_sparsity": 0.5})
    (tmp_path / "results" / "logs").mkdir()
    (tmp_path / "results" / "logs" / "x.log").write_text("log")
    manifest(".", paths.MANIFEST)
    listed = [f["path"] for f in json.loads(Path(paths.MANIFEST).read_text())["files"]]
    assert listed == [paths.sparsity_record("m", "wanda-0.5", "c4")]


def test_a_killed_calibration_leaves_nothing_listed(tmp_path, monkeypatch):
    """A temporary that a SIGKILLed writer left is not a result: verify's mirror skips it too."""
    from prunebench.verify import mirror

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results" / "calibration" / "m"
    folder.mkdir(parents=True)
    (folder / "c4.jsonl").write_text("{}\n")
    (folder / ".ssgr.jsonl.abc.tmp").write_text("half")
    mirror(tmp_path, tmp_path / "scratch", "results/calibration/m/ssgr.jsonl")
    linked = sorted(p.name for p in (tmp_path / "scratch" / "results" / "calibration" / "m").iterdir())
    assert linked == ["c4.jsonl"]


def test_errors_of_jobs_are_one_line(workdir, tiny_model, capsys):
    code, err = run(capsys, *prune_args(tiny_model, "pruned", "cal.jsonl", "wanda-0.5", "--layers", "model.blocks"))
    assert code == 2 and "layers_path 'model.blocks'" in err and one_line(err), err


def test_an_empty_calibration_set_leaves_its_cell_unpruned_and_says_why(workdir, tiny_model, capsys):
    """A generator that solved nothing gives SSGR nothing: the set is written empty, pruning and
    evaluation pass the reason on, and the table shows the row without numbers, with the reason."""
    from prunebench import paths
    from prunebench.config import validate
    from prunebench.io import read_json, write_json
    from prunebench.tables import assemble

    write_jsonl(workdir / "pool.jsonl", [{"id": "p1", "question": "1+1?", "answer": "2"}])
    write_jsonl(workdir / "graded.jsonl", [{"id": "p1", "sample": s, "text": "no idea", "tokens": 2, "finish": "stop",
                                            "correct": False, "verdict": "no_answer", "filters": ["no_answer"]}
                                           for s in range(4)])
    code, err = run(capsys, "calibrate", "--model", str(tiny_model), "--recipe", "ssgr", "--spec", '{"type": "ssgr"}',
                    "--data", "wordproblems_train=pool.jsonl", "--graded", "wordproblems_train=graded.jsonl",
                    "--out", "empty.jsonl")
    assert code == 0, err
    from prunebench.io import read_jsonl, read_provenance

    assert read_jsonl(workdir / "empty.jsonl") == [] and read_provenance(workdir / "empty.jsonl")["params"]["selected"] == 0
    code, err = run(capsys, *prune_args(tiny_model, "cell", "empty.jsonl", "sparsegpt-0.5", "--record", "cell.json"))
    assert code == 0, err
    record = read_json(workdir / "cell.json")
    assert "selected no sequences" in record["skipped"] and not (workdir / "cell" / "model.safetensors").exists()
    write_jsonl(workdir / "bench.jsonl", [{"id": "q1", "question": "2+2?", "answer": "4"}])
    code, err = run(capsys, "evaluate", "--model", "cell", "--data", "wordproblems=bench.jsonl", "--out-dir",
                    "results/eval/m/sparsegpt-0.5/ssgr")
    assert code == 0, err
    metrics = read_json(workdir / "results/eval/m/sparsegpt-0.5/ssgr/wordproblems.json")
    assert metrics["pass@1"] is None and "selected no sequences" in metrics["skipped"]
    config = validate({"models": {"m": {"source": {"path": "/x"}}}, "calibration": {"recipes": ["ssgr"]},
                       "pruning": {"methods": ["sparsegpt-0.5"]}, "evaluation": {"benchmarks": {"wordproblems": 1}}})
    write_json(paths.eval_metrics("m", "dense", "none", "wordproblems"), {"pass@1": 50.0, "stderr": None,
                                                                         "mean_tokens": 9.0})
    frame = assemble(config, 2)
    row = frame[frame.recipe == "ssgr"].iloc[0]
    assert row["AVG"] != row["AVG"] and "selected no sequences" in row["note"]  # NaN, with the reason
    assert frame[frame.method == "dense"].iloc[0]["note"] == ""


@pytest.fixture(scope="module")
def foreign_models(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Models the structured methods cannot rewrite: GPT-2 and OPT layouts, and a one-block model."""
    root = tmp_path_factory.mktemp("foreign")
    return {"gpt2": (build_tiny_model(root / "gpt2", arch="gpt2"), "transformer.h"),
            "opt": (build_tiny_model(root / "opt", arch="opt"), "model.decoder.layers"),
            "one block": (build_tiny_model(root / "one", layers=1), "model.layers")}


@pytest.mark.parametrize("model, method, message", [
    ("gpt2", "slicegpt-0.2", "needs Llama-family decoder layers"),
    ("opt", "slicegpt-0.2", "needs Llama-family decoder layers"),
    ("gpt2", "llm_pruner-0.2", "needs Llama-family decoder layers"),
    ("opt", "llm_pruner-0.2", "needs Llama-family decoder layers"),
    ("opt", "skipgpt-0.2", "needs Llama-family decoder layers"),
    ("one block", "shortgpt-0.5", "keeps at least one; this model has 1"),
    ("one block", "sleb-0.5", "keeps at least one; this model has 1"),
])
def test_a_model_a_method_cannot_prune_is_refused_before_it_loads(workdir, foreign_models, capsys, model, method,
                                                                  message, monkeypatch):
    import prunebench.models

    def no_loading(*_args, **_kwargs):
        raise AssertionError("the model's weights were loaded before the refusal")

    monkeypatch.setattr(prunebench.models, "load_model", no_loading)
    path, layers = foreign_models[model]
    before = snapshot(workdir)
    code, err = run(capsys, *prune_args(path, "pruned", method=method), "--layers", layers)
    assert code == 2 and message in err and one_line(err), err
    assert snapshot(workdir) == before and not (workdir / "pruned.parts").exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--router-steps", "0", "--router-steps: 0 is less than the minimum of 1"),
    ("--router-steps", "-3", "--router-steps: -3 is less than the minimum of 1"),
    ("--router-learning-rate", "-1", "--router-learning-rate: -1.0 is less than or equal to the minimum of 0"),
    ("--router-penalty", "nan", "--router-penalty: nan is not a finite number"),
    ("--router-temperature", "0", "--router-temperature: 0.0 is less than or equal to the minimum of 0"),
])
def test_router_settings_outside_their_range_are_refused(workdir, tiny_model, capsys, flag, value, message):
    before = snapshot(workdir)
    code, err = run(capsys, *prune_args(tiny_model, "pruned", method="skipgpt-0.2"), flag, value)
    assert code == 2 and message in err and one_line(err), err
    assert snapshot(workdir) == before


def test_a_missing_input_file_is_named_before_any_work(workdir, tiny_model, capsys):
    before = snapshot(workdir)
    code, err = run(capsys, *prune_args(tiny_model, "pruned", calibration="nowhere.jsonl"))
    assert code == 2 and "--calibration nowhere.jsonl: no such file or directory" in err and one_line(err)
    code, err = run(capsys, "recover", "--model", str(tiny_model), "--data", "nowhere.jsonl", "--recovery", "aligned",
                    "--settings-json", RECOVERY, "--out", "recovered")
    assert code == 2 and "--data nowhere.jsonl: no such file or directory" in err and one_line(err)
    assert snapshot(workdir) == before


def test_graded_samples_missing_a_field_are_refused_by_line(workdir, tiny_model, capsys):
    write_jsonl(workdir / "graded.jsonl", [{"id": "p1", "sample": 0, "text": "x", "correct": True, "filters": []},
                                           {"id": "p1", "text": "y", "correct": False, "filters": []}])
    write_jsonl(workdir / "problems.jsonl", [{"id": "p1", "question": "1+1?", "answer": "2"}])
    before = snapshot(workdir)
    code, err = run(capsys, "calibrate", "--model", str(tiny_model), "--recipe", "sgr", "--spec", '{"type": "sgr"}',
                    "--data", "wordproblems_train=problems.jsonl", "--graded", "wordproblems_train=graded.jsonl",
                    "--out", "sgr.jsonl")
    assert code == 2 and "graded.jsonl:2: missing field(s) 'sample'" in err and one_line(err), err
    assert snapshot(workdir) == before


def test_a_refusal_after_the_model_loads_leaves_no_resume_folder(workdir, tiny_model, capsys):
    """Refusals that need the weights (a calibration too short for a depth pass, a LoRA target the
    model lacks) come after the resume folder is made: it is removed with the refusal."""
    write_jsonl(workdir / "short.jsonl", [{"input_ids": [5]}])
    before = snapshot(workdir)
    code, err = run(capsys, *prune_args(tiny_model, "pruned", calibration="short.jsonl", method="shortgpt-0.5"))
    assert code == 2 and "at least 2 tokens" in err and one_line(err), err
    assert snapshot(workdir) == before and not (workdir / "pruned.parts").exists()
    code, err = run(capsys, *prune_args(tiny_model, "pruned", method="shortgpt-0.5"))
    assert code == 0, err
    before = snapshot(workdir)
    settings = json.loads(RECOVERY)
    settings["targets"] = ["no_such_proj"]
    code, err = run(capsys, "recover", "--model", "pruned", "--data", "cal.jsonl", "--recovery", "aligned",
                    "--settings-json", json.dumps(settings), "--out", "recovered")
    assert code == 2 and "no_such_proj" in err and one_line(err), err
    assert snapshot(workdir) == before and not (workdir / "recovered.parts").exists()


def test_evaluate_gives_a_benchmark_its_own_token_limit(workdir, tiny_model, capsys):
    """--token-limit gsm8k=12 beside --max-new-tokens 4: GSM8K's responses run to 12 tokens, the other
    benchmark's to 4 (the tiny model rarely ends a turn), and each benchmark's provenance says its own
    limit; a limit for a benchmark the run does not evaluate is refused before any work."""
    from prunebench.io import read_jsonl, read_provenance

    write_jsonl(workdir / "a.jsonl", [{"id": f"a{i}", "question": f"{i}+1?", "answer": str(i + 1)} for i in range(2)])
    write_jsonl(workdir / "b.jsonl", [{"id": f"b{i}", "question": f"{i}+2?", "answer": str(i + 2)} for i in range(2)])
    base = ["evaluate", "--model", str(tiny_model), "--data", "wordproblems=a.jsonl", "--data", "gsm8k=b.jsonl",
            "--samples", "1", "--max-new-tokens", "4", "--workers", "0"]
    code, err = run(capsys, *base, "--token-limit", "math500=12", "--out-dir", "refused")
    assert code == 2 and "--token-limit math500: not a benchmark of this run" in err and not (workdir / "refused").exists()
    code, err = run(capsys, *base, "--token-limit", "gsm8k=12", "--out-dir", "out")
    assert code == 0, err
    short, long = read_jsonl(workdir / "out/wordproblems.jsonl"), read_jsonl(workdir / "out/gsm8k.jsonl")
    assert max(s["tokens"] for s in short) <= 4 and max(s["tokens"] for s in long) > 4
    assert all(s["tokens"] == 12 for s in long if s["finish"] == "length")
    assert read_provenance(workdir / "out/gsm8k.jsonl")["params"]["max_new_tokens"] == 12
    assert read_provenance(workdir / "out/wordproblems.jsonl")["params"]["max_new_tokens"] == 4
