"""Model-written code runs sandboxed: each hostile program fails its own problem within its limits,
touches nothing outside its scratch directory, and leaves no process behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from prunebench import sandbox
from prunebench.lmeval.tasks import code
from prunebench.lmeval.tasks import mirror as mirror_data

LIMITS = sandbox.Limits(wall_seconds=6, cpu_seconds=2, memory_bytes=512 << 20, file_bytes=8 << 20, processes=8)


def _leftover_processes(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes() or marker in (entry / "cmdline").read_text():
                    found.append(entry.name)
            except OSError:
                continue
    return found


def test_hostile_programs_fail_their_own_problem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "secret.json").write_text("{}")
    outside = tmp_path / "outside.txt"
    hostile = {
        "loops forever": "while True:\n    pass\n",
        "allocates 10 GB": "block = bytearray(10 * 1024 ** 3)\nprint(len(block))\n",
        "forks repeatedly": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "opens a socket": "import socket\nsocket.create_connection(('93.184.215.14', 80), timeout=3).close()\n",
        "writes outside": f"open({str(outside)!r}, 'w').write('escaped')\n",
        "writes to /tmp": "open('/tmp/prunebench-sandbox-escape', 'w').write('escaped')\n",
        "reads the results": "print(open('results/secret.json').read())\n",
        "fills the disk": "f = open('big', 'wb')\nwhile True:\n    f.write(b'0' * (1 << 20))\n",
        "sleeps past the wall clock": "import time\ntime.sleep(60)\n",
    }
    for name, source in hostile.items():
        started = time.monotonic()
        outcome = sandbox.run_program(source, LIMITS)
        assert not outcome.passed, name
        assert time.monotonic() - started < LIMITS.wall_seconds + 5, name
    assert not outside.exists() and not Path("/tmp/prunebench-sandbox-escape").exists()
    assert (tmp_path / "results" / "secret.json").read_text() == "{}"
    assert sandbox.run_program("import numpy\nassert sum(range(5)) == 10\n", LIMITS).passed  # and the run goes on
    assert not [p for p in Path("/tmp").glob("prunebench-sandbox-*")]  # scratch directories removed


def test_a_fork_bomb_leaves_no_process_behind():
    marker = f"prunebench-marker-{os.getpid()}"
    source = (f"import os, time\nos.environ['M'] = {marker!r}\n"
              "for _ in range(4):\n    if os.fork() == 0:\n        os.setsid()\n"
              "        os.execve('/bin/sleep', ['/bin/sleep', '300'], {'M': " + repr(marker) + "})\n"
              "time.sleep(300)\n")
    outcome = sandbox.run_program(source, sandbox.Limits(wall_seconds=3))
    assert outcome.status == "timeout"
    time.sleep(0.5)
    assert _leftover_processes(marker) == []


def test_isolation_is_described():
    assert "timeout" in sandbox.isolation()


@pytest.mark.parametrize("loader", ["humaneval", "humaneval_plus"])
def test_pass_at_k_runs_the_tests(mirror, loader):
    problems = getattr(mirror_data, loader)(data_dir=str(mirror))["test"].select(range(4))
    for problem in problems:
        reference = problem["test"] + "\ncheck(" + problem["entry_point"] + ")"
        right = problem["prompt"] + problem["canonical_solution"]
        wrong = problem["prompt"] + "    return None\n"
        assert code.pass_at_k([reference], [[right]], [1]) == {"pass@1": 1.0}, problem["task_id"]
        assert code.pass_at_k([reference], [[wrong]], [1]) == {"pass@1": 0.0}, problem["task_id"]
        mixed = code.pass_at_k([reference], [[right, wrong, wrong, right]], [1, 2])
        assert mixed["pass@1"] == pytest.approx(0.5) and mixed["pass@2"] == pytest.approx(1 - 1 / 6)


def test_pass_at_k_estimator():
    from math import comb

    for n, c, k in [(20, 3, 1), (20, 3, 10), (5, 0, 1), (5, 5, 2), (10, 9, 5)]:
        assert code.estimate_pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_humaneval_through_prunebench_runs_in_the_sandbox(tiny_model, mirror, tmp_path):
    from prunebench.cli import main
    from prunebench.io import read_json

    out = tmp_path / "tasks"
    assert main(["tasks", "--model", str(tiny_model), "--suite-json", '{"humaneval": {"limit": 2, "max_gen_toks": 16}}',
                 "--data-dir", str(mirror), "--out-dir", str(out)]) == 0
    result = read_json(out / "humaneval.json")
    assert result["metric"] == "pass@1" and result["score"] == 0.0 and result["documents"] == 2
    assert result["sandbox"] == sandbox.isolation()


def test_pass_at_k_over_several_samples(tiny_model, mirror, tmp_path):
    from prunebench.cli import main
    from prunebench.io import iter_jsonl, read_json

    out = tmp_path / "tasks"
    suite = '{"humaneval": {"limit": 1, "max_gen_toks": 8, "samples": 10, "temperature": 0.8}}'
    assert main(["tasks", "--model", str(tiny_model), "--suite-json", suite, "--data-dir", str(mirror),
                 "--out-dir", str(out)]) == 0
    results = read_json(out / "humaneval.json")["lm_eval"]["results"]["humaneval"]
    assert {"pass@1,create_test", "pass@10,create_test"} <= set(results)
    record = next(r for r in iter_jsonl(out / "humaneval.jsonl") if "doc_id" in r)
    assert len(record["resps"][0]) == 10  # ten generations of the one document
