"""Jobs killed with SIGKILL midway under Snakemake: the rerun resumes, loses nothing, repeats nothing.

A generation job is killed once its first shard is written, a pruning job once its first layer is;
`snakemake` is then run again. The result must equal that of a run nobody killed, and the rerun's
log must show that it resumed rather than started over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from prunebench.io import iter_jsonl

from .conftest import MIRROR, build_tiny_model
from .test_workflow import BIN, ROOT, snakemake

GENERATIONS = "results/generations/tiny/wordproblems_train.jsonl"
PRUNED = "results/pruned/tiny/sparsegpt-0.5/c4"


def _workdir(work: Path, model_dir: Path) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "title": "fault test", "data_dir": str(MIRROR), "seed": 0,
        # batch 2: shards of 4 requests, six of them
        "models": {"tiny": {"source": {"path": str(model_dir)}, "dtype": "float32", "max_model_len": 512,
                            "batch_size": 2}},
        "self_generation": {"sources": {"wordproblems_train": 8}, "samples": 3, "max_new_tokens": 48},
        "calibration": {"sequences": 8, "max_length": 128, "recipes": ["c4"]},
        "pruning": {"methods": ["sparsegpt-0.5"]},
        "evaluation": {"benchmarks": {"wordproblems": 1}},
    }
    configfile = work / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    return work, configfile


def _job_pids(work: Path, command: str) -> list[int]:
    """The processes running `prunebench <command>` in `work` (Snakemake's job, not Snakemake)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(work) and any(a.endswith(b"prunebench") for a in argv[:2]) and command.encode() in argv:
            pids.append(int(proc.name))
    return pids


def _run_and_kill(work: Path, configfile: Path, target: str, command: str, ready) -> str:
    """Start `snakemake target`; SIGKILL the job once `ready()` holds; return Snakemake's output."""
    process = subprocess.Popen(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), target, "--cores", "1", "--configfile", str(configfile)],
        cwd=work, env=dict(os.environ, HF_HUB_OFFLINE="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    killed = False
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline:
        if not killed and ready():
            for pid in _job_pids(work, command):
                os.kill(pid, signal.SIGKILL)
                killed = True
        time.sleep(0.005)
    output = process.communicate()[0]
    assert killed, f"the {command} job finished before it could be killed:\n{output[-3000:]}"
    assert process.returncode != 0, output[-3000:]
    return output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    model_dir = build_tiny_model(root / "tiny-model", layers=12)
    clean, clean_config = _workdir(root / "clean", model_dir)
    result = snakemake(GENERATIONS, PRUNED, "--cores", "1", "--configfile", str(clean_config), cwd=clean)
    assert result.returncode == 0, result.stderr[-3000:]
    killed, killed_config = _workdir(root / "killed", model_dir)
    return {"clean": clean, "killed": killed, "config": killed_config}


@pytest.mark.e2e
def test_a_killed_generation_job_resumes_from_its_shards(runs):
    work, config = runs["killed"], runs["config"]
    parts = work / (GENERATIONS + ".parts")
    _run_and_kill(work, config, GENERATIONS, "generate", lambda: any(parts.glob("shard-00000.jsonl")))
    shards_left = sorted(p.name for p in parts.glob("shard-*.jsonl"))
    assert shards_left and len(shards_left) < 6
    result = snakemake(GENERATIONS, "--cores", "1", "--configfile", str(config), cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (work / "results/logs/generate/tiny/wordproblems_train.log").read_text()
    assert f"resuming: {len(shards_left)} of 6 shards already done" in log
    ours = [r for r in iter_jsonl(work / GENERATIONS) if "id" in r]
    clean = [r for r in iter_jsonl(runs["clean"] / GENERATIONS) if "id" in r]
    assert ours == clean and len({(r["id"], r["sample"]) for r in ours}) == len(ours) == 24


@pytest.mark.e2e
def test_a_killed_pruning_job_resumes_at_its_first_unfinished_layer(runs):
    from safetensors.torch import load_file

    work, config = runs["killed"], runs["config"]
    parts = work / (PRUNED + ".parts")
    _run_and_kill(work, config, PRUNED, "prune", lambda: (parts / "layer-0000.json").exists())
    done = len(list(parts.glob("layer-*.json")))
    assert 1 <= done < 12
    result = snakemake(PRUNED, "--cores", "1", "--configfile", str(config), cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (work / "results/logs/prune/tiny/sparsegpt-0.5/c4.log").read_text()
    assert log.count("resumed") >= done and not parts.exists()
    ours, clean = (load_file(str(w / PRUNED / "model.safetensors")) for w in (work, runs["clean"]))
    assert ours.keys() == clean.keys()
    for name in ours:
        assert ours[name].equal(clean[name]), name
