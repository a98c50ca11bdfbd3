"""Comparing a rerun with the recorded result, the scratch mirror, and the manifest."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import save_file

from prunebench import verify
from prunebench.config import validate
from prunebench.io import write_json, write_jsonl

from .conftest import ROOT


def test_a_byte_identical_rerun_is_identical(tmp_path):
    for side in ("a", "b"):
        write_jsonl(tmp_path / side / "x.jsonl", [{"id": 1, "text": "ok"}], provenance={"seed": 0})
    assert verify.compare(tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl", 0.0)["status"] == verify.IDENTICAL


def test_timing_fields_are_set_aside_and_numbers_meet_the_tolerance(tmp_path):
    write_json(tmp_path / "a.json", {"pass@1": 50.0, "wall_seconds": 10.0, "nested": {"peak_memory_bytes": 1}})
    write_json(tmp_path / "b.json", {"pass@1": 50.0, "wall_seconds": 12.5, "nested": {"peak_memory_bytes": 2}})
    write_json(tmp_path / "c.json", {"pass@1": 50.004, "wall_seconds": 10.0, "nested": {"peak_memory_bytes": 1}})
    write_json(tmp_path / "d.json", {"pass@1": 50.0, "wall_seconds": 10.0, "nested": {"peak_memory_bytes": 1},
                                     "extra": True})
    assert verify.compare(tmp_path / "a.json", tmp_path / "b.json", 0.0)["status"] == verify.EQUAL_BUT_TIMING
    within = verify.compare(tmp_path / "a.json", tmp_path / "c.json", 0.01)
    assert within["status"] == verify.WITHIN_TOLERANCE and abs(within["largest_difference"] - 0.004) < 1e-9
    assert verify.compare(tmp_path / "a.json", tmp_path / "c.json", 0.0)["status"] == verify.DIFFERS
    assert verify.compare(tmp_path / "a.json", tmp_path / "d.json", 1.0)["status"] == verify.DIFFERS


def test_checkpoints_compare_weight_by_weight(tmp_path):
    weights = {"w": torch.tensor([[1.0, 0.0], [0.0, 2.0]])}
    for side, delta in (("a", 0.0), ("b", 0.0), ("c", 1e-6), ("d", 0.5)):
        (tmp_path / side).mkdir()
        save_file({"w": weights["w"] + delta}, str(tmp_path / side / "model.safetensors"))
        write_json(tmp_path / side / "sparsity.json", {"overall_sparsity": 0.5, "wall_seconds": ord(side)})
    a = tmp_path / "a"
    assert verify.compare(a, tmp_path / "b", 0.0)["status"] == verify.EQUAL_BUT_TIMING
    assert verify.compare(a, tmp_path / "c", 1e-5)["status"] == verify.WITHIN_TOLERANCE
    different = verify.compare(a, tmp_path / "d", 1e-5)
    assert different["status"] == verify.DIFFERS and different["differing_files"] == ["model.safetensors"]
    (tmp_path / "b" / "stray.txt").write_text("x")
    (tmp_path / "c" / "model.safetensors").unlink()
    assert verify.compare(a, tmp_path / "b", 0.0)["differing_files"] == ["stray.txt (only in the rerun)"]
    assert verify.compare(a, tmp_path / "c", 1.0)["status"] == verify.MISSING


def test_a_checkpoint_digest_is_each_tensors_bytes_and_each_files_hash(tmp_path):
    """The digest a pruned record holds, against hashlib over the tensors' own bytes: it follows one
    changed weight, and not the order or metadata of the safetensors header."""
    from prunebench.provenance import checkpoint_digest

    weights = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.ones(4, dtype=torch.bfloat16)}
    (tmp_path / "one").mkdir()
    save_file(weights, str(tmp_path / "one/model.safetensors"))
    (tmp_path / "one/config.json").write_text('{"x": 1}')
    (tmp_path / "one/sparsity.json").write_text("{}")
    (tmp_path / "one/.mark").write_text("")
    digest = checkpoint_digest(tmp_path / "one", leave_out=["sparsity.json"])
    expected_b = hashlib.sha256(b"torch.float32(2, 3)" + weights["b"].numpy().tobytes()).hexdigest()
    expected_a = hashlib.sha256(b"torch.bfloat16(4,)" + bytes.fromhex("803f" * 4)).hexdigest()  # 1.0 in bf16, little-endian
    assert digest == {"config.json": hashlib.sha256(b'{"x": 1}').hexdigest(),
                      "model.safetensors:a": expected_a, "model.safetensors:b": expected_b}
    (tmp_path / "two").mkdir()
    save_file(dict(reversed(weights.items())), str(tmp_path / "two/model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "two/config.json").write_text('{"x": 1}')
    assert checkpoint_digest(tmp_path / "two") == digest
    weights["b"][1, 2] = 5.5
    save_file(weights, str(tmp_path / "two/model.safetensors"))
    changed = checkpoint_digest(tmp_path / "two")
    assert [k for k in digest if changed[k] != digest[k]] == ["model.safetensors:b"]


def test_the_mirror_leaves_every_product_of_the_rerun_job_its_own(tmp_path):
    """A pruned record as the target: its checkpoint, log and measurements are the rerun's, in real
    folders, never links through which the rerun would overwrite the recorded ones."""
    root = tmp_path / "run"
    recorded = ["results/pruned/m/w/c4.json", "results/pruned/m/w/c4/model.safetensors", "results/pruned/m/w/sgr.json",
                "results/logs/prune/m/w/c4.log", "results/logs/prune/m/w/sgr.log", "results/logs/grade/x.log",
                "results/measurements/prune/m/w/c4.json", "results/data/a.jsonl"]
    for path in recorded:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)
    scratch = root / "results/verify/scratch/0"
    verify.mirror(root, scratch, "results/pruned/m/w/c4.json")
    assert (scratch / "results/logs").is_symlink() and (scratch / "results/pruned/m/w/c4").is_symlink()
    products = ["results/pruned/m/w/c4", "results/pruned/m/w/c4.json", "results/measurements/prune/m/w/c4.json",
                "results/logs/prune/m/w/c4.log"]
    verify.mirror(root, scratch, products)
    for product in products:
        assert not (scratch / product).exists() and not (scratch / product).is_symlink(), product
        parent = scratch / product
        while (parent := parent.parent) != scratch:
            assert parent.is_dir() and not parent.is_symlink(), parent
    for sibling in ("results/pruned/m/w/sgr.json", "results/logs/prune/m/w/sgr.log", "results/logs/grade",
                    "results/data"):
        assert (scratch / sibling).is_symlink(), sibling
        assert (scratch / sibling).resolve() == (root / sibling).resolve(), sibling
    assert sorted(p.name for p in (root / "results/logs/prune/m/w").iterdir()) == ["c4.log", "sgr.log"]


def test_the_mirror_links_everything_but_the_target_at_the_recorded_times(tmp_path):
    root = tmp_path / "run"
    (root / ".snakemake").mkdir(parents=True)
    (root / "config.yaml").write_text("recorded")
    for path in ("results/data/a.jsonl", "results/calibration/m/ssgr.jsonl", "results/calibration/m/c4.jsonl"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)
    os.utime(root / "results/data/a.jsonl", ns=(1_000_000_000, 1_000_000_000))
    (root / "results/calibration/m/ssgr.jsonl.parts").mkdir()
    scratch = root / "results/verify/scratch/0"
    verify.mirror(root, scratch, "results/calibration/m/ssgr.jsonl")
    assert (scratch / "results/data").is_symlink() and (scratch / "results/calibration/m/c4.jsonl").is_symlink()
    assert not (scratch / "results/calibration/m/ssgr.jsonl").exists()
    assert not (scratch / "results/calibration/m/ssgr.jsonl.parts").exists()
    assert not (scratch / "results/verify").exists()        # the scratch directory does not contain itself
    assert not (scratch / ".snakemake").exists() and not (scratch / "config.yaml").exists()
    assert os.lstat(scratch / "results/data").st_mtime_ns == os.stat(root / "results/data").st_mtime_ns


def test_the_manifest_hashes_every_result_and_names_its_provenance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl("results/calibration/m/c4.jsonl", [{"index": 0}],
                provenance={"code_commit": "abc", "inputs": {"results/data/c4.jsonl": "f00"}})
    (tmp_path / "results/pruned/m/wanda-0.5/c4").mkdir(parents=True)
    (tmp_path / "results/pruned/m/wanda-0.5/c4/model.safetensors").write_bytes(b"weights")
    write_json("results/pruned/m/wanda-0.5/c4/sparsity.json", {"provenance": {"code_commit": "def", "inputs": {}}})
    (tmp_path / "results/logs").mkdir()
    (tmp_path / "results/logs/x.log").write_text("not a result")
    assert verify.manifest(".", "results/manifest.json") == 3
    from prunebench.io import read_json

    files = {f["path"]: f for f in read_json("results/manifest.json")["files"]}
    assert set(files) == {"results/calibration/m/c4.jsonl", "results/pruned/m/wanda-0.5/c4/model.safetensors",
                          "results/pruned/m/wanda-0.5/c4/sparsity.json"}
    weights = files["results/pruned/m/wanda-0.5/c4/model.safetensors"]
    assert weights["sha256"] == hashlib.sha256(b"weights").hexdigest() and weights["code_commit"] == "def"
    assert files["results/calibration/m/c4.jsonl"]["inputs"] == {"results/data/c4.jsonl": "f00"}


def test_the_default_slice_names_what_the_run_builds():
    base = {"models": {"m1": {"source": {"path": "/x"}}, "m2": {"source": {"path": "/y"}}}}
    assert verify.expand_targets(validate(base)) == [
        "results/calibration/m1/ssgr.jsonl", "results/pruned/m1/wanda-0.5/ssgr.json"]
    # a run without SSGR or Wanda verifies what it has, not a result it never builds
    narrow = validate(base | {"calibration": {"recipes": ["mathr", "c4"]},
                              "pruning": {"methods": ["sparsegpt-2of4", "sparsegpt-0.5"]}})
    assert verify.expand_targets(narrow) == [
        "results/calibration/m1/mathr.jsonl", "results/pruned/m1/sparsegpt-2of4/mathr.json"]
    # an SSGR recipe under another name is found by its type
    definitions = validate(base)["calibration"]["recipe_definitions"] | {"mine": {"type": "ssgr"}}
    renamed = validate(base | {"calibration": {"recipes": ["c4", "mine"], "recipe_definitions": definitions}})
    assert verify.expand_targets(renamed)[0] == "results/calibration/m1/mine.jsonl"
    explicit = validate(base | {"verify": {"targets": ["results/pruned/m2/wanda-0.5/c4"]}})
    assert verify.expand_targets(explicit) == ["results/pruned/m2/wanda-0.5/c4"]


def test_compare_runs_sets_the_code_commit_aside(tmp_path):
    """Two runs of two commits: a result that differs only by the commit it records is the same; a
    number that moved, or a file only one run has, is not; a PDF counts as its LaTeX source does."""
    from prunebench.verify import DIFFERS, IDENTICAL, MISSING, SAME_BUT_COMMIT, compare_runs

    commits = {"a": "1" * 40, "b": "2" * 40 + "-dirty"}
    for run, commit in commits.items():
        results = tmp_path / run / "results"
        (results / "eval").mkdir(parents=True)
        (results / "report").mkdir()
        (results / "same.txt").write_text("plain")
        prov = {"code_commit": commit, "inputs": {"x": "abc"}}
        (results / "eval" / "m.json").write_text(json.dumps({"pass@1": 50.0, "provenance": prov}))
        (results / "eval" / "moved.json").write_text(json.dumps({"pass@1": 50.0 if run == "a" else 51.0,
                                                                 "provenance": prov}))
        (results / "report" / "paper.tex").write_text(f"Code commit {commit[:12]}")  # the report shows it short
        (results / "report" / "paper.pdf").write_bytes(commit.encode()[::-1])  # compressed: the commit unreadable
        (results / "figure.svg").write_text(f"<svg><!-- {commit} --></svg>")
        (results / "figure.pdf").write_bytes(commit.encode()[::-1])
        # an input that records the commit hashes differently in each run
        upstream = {"code_commit": commit, "inputs": {"results/eval/m.json": str(hash(commit) % 10 ** 6) * 10}}
        (results / "downstream.json").write_text(json.dumps({"value": 1, "provenance": upstream}))
    (tmp_path / "a" / "results" / "only-a.txt").write_text("x")
    statuses = compare_runs(tmp_path / "a", tmp_path / "b")
    assert statuses == {"results/same.txt": IDENTICAL, "results/eval/m.json": SAME_BUT_COMMIT,
                        "results/eval/moved.json": DIFFERS, "results/report/paper.tex": SAME_BUT_COMMIT,
                        "results/report/paper.pdf": SAME_BUT_COMMIT, "results/only-a.txt": MISSING,
                        "results/figure.svg": SAME_BUT_COMMIT, "results/figure.pdf": SAME_BUT_COMMIT,
                        "results/downstream.json": SAME_BUT_COMMIT}


def _provenance_in_a_fresh_process(tmp_path, torch_loaded: bool, **env: str) -> dict:
    """The provenance block a prunebench process writes, with or without PyTorch loaded."""
    code = ("import json, sys" + (", torch" if torch_loaded else "")
            + "; from prunebench.provenance import provenance; print(json.dumps(provenance()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_results_name_their_kernels_and_a_comparison_sets_them_aside(tmp_path):
    """A process that computed with PyTorch names its kernels: the ATen set it ran (ATEN_CPU_CAPABILITY
    forcing a narrower one shows), the BLAS, and a variable steering that BLAS where one is set; one
    that never loaded PyTorch names none. Comparisons set the block aside, so a result the same on two
    kernel sets, or against a record made before results named their kernels, is the same."""
    from prunebench.reference import narrower_kernel_sets
    from prunebench.verify import DIFFERS, SAME_BUT_COMMIT, compare_runs, comparable_text

    picked = torch.backends.cpu.get_cpu_capability()
    native = _provenance_in_a_fresh_process(tmp_path, True)
    assert native["kernels"]["aten"] == picked and native["kernels"]["blas"] != "unknown"
    assert "kernels" not in _provenance_in_a_fresh_process(tmp_path, False)
    narrower = (narrower_kernel_sets(picked) or ["default"])[0]
    forced = _provenance_in_a_fresh_process(tmp_path, True, ATEN_CPU_CAPABILITY=narrower, MKL_CBWR="COMPATIBLE")
    assert forced["kernels"] == {**native["kernels"], "aten": narrower.upper(), "MKL_CBWR": "COMPATIBLE"}

    before = {key: value for key, value in native.items() if key != "kernels"}   # no kernels recorded
    for run, prov in (("a", native), ("b", forced), ("old", before)):
        results = tmp_path / run / "results"
        write_json(results / "eval" / "m.json", {"pass@1": 50.0, "provenance": prov})
        write_json(results / "eval" / "moved.json", {"pass@1": 50.0 if run == "a" else 51.0, "provenance": prov})
        write_jsonl(results / "eval" / "m.jsonl", [{"id": "p0", "correct": True}], provenance=prov)
    for other in ("b", "old"):
        statuses = compare_runs(tmp_path / "a", tmp_path / other)
        assert statuses == {"results/eval/m.json": SAME_BUT_COMMIT, "results/eval/m.jsonl": SAME_BUT_COMMIT,
                            "results/eval/moved.json": DIFFERS}, other
    for name in ("m.json", "m.jsonl"):
        texts = {run: comparable_text(tmp_path / run / "results" / "eval" / name, []) for run in ("a", "b", "old")}
        assert texts["a"] == texts["b"] == texts["old"] and b"kernels" not in texts["a"]


def test_prunebench_compare_exits_nonzero_where_results_differ(tmp_path, capsys):
    from prunebench.cli import main

    for run, value in (("a", "1"), ("b", "1"), ("c", "2")):
        (tmp_path / run / "results").mkdir(parents=True)
        (tmp_path / run / "results" / "t.csv").write_text(value)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ab.json")]) == 0
    assert json.loads((tmp_path / "ab.json").read_text())["counts"] == {"identical": 1}
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    assert "differs\tresults/t.csv" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "nowhere")]) == 2


def test_a_rerun_in_scratch_reads_the_runs_mirror_reference_and_models(tmp_path):
    """verify reruns jobs in scratch/<n>/, where the config's relative paths would name nothing."""
    config = {"data_dir": "../shared/data", "reference": "reference/default.json",
              "models": {"m": {"source": {"path": "models/m"}}, "hub": {"source": {"hub": "org/m"}}}}
    assert verify.anchored(config, tmp_path)["reference"] == "reference/default.json"   # the workflow's, not the run's
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "default.json").write_text("{}")
    anchored = verify.anchored(config, tmp_path)
    assert anchored["data_dir"] == str((tmp_path / "../shared/data").resolve())
    assert anchored["reference"] == str(tmp_path / "reference" / "default.json")
    assert anchored["models"]["m"]["source"]["path"] == str(tmp_path / "models" / "m")
    assert anchored["models"]["hub"]["source"] == {"hub": "org/m"}
    assert verify.anchored({"data_dir": None, "reference": None}, tmp_path) == {"data_dir": None, "reference": None}
    assert config["reference"] == "reference/default.json"   # the run's own config is left as it was
