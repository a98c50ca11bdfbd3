"""The reference record and `prunebench reproduce`: a rebuild judged against a record of another run,
on a small run written here (data, two evaluated cells, a calibration set, Table 2)."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from prunebench import paths, reference
from prunebench.cli import main
from prunebench.config import validate
from prunebench.io import write_json, write_jsonl
from prunebench.outputs import OUTPUTS
from prunebench.provenance import provenance

CONFIG = {"models": {"m": {"source": {"path": "/x"}}}, "calibration": {"recipes": ["sgr"]},
          "pruning": {"methods": ["wanda-0.5"]}, "evaluation": {"benchmarks": {"wordproblems": 20}},
          "experiments": {"figure4": {"methods": ["wanda-0.5"]}}}
CELLS = (("dense", "none"), ("wanda-0.5", "sgr"))


def _evaluate(root: Path, method: str, recipe: str, correct: list[bool]) -> None:
    """One cell's samples (two per problem) and their metrics, as prunebench evaluate writes them."""
    data = root / paths.data("wordproblems")
    samples = [{"id": f"p{i // 2}", "sample": i % 2, "correct": c, "text": "a secret question's answer"}
               for i, c in enumerate(correct)]
    per_problem = [sum(correct[i:i + 2]) / 2 for i in range(0, len(correct), 2)]
    mean = sum(per_problem) / len(per_problem)
    se = (sum((p - mean) ** 2 for p in per_problem) / (len(per_problem) - 1) / len(per_problem)) ** 0.5
    prov = provenance([data])
    write_jsonl(root / paths.eval_samples("m", method, recipe, "wordproblems"), samples, provenance=prov)
    write_json(root / paths.eval_metrics("m", method, recipe, "wordproblems"),
               {"benchmark": "wordproblems", "pass@1": 100 * mean, "stderr": 100 * se, "problems": len(per_problem),
                "samples": len(correct), "mean_tokens": 10.0, "truncation_rate": 0.0, "provenance": prov})


def _tables(root: Path) -> None:
    config = validate(json.loads(json.dumps(CONFIG)))
    table2 = OUTPUTS["table2"]
    with contextlib.chdir(root):   # as the workflow runs it: in the run's working directory
        table2.write(table2.reads(config), table2.files(), Path("."))


def _run(root: Path, correct: dict | None = None, calibration_tokens: int = 12) -> Path:
    """A finished run in `root`: the data, both cells' evaluations, the calibration set, Table 2."""
    write_jsonl(root / paths.data("wordproblems"), [{"id": f"p{i}", "question": "q", "answer": "1"} for i in range(20)],
                provenance=provenance([]))
    write_jsonl(root / paths.calibration("m", "sgr"), [{"index": 0, "tokens": calibration_tokens, "text": "t"}],
                provenance=provenance([root / paths.data("wordproblems")]))
    for method, recipe in CELLS:
        _evaluate(root, method, recipe, (correct or {}).get(method, [i % 3 == 0 for i in range(40)]))
    _tables(root)
    return root


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path / "reference")
    return reference.record(run), tmp_path


def _statuses(result: dict) -> set[str]:
    return set(result["files"].values())


def test_the_same_run_is_identical_and_another_commit_is_identical_but_the_commit(recorded):
    record, tmp = recorded
    same = reference.compare(record, tmp / "reference")
    assert _statuses(same) == {reference.IDENTICAL} and not reference.failures(same)
    other = tmp / "other-commit"
    shutil.copytree(tmp / "reference", other)
    commit = record["commit"]
    for path in (other / paths.RESULTS).rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace(commit, "f" * 40))
    result = reference.compare(record, other)
    assert _statuses(result) == {reference.SAME_BUT_COMMIT} and not reference.failures(result)
    assert {v["verdict"] for v in result["outputs"]} == {reference.IDENTICAL}


def test_a_small_change_is_within_noise_and_named_where_it_starts(recorded):
    record, tmp = recorded
    correct = [i % 3 == 0 for i in range(40)]
    correct[0] = not correct[0]          # one sample of one problem
    rebuild = _run(tmp / "rebuild", {"wanda-0.5": correct})
    result = reference.compare(record, rebuild)
    metrics = "results/eval/m/wanda-0.5/sgr/wordproblems.json"
    assert [d["path"] for d in result["first_divergences"]] == [metrics, metrics + "l"]
    (change,) = result["metrics"]
    assert change["metric"] == metrics and change["difference"] == pytest.approx(-2.5)
    assert change["se"] == pytest.approx(2.5) and change["how"] == "paired over 20 shared problems"
    assert change["status"] == reference.WITHIN_NOISE
    table2 = next(v for v in result["outputs"] if v["output"] == "table2")
    assert table2["verdict"] == reference.WITHIN_NOISE and metrics in table2["evidence"][0]
    assert not reference.failures(result)


def test_a_large_change_is_different_and_the_command_fails(recorded, capsys):
    record, tmp = recorded
    rebuild = _run(tmp / "rebuild", {"wanda-0.5": [True] * 40})
    result = reference.compare(record, rebuild)
    table2 = next(v for v in result["outputs"] if v["output"] == "table2")
    assert table2["verdict"] == reference.DIFFERENT and "wanda-0.5/sgr/wordproblems.json" in table2["evidence"][0]
    write_json(tmp / "record.json", record)
    assert main(["reproduce", "--reference", str(tmp / "record.json"), "--run", str(rebuild)]) == 2
    printed = capsys.readouterr()
    assert "table2: different" in printed.out and "first divergence: results/eval/m/wanda-0.5/sgr/wordproblems" in printed.out
    assert "did not reproduce" in printed.err


def test_a_difference_with_no_standard_error_is_beyond_noise_and_written_as_json(tmp_path, monkeypatch):
    """Every problem moved alike (paired SE 0): the metric differs, with no z to print, and the
    whole comparison is still valid JSON (no infinity)."""
    monkeypatch.chdir(tmp_path)
    record = reference.record(_run(tmp_path / "reference", {"wanda-0.5": [False] * 40}))
    rebuild = _run(tmp_path / "rebuild", {"wanda-0.5": [True] * 40})
    (change,) = reference.compare(record, rebuild)["metrics"]
    assert change["difference"] == pytest.approx(100.0) and change["se"] == 0.0
    assert change["z"] is None and change["status"] == reference.DIFFERENT
    write_json(tmp_path / "record.json", record)
    out = tmp_path / "comparison.json"
    assert main(["reproduce", "--reference", str(tmp_path / "record.json"), "--run", str(rebuild),
                 "--out", str(out)]) == 2
    written = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert written["metrics"][0]["z"] is None
    assert "no standard error to judge it by" in "\n".join(reference.summary_lines(written))


def test_a_changed_calibration_set_is_a_difference_without_a_standard_error(recorded):
    record, tmp = recorded
    rebuild = _run(tmp / "rebuild", calibration_tokens=13)
    result = reference.compare(record, rebuild)
    assert [d["path"] for d in result["first_divergences"]] == ["results/calibration/m/sgr.jsonl"]
    table2 = next(v for v in result["outputs"] if v["output"] == "table2")
    assert table2["verdict"] == reference.DIFFERENT
    assert table2["evidence"] == ["results/calibration/m/sgr.jsonl: differs"]


def test_a_missing_result_fails_and_the_record_keeps_no_text(recorded):
    record, tmp = recorded
    rebuild = tmp / "rebuild"
    shutil.copytree(tmp / "reference", rebuild)
    (rebuild / paths.eval_metrics("m", "dense", "none", "wordproblems")).unlink()
    result = reference.compare(record, rebuild)
    assert result["files"]["results/eval/m/dense/none/wordproblems.json"] == reference.MISSING
    assert reference.failures(result)
    assert "secret" not in json.dumps(record)   # ids and scores only: a sealed set's text never leaves the run
    assert record["units"]["results/eval/m/dense/none/wordproblems.json"]["p0"] == 0.5
    assert record["machine"]["torch_cpu_capability"] and record["machine"]["threads"] >= 1


def test_the_machine_names_the_threads_its_model_jobs_ran_with_not_the_describing_process(recorded):
    """The workflow gives model jobs fewer threads than a shell has: the record takes their count from
    the speed measurements made inside them, and says so where a run (or an older record) has none."""
    record, tmp = recorded
    assert record["machine"]["job_threads"] is None
    assert reference.threads_described(record["machine"]) == "model jobs' threads not recorded"
    run = tmp / "reference"
    for method, threads in (("dense", 1), ("wanda-0.5", 3)):
        write_json(run / paths.speed("m", method, "sgr"), {"threads": threads, "decode_tokens_per_second": 1.0})
    described = reference.machine(run)
    assert described["job_threads"] == [1, 3] and described["threads"] >= 1
    assert reference.threads_described(described) == "model jobs on 1/3 threads"
    assert reference.threads_described({**described, "job_threads": [1]}) == "model jobs on 1 thread"
    result = reference.compare(record, run)
    assert result["machine"]["job_threads"] == [1, 3]
    assert reference.summary_lines(result)[0].endswith("; model jobs' threads not recorded)")
    assert "model jobs on 1/3 threads" in reference.summary_lines(result)[1]


def test_the_machine_names_the_kernels_its_results_were_computed_with(tmp_path, monkeypatch):
    """The kernels are those the results name (each set once: a run resumed on other kernels shows
    both); a run, or an older record, whose results name none is described by the describing
    process's kernel set. Naming them moves no result against a record made before they were named."""
    from prunebench import provenance as provenance_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(provenance_module, "kernels", lambda: None)
    before = reference.record(_run(tmp_path / "before"))
    assert before["machine"]["job_kernels"] is None
    assert reference.kernels_described(before["machine"]) == f"{before['machine']['torch_cpu_capability']} kernels"

    blocks = {"dense": {"aten": "AVX512", "blas": "MKL 2024.2"},
              "wanda-0.5": {"aten": "AVX2", "blas": "MKL 2024.2", "MKL_CBWR": "AVX2"}}
    monkeypatch.setattr(provenance_module, "kernels", lambda: blocks["dense"])
    run = _run(tmp_path / "run")
    monkeypatch.setattr(provenance_module, "kernels", lambda: blocks["wanda-0.5"])
    _evaluate(run, "wanda-0.5", "sgr", [i % 3 == 0 for i in range(40)])   # the same cell again, on other kernels
    described = reference.machine(run)
    assert described["job_kernels"] == [blocks["wanda-0.5"], blocks["dense"]]
    assert reference.kernels_described(described) == (
        "AVX2 kernels, MKL 2024.2, MKL_CBWR=AVX2 and AVX512 kernels, MKL 2024.2")
    result = reference.compare(before, run)
    assert "AVX2 kernels, MKL 2024.2, MKL_CBWR=AVX2 and AVX512" in reference.summary_lines(result)[1]
    assert _statuses(result) == {reference.SAME_BUT_COMMIT} and not reference.failures(result)


def _checkpoint(folder: Path, shift: float = 0.0) -> dict:
    """A two-tensor checkpoint and the record prunebench prune writes of it; `shift` moves one weight
    of the first tensor at a probed position."""
    import torch
    from safetensors.torch import save_file

    from prunebench.provenance import checkpoint_fingerprint, probe_positions

    weights = {"a.weight": torch.arange(48, dtype=torch.float32).reshape(6, 8) / 7,
               "b.weight": -torch.ones(3, 5)}
    if shift:
        weights["a.weight"].view(-1)[probe_positions("model.safetensors:a.weight", 48)[2]] += shift
    folder.mkdir(parents=True)
    save_file(weights, str(folder / "model.safetensors"))
    digests, probes = checkpoint_fingerprint(folder)
    return {"method": "wanda-0.5", "weights_sha256": digests, "weight_probes": probes, "provenance": provenance([])}


def test_weight_probes_are_the_values_at_positions_drawn_from_the_tensor_name(tmp_path):
    import numpy as np
    from safetensors.numpy import load_file

    from prunebench.provenance import PROBES, probe_positions

    record = _checkpoint(tmp_path / "ckpt")
    arrays = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    for name, array in arrays.items():
        probe = record["weight_probes"][f"model.safetensors:{name}"]
        flat = array.reshape(-1).astype(np.float64)
        assert len(set(probe["at"])) == PROBES and probe["at"] == sorted(probe["at"]) and max(probe["at"]) < flat.size
        assert probe["values"] == [flat[i] for i in probe["at"]]
        assert probe["l2"] == pytest.approx(float(np.sqrt((flat ** 2).sum())), rel=1e-12)
    assert probe_positions("x", 1000) == probe_positions("x", 1000) != probe_positions("y", 1000)
    assert probe_positions("x", 3) == [0, 1, 2]


def test_a_checkpoint_that_moved_names_its_tensors_and_the_largest_difference(recorded):
    record, tmp = recorded
    name = paths.sparsity_record("m", "wanda-0.5", "sgr")
    for root, shift in ((tmp / "reference", 0.0), (tmp / "rebuild", 0.25)):
        if not root.exists():
            shutil.copytree(tmp / "reference", root)
        write_json(root / name, _checkpoint(tmp / f"checkpoint-{root.name}", shift))
    record = reference.record(tmp / "reference")
    assert set(record["weights"][name]) == {"model.safetensors:a.weight", "model.safetensors:b.weight"}
    result = reference.compare(record, tmp / "rebuild")
    (moved,) = result["weights"]
    assert moved["record"] == name and moved["differing"] == 1 and moved["at"] == "model.safetensors:a.weight"
    assert moved["largest_probe_difference"] == pytest.approx(0.25)
    assert 0 < moved["largest_relative_l2"] < 0.01
    assert [d["path"] for d in result["first_divergences"]] == [name]
    assert any("1 of 2 tensors differ" in line for line in reference.summary_lines(result))
