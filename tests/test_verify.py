"""Comparing a rerun with the recorded result, the scratch mirror, and the manifest."""

from __future__ import annotations

import hashlib
import os

import torch
from safetensors.torch import save_file

from prunebench import verify
from prunebench.config import validate
from prunebench.io import write_json, write_jsonl


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
        "results/calibration/m1/ssgr.jsonl", "results/pruned/m1/wanda-0.5/ssgr"]
    # a run without SSGR or Wanda verifies what it has, not a result it never builds
    narrow = validate(base | {"calibration": {"recipes": ["mathr", "c4"]},
                              "pruning": {"methods": ["sparsegpt-2of4", "sparsegpt-0.5"]}})
    assert verify.expand_targets(narrow) == [
        "results/calibration/m1/mathr.jsonl", "results/pruned/m1/sparsegpt-2of4/mathr"]
    # an SSGR recipe under another name is found by its type
    definitions = validate(base)["calibration"]["recipe_definitions"] | {"mine": {"type": "ssgr"}}
    renamed = validate(base | {"calibration": {"recipes": ["c4", "mine"], "recipe_definitions": definitions}})
    assert verify.expand_targets(renamed)[0] == "results/calibration/m1/mine.jsonl"
    explicit = validate(base | {"verify": {"targets": ["results/pruned/m2/wanda-0.5/c4"]}})
    assert verify.expand_targets(explicit) == ["results/pruned/m2/wanda-0.5/c4"]
