"""What the workflow relies on in Snakemake beyond its documented interfaces, each pinned so that an
upgrade that changes it fails here: the scheduler loop's single wake-up timer (prunebench.scheduling:
one pending at a time, a daemon, re-armed by the pass it starts, and a rate-limited workflow still
runs to its end), the params rerun trigger skipping RuntimeSetting values, and a --configfile
replacing the Snakefile's default config."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from prunebench import scheduling


class LoopStub:
    """What the fix touches of Snakemake's JobScheduler: the semaphore its loop waits on."""

    def __init__(self):
        self._open_jobs = threading.Semaphore(0)


def test_however_often_the_loop_asks_one_wakeup_is_pending():
    loop = LoopStub()
    before = set(threading.enumerate())
    for _ in range(50):
        scheduling.schedule_reevaluation(loop, 0.2)
    started = [t for t in threading.enumerate() if t not in before and isinstance(t, threading.Timer)]
    assert len(started) == 1 and started[0].daemon  # Snakemake's own: 50 timers, none a daemon
    assert loop._open_jobs.acquire(timeout=5)
    assert not loop._open_jobs.acquire(timeout=0.5)  # released once, not 50 times


def test_the_pass_a_wakeup_starts_arms_the_next_one():
    loop = LoopStub()
    for _ in range(3):  # as the loop does: woken, it asks for the next wake-up
        scheduling.schedule_reevaluation(loop, 0.05)
        assert loop._open_jobs.acquire(timeout=5)


def test_apply_replaces_snakemakes_method(monkeypatch):
    from snakemake.scheduling.job_scheduler import JobScheduler

    # the installed Snakemake must still have the method the fix replaces; if this fails, a new
    # Snakemake renamed or removed it: check whether it still adds a timer per pass
    monkeypatch.setattr(JobScheduler, "_schedule_reevalutation", JobScheduler._schedule_reevalutation)
    assert scheduling.apply()
    assert JobScheduler._schedule_reevalutation is scheduling.schedule_reevaluation


def test_a_rate_limited_workflow_runs_to_its_end_and_exits(tmp_path):
    """At one job a second the loop depends on the timer to go on: the run must neither hang nor
    wait on a timer after its last job."""
    jobs = 6
    (tmp_path / "Snakefile").write_text(
        "import prunebench.scheduling\nassert prunebench.scheduling.apply()\n"
        f"rule all:\n    input: expand('out/{{i}}.txt', i=range({jobs}))\n"
        "rule touch:\n    output: 'out/{i}.txt'\n    shell: 'touch {output}'\n")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--max-jobs-per-timespan", "1/1s",
                           "all"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i}.txt" for i in range(jobs)]


def test_a_runtime_setting_reruns_nothing_and_an_ordinary_param_does(tmp_path):
    """What the workflow relies on in Snakemake's params rerun trigger (prunebench.runtime): a
    RuntimeSetting param changed reruns nothing, while the same change to a plain param reruns the
    job. Fails if an upgrade starts comparing such values, or stops comparing params at all."""
    (tmp_path / "Snakefile").write_text(
        "from prunebench.runtime import RuntimeSetting\n"
        "rule all:\n    input: 'out.txt'\n"
        "rule write:\n    output: 'out.txt'\n"
        "    params: runtime=RuntimeSetting(config['runtime']), plain=config['plain']\n"
        "    shell: 'echo {params.runtime} {params.plain} > {output}'\n")

    def run(runtime: str, plain: str) -> str:
        done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--config", f"runtime={runtime}",
                               f"plain={plain}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout + done.stderr

    run("1", "a")
    assert (tmp_path / "out.txt").read_text() == "1 a\n"
    assert "Nothing to be done" in run("2", "a")            # a runtime setting changed: nothing reruns
    assert (tmp_path / "out.txt").read_text() == "1 a\n"
    assert "Nothing to be done" not in run("2", "b")        # a plain param changed: the job reruns
    assert (tmp_path / "out.txt").read_text() == "2 b\n"


def test_a_configfile_replaces_the_workflows_default_and_config_overrides_keys(tmp_path):
    """What the Snakefile relies on in `workflow.overwrite_configfiles` (a property of Snakemake's
    Workflow, not a documented interface): a --configfile given, the Snakefile's default config
    file is not read at all; without one it is, and --config overrides its keys. Snakemake's public
    `--replace-workflow-config` does not do this: it drops the default even where only --config
    is given. Fails if an upgrade renames the property or changes what it says."""
    (tmp_path / "default.yaml").write_text("models: {a: 1, b: 2}\nscale: 1\n")
    (tmp_path / "mine.yaml").write_text("models: {c: 3}\nscale: 1\n")
    (tmp_path / "Snakefile").write_text(
        "if not workflow.overwrite_configfiles:\n    configfile: 'default.yaml'\n"
        "rule all:\n    run:\n        print('CONFIG', sorted(config['models']), config['scale'])\n")

    def seen(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--forceall", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return next(line for line in (done.stdout + done.stderr).splitlines() if line.startswith("CONFIG"))

    assert seen() == "CONFIG ['a', 'b'] 1"
    assert seen("--config", "scale=4") == "CONFIG ['a', 'b'] 4"
    assert seen("--configfile", "mine.yaml") == "CONFIG ['c'] 1"  # the default's models are not merged in
    assert seen("--configfile", "mine.yaml", "--config", "scale=2") == "CONFIG ['c'] 2"
