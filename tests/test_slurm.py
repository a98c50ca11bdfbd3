"""The workflow on a real single-node SLURM cluster through the shipped profile (profiles/slurm).

Model jobs ask the scheduler for their model entry's GPUs; a model job that the scheduler cancels
midway is submitted again (the profile's retries) and the run completes.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
import yaml

from .conftest import MIRROR, ROOT, build_tiny_model
from .slurm_cluster import Cluster, unavailable
from .test_workflow import BIN

MODEL_RULES = ("generate", "prune", "evaluate")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = unavailable()
    if why:
        if os.environ.get("PRUNEBENCH_REQUIRE_TOOLS"):
            pytest.fail(why)
        pytest.skip(why)
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """`snakemake report` through the SLURM profile; the first running model job is cancelled."""
    work = tmp_path_factory.mktemp("slurm-run")
    model_dir = build_tiny_model(work / "tiny-model")
    config = {
        "title": "SLURM test", "data_dir": str(MIRROR), "seed": 0,
        "models": {"tiny": {"source": {"path": str(model_dir)}, "dtype": "float32", "max_model_len": 512,
                            "batch_size": 8, "gpus": 1, "gpu_model": "h100"}},
        "self_generation": {"sources": {"wordproblems_train": 2}, "samples": 2, "max_new_tokens": 32},
        "calibration": {"sequences": 2, "max_length": 64, "recipes": ["c4", "mathr"]},
        "pruning": {"methods": ["wanda-0.5"]},
        "experiments": {"figure4": {"methods": ["wanda-0.5"], "recipes": ["c4"]}},
        "evaluation": {"samples": 1, "max_new_tokens": 16, "benchmarks": {"wordproblems": 2, "gsm8k": 1}},
        "grading": {"workers": 1},
        "verify": {"targets": ["results/calibration/tiny/c4.jsonl"]},   # this untaught model has no SSGR set
    }
    configfile = work / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    env = dict(cluster.env, PATH=f"{BIN}:{os.environ.get('PATH', '')}", HF_HUB_OFFLINE="1")
    command = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "report", "--verbose",
               "--profile", str(ROOT / "profiles" / "slurm"), "--configfile", str(configfile),
               "--slurm-no-account", "--slurm-status-command", "squeue",
               "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5",
               # this node has 2 real cores: one thread per job, whatever the profile asks for GPU nodes
               "--set-threads", *(f"{rule}=1" for rule in ("prepare_model", "grade", "calibrate", *MODEL_RULES)),
               "--default-resources", "slurm_partition=debug", "mem_mb=1000", "runtime=30"]
    log = (work / "snakemake.log").open("w")
    process = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    cancelled = None
    deadline = time.monotonic() + 900
    while process.poll() is None and time.monotonic() < deadline:
        if cancelled is None:
            job = next((j for j in cluster.squeue() if j[2] == "RUNNING"
                        and any(j[1].startswith(f"rule_{rule}_") for rule in MODEL_RULES)), None)
            if job:
                time.sleep(3)  # let it start working
                subprocess.run(["scancel", job[0]], env=cluster.env, check=True)
                cancelled = job
        time.sleep(1)
    if process.poll() is None:
        process.kill()
    log.close()
    output = (work / "snakemake.log").read_text()
    assert process.returncode == 0, output[-6000:]
    return {"work": work, "output": output, "cancelled": cancelled}


@pytest.mark.e2e
def test_the_workflow_runs_through_slurm(slurm_run):
    work, output = slurm_run["work"], slurm_run["output"]
    html = (work / "results/report/index.html").read_text()
    assert 'id="table2"' in html
    table2 = yaml.safe_load((work / "results/tables/table2.json").read_text())
    assert table2["status"] == "built"
    submitted = {}
    for line in output.splitlines():
        if line.startswith("sbatch call:"):
            rule = re.search(r"--comment rule_(\S+?)(?:_wildcards\S*)?\s", line).group(1)
            submitted.setdefault(rule, set()).add("--gpus=h100:1" in line)
    # every rule went through the scheduler; model jobs, and only they, asked for the entry's GPU
    assert set(MODEL_RULES) | {"prepare_model", "calibrate", "table", "render_report"} <= set(submitted), submitted
    for rule, gpu in submitted.items():
        assert gpu == {rule in MODEL_RULES}, (rule, gpu)


@pytest.mark.e2e
def test_a_job_the_scheduler_cancels_runs_again(slurm_run):
    job = slurm_run["cancelled"]
    assert job is not None, "no model job was seen running"
    _, comment, _ = job
    calls = [line for line in slurm_run["output"].splitlines()
             if line.startswith("sbatch call:") and f"--comment {comment} " in line]
    # submitted once, cancelled by the scheduler, submitted again as attempt 2 (the profile's
    # retries); the run then finished (the fixture asserts exit status 0)
    assert len(calls) == 2 and "--attempt 1 " in calls[0] and "--attempt 2 " in calls[1], calls
