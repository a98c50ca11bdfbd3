"""Model-written code runs sandboxed: every hostile candidate scores 0 and harms nothing, as root and
as an ordinary user, alone and beside other runs; where isolation is impossible nothing runs."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from prunebench import sandbox
from prunebench.lmeval.tasks import code
from prunebench.sandbox import wire

from tests import hostile

ROOT = Path(__file__).resolve().parents[1]
SMALL = sandbox.Limits(**hostile.LIMITS)


def _require_sandbox():
    reason = sandbox.unavailable()
    if reason:
        if os.environ.get("PRUNEBENCH_REQUIRE_TOOLS"):
            pytest.fail(f"the sandbox is unavailable and PRUNEBENCH_REQUIRE_TOOLS is set: {reason}")
        pytest.skip(reason)


def _humaneval_0(mirror: Path) -> dict:
    with gzip.open(mirror / "humaneval" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as handle:
        return json.loads(handle.readline())


def _leftovers(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(entry.name)
            except OSError:
                continue
    return found


@pytest.fixture()
def battlefield(mirror, tmp_path):
    """What a hostile candidate reaches for, placed outside the system's temporary folder: a copy of
    the mirror's file beside a project folder with results, a token in the home folder, a listening
    port, and a file it must not create."""
    problem = _humaneval_0(mirror)
    place = Path(tempfile.mkdtemp(prefix=".sandbox-target-", dir=ROOT))
    home_token = Path.home() / ".cache" / f"prunebench-canary-{os.getpid()}"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        place.chmod(0o755)
        (place / "results").mkdir()
        files = {"the data mirror": mirror / "humaneval" / "HumanEval.jsonl.gz",
                 "the project": place / "pyproject.toml", "the results": place / "results" / "secret.json",
                 "the home folder": home_token}
        for name, path in files.items():
            if name != "the data mirror":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("secret")
                path.chmod(0o644)
        yield {"prompt": problem["prompt"], "tests": problem["test"], "project": str(place),
               "files": {k: str(v) for k, v in files.items()}, "outside": str(place / "escaped.txt"),
               "port": listener.getsockname()[1], "harness": os.getpid(),
               "marker": f"61.{os.getpid()}{int(time.time()) % 1000}"}
    finally:
        listener.close()
        home_token.unlink(missing_ok=True)
        shutil.rmtree(place, ignore_errors=True)


def _assert_no_trace(spec: dict) -> None:
    assert not Path(spec["outside"]).exists()
    for path in ("/run/lock/prunebench-escape", "/dev/shm/prunebench-escape", "/var/lock/prunebench-escape"):
        assert not Path(path).exists(), path
    time.sleep(0.3)
    assert _leftovers(spec["marker"]) == []
    for name, path in spec["files"].items():
        if name != "the data mirror":
            assert Path(path).read_text() == "secret", name


def test_every_hostile_candidate_scores_zero_as_root_or_as_this_user(battlefield, monkeypatch):
    _require_sandbox()
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.chdir(battlefield["project"])
    signalled = []
    previous = signal.signal(signal.SIGTERM, lambda *_: signalled.append(True))
    before = _resident()
    try:
        scores = hostile.run_suite(battlefield)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert scores.pop("right") is True
    assert [name for name, passed in scores.items() if passed] == []
    assert len(scores) >= 30 and not signalled
    assert _resident() - before < 100 << 20  # 200 MiB of stderr was read and dropped, not kept
    _assert_no_trace(battlefield)


def test_hostile_candidates_score_zero_as_an_ordinary_user(battlefield):
    """The same suite in a harness run by `nobody` with the system's bare Python: a user namespace
    per run instead of a uid per run."""
    _require_sandbox()
    python, runuser = Path("/usr/bin/python3"), shutil.which("runuser")
    if os.geteuid() != 0 or runuser is None or not python.exists():
        pytest.skip("needs root (to become nobody), runuser and /usr/bin/python3")
    tmp_path = Path(tempfile.mkdtemp(prefix="prunebench-user-"))  # pytest's own is root's alone
    try:
        _as_nobody(battlefield, tmp_path, python, runuser)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _as_nobody(battlefield: dict, tmp_path: Path, python: Path, runuser: str) -> None:
    code_dir = tmp_path / "code"
    shutil.copytree(ROOT / "src" / "prunebench", code_dir / "prunebench",
                    ignore=shutil.ignore_patterns("__pycache__", "lmeval", "nltk_data"))
    shutil.copy(ROOT / "tests" / "hostile.py", code_dir)
    spec_file = code_dir / "spec.json"
    spec_file.write_text(json.dumps(battlefield))
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    probe = subprocess.run([runuser, "-u", "nobody", "--", str(python), "-c",
                            "import sys; sys.path.insert(0, sys.argv[1]); from prunebench import sandbox; "
                            "print(sandbox.unavailable())", str(code_dir)], capture_output=True, text=True)
    if probe.stdout.strip() != "None":
        pytest.skip(f"an ordinary user cannot make user namespaces here: {probe.stdout.strip()} {probe.stderr[-300:]}")
    done = subprocess.run([runuser, "-u", "nobody", "--", "env", "HF_TOKEN=hf_secret", f"HOME={tmp_path}",
                           str(python), str(code_dir / "hostile.py"), str(spec_file)],
                          capture_output=True, text=True, cwd=battlefield["project"], timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    assert scores.pop("right") is True
    assert [name for name, passed in scores.items() if passed] == []
    _assert_no_trace(battlefield)


def test_a_run_does_not_depend_on_what_runs_beside_it(battlefield):
    """Right answers pass while hostile runs beside them hold processes, kill what they can see and
    write through every other process's /proc entries."""
    _require_sandbox()
    prompt, reference = battlefield["prompt"], battlefield["tests"] + "\ncheck(has_close_elements)"
    neighbours = {
        "holds 15 sleeping processes": ("    import os, time\n    for _ in range(7):\n        if os.fork() == 0:\n"
                                        "            time.sleep(6)\n            os._exit(0)\n    time.sleep(6)\n"
                                        + hostile.WRONG),
        "kills everything": "    import os, signal, time\n    for _ in range(40):\n        os.kill(-1, signal.SIGKILL)\n",
        "writes through /proc": ("    import os, glob, time\n    for _ in range(30):\n"
                                 "        for path in glob.glob('/proc/*/cwd') + glob.glob('/proc/*/root/box'):\n"
                                 "            try:\n                open(path + '/solution.py', 'w').write('x')\n"
                                 "            except OSError:\n                pass\n        time.sleep(0.1)\n"
                                 + hostile.WRONG),
    }
    jobs = [(name, body) for name, body in neighbours.items()] + [(f"right {i}", hostile.RIGHT) for i in range(5)]
    results = {}

    def one(job):
        results[job[0]] = sandbox.run_tests(prompt + job[1], reference, SMALL)

    threads = [threading.Thread(target=one, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {k: v for k, v in results.items() if k.startswith("right")} == {f"right {i}": True for i in range(5)}
    assert not any(v for k, v in results.items() if not k.startswith("right"))


def test_limits_hold_for_the_run_as_a_whole():
    _require_sandbox()
    limits = sandbox.Limits(wall_seconds=6, memory_bytes=256 << 20, file_bytes=4 << 20, processes=6,
                            output_bytes=1000)
    forks = ("import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        b = bytearray(120 << 20)\n"
             "        time.sleep(10)\n        os._exit(0)\ntime.sleep(10)\n")
    assert sandbox.run({"p.py": forks}, "p.py", limits=limits).status == "memory"  # not the 6 s wall clock
    disk = sandbox.run({"p.py": "for i in range(8):\n    open(f'f{i}', 'wb').write(b'0' * (1 << 20))\nprint('all')\n"},
                       "p.py", limits=limits)
    assert b"all" not in disk.stdout and "No space left" in disk.stderr_tail
    chatty = sandbox.run({"p.py": "print('x' * 5000)\n"}, "p.py", limits=limits)
    assert len(chatty.stdout) == 1000 and not chatty.stdout_complete
    assert sandbox.run({"p.py": "import time\ntime.sleep(30)\n"}, "p.py", limits=limits).status == "timeout"
    given = sandbox.run({"p.py": "import sys\nprint(sys.stdin.read()[::-1])\n"}, "p.py", b"abc" * 100000, limits)
    assert given.stdout.strip() == (b"abc" * 100000)[::-1][:999] or given.stdout.startswith(b"cba")


def test_a_detached_child_does_not_outlive_its_run():
    _require_sandbox()
    marker = f"63.{os.getpid()}"
    source = (f"import os\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
              "print('done')\n")
    outcome = sandbox.run({"p.py": source}, "p.py", limits=sandbox.Limits(wall_seconds=20))
    assert outcome.status == "exited" and outcome.stdout == b"done\n"  # the sleeping child did not hold it to 20 s
    time.sleep(0.3)
    assert _leftovers(marker) == []


def test_what_a_program_sees():
    _require_sandbox()
    source = ("import os, json\nprint(json.dumps({'root': sorted(os.listdir('/')), 'uid': os.getuid(),\n"
              "    'env': sorted(os.environ), 'cwd': os.getcwd(), 'processes': [p for p in os.listdir('/proc') if p.isdigit()],\n"
              f"    'home': os.listdir({str(Path.home())!r}) if os.path.isdir({str(Path.home())!r}) else [],\n"
              f"    'project': os.path.exists({str(ROOT)!r})}}))\n")
    seen = json.loads(sandbox.run({"p.py": source}, "p.py").stdout)
    assert set(seen["root"]) <= {"bin", "box", "dev", "etc", "lib", "lib64", "proc", "root", "sbin", "site", "tmp", "usr",
                                 "work", "home", "opt", "srv", "var"}
    assert seen["uid"] != 0 and seen["cwd"] == sandbox.WORK and len(seen["processes"]) <= 3
    assert "HF_TOKEN" not in seen["env"] and "PATH" in seen["env"]
    assert not seen["project"]
    # Home shows at most the way to the Python installation (pyenv keeps it there), nothing else.
    prefix = Path(sys.base_prefix).resolve()
    assert all(_inside(prefix, Path.home() / entry) for entry in seen["home"])


def test_numpy_is_importable_wherever_the_environment_lives(monkeypatch):
    """Also from an environment under the system's temporary folder (a clone there keeps its .venv
    there), which every container covers with its own /tmp."""
    _require_sandbox()
    program = {"p.py": "import numpy\nprint(int(numpy.arange(5).sum()), numpy.__file__)\n"}
    outcome = sandbox.run(program, "p.py", limits=SMALL)
    assert outcome.stdout.startswith(b"10 /site/numpy/"), outcome.stderr_tail
    import numpy
    import sysconfig

    site = Path(tempfile.mkdtemp(prefix="prunebench-venv-")) / "site-packages"
    try:
        for name in sandbox.PACKAGES:
            found = Path(numpy.__file__).parents[1] / name
            if found.is_dir():
                shutil.copytree(found, site / name, symlinks=True)
        paths = sysconfig.get_paths()
        monkeypatch.setattr(sysconfig, "get_paths", lambda *a, **k: {**paths, "purelib": str(site)})
        outcome = sandbox.run(program, "p.py", limits=SMALL)
        assert outcome.stdout.startswith(b"10 /site/numpy/"), outcome.stderr_tail
    finally:
        shutil.rmtree(site.parent, ignore_errors=True)


def test_where_isolation_is_impossible_nothing_runs(monkeypatch, tmp_path, capsys):
    """A missing bwrap, or one the kernel refuses (a stand-in that fails as bwrap does without user
    namespaces): the reason says how to enable isolation, and no program starts."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    from prunebench.cli import main

    canary = tmp_path / "ran"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    for path in (str(tmp_path / "nothing"), str(fake)):
        monkeypatch.setenv("PATH", path)
        sandbox.unavailable.cache_clear()
        try:
            reason = sandbox.unavailable()
            assert reason and "bubblewrap" in reason and "user namespaces" in reason
            with pytest.raises(sandbox.SandboxUnavailable, match="not run unprotected"):
                sandbox.run_tests(f"open({str(canary)!r}, 'w')\ndef f():\n    return 1\n", "assert f() == 1\n")
            assert "not run" in sandbox.isolation()
            out = tmp_path / "tasks"
            assert main(["tasks", "--model", str(tmp_path / "model"), "--task", "humaneval",
                         "--out-dir", str(out)]) != 0
            assert "never run unprotected" in capsys.readouterr().err and not out.exists()
        finally:
            sandbox.unavailable.cache_clear()
    assert not canary.exists()


def test_values_cross_as_builtins_only():
    class Yes(int):
        def __eq__(self, other):
            return True

    samples = [1, -2.5, float("inf"), 10 ** 40, (1, [2, "x"]), {"a": {1, 2}}, frozenset({3}), b"\x00", 3 + 4j,
               None, True, list(range(100)) + [0.5], [2 ** 63 - 1] * 70 + [1.5]]
    for value in samples:
        back = wire.from_plain(json.loads(json.dumps(wire.to_plain(value))))
        assert back == value and type(back) is type(value)
    assert type(wire.from_plain(wire.to_plain(Yes(0)))) is int
    with pytest.raises(wire.WireError):
        wire.to_plain(object())
    for forged in ({"q": 1}, {"t": 1}, {"n": ["AAAAAAAAAAA=", "", "AQ=="]}, {"d": [[1]]}):
        with pytest.raises(wire.WireError):
            wire.from_plain(forged)


@pytest.mark.parametrize("loader", ["humaneval", "humaneval_plus"])
def test_pass_at_k_runs_the_tests(mirror, loader):
    _require_sandbox()
    from prunebench.lmeval.tasks import mirror as mirror_data

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
    _require_sandbox()
    from prunebench.cli import main
    from prunebench.io import read_json

    out = tmp_path / "tasks"
    assert main(["tasks", "--model", str(tiny_model), "--suite-json", '{"humaneval": {"limit": 2, "max_gen_toks": 16}}',
                 "--data-dir", str(mirror), "--out-dir", str(out)]) == 0
    result = read_json(out / "humaneval.json")
    assert result["metric"] == "pass@1" and result["score"] == 0.0 and result["documents"] == 2
    assert result["sandbox"] == sandbox.isolation()


def test_pass_at_k_over_several_samples(tiny_model, mirror, tmp_path):
    _require_sandbox()
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


def _inside(path: Path, tree: Path) -> bool:
    return path == tree or tree in path.parents


def _resident() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def test_a_mirror_kept_inside_a_mounted_tree_is_hidden(monkeypatch):
    """The system's /usr is in every container; a data mirror kept under it is covered once the task
    runner names it (sandbox.hide), as the tasks command does with --data-dir."""
    _require_sandbox()
    if os.geteuid() != 0 or not os.access("/usr/local/share", os.W_OK):
        pytest.skip("needs a writable /usr/local/share")
    mirror = Path(tempfile.mkdtemp(prefix="prunebench-mirror-", dir="/usr/local/share"))
    try:
        mirror.chmod(0o755)
        (mirror / "answers.txt").write_text("secret")
        (mirror / "answers.txt").chmod(0o644)
        program = {"p.py": f"print(open({str(mirror / 'answers.txt')!r}).read())\n"}
        assert sandbox.run(program, "p.py").stdout == b"secret\n"  # the tree is there, unless hidden
        monkeypatch.setattr(sandbox, "_ALSO_HIDDEN", set())
        sandbox.hide(mirror)
        outcome = sandbox.run(program, "p.py")
        assert outcome.stdout == b"" and "No such file" in outcome.stderr_tail
    finally:
        shutil.rmtree(mirror, ignore_errors=True)
