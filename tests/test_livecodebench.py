"""LiveCodeBench as an lm-eval task: loading a release's files, decoding private tests safely,
grading candidates in the sandbox as LiveCodeBench does, and the task end to end through lm-eval
on canned answers (hand-built problems in the hub's row shape; the real ones are hub-only)."""

from __future__ import annotations

import base64
import json
import pickle
import random
import zlib
from pathlib import Path

import pytest

from prunebench.lmeval.tasks import livecodebench as lcb


def _sealed(tests: list[dict]) -> str:
    """Private tests as the hub stores them: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def _problem(qid, content, public, private, *, starter="", func_name=None, day="2024-09-15T00:00:00"):
    return {"question_title": qid, "question_content": content, "platform": "leetcode" if starter else "atcoder",
            "question_id": qid, "contest_id": "c1", "contest_date": day, "starter_code": starter,
            "difficulty": "easy", "public_test_cases": json.dumps(public), "private_test_cases": _sealed(private),
            "metadata": json.dumps({"func_name": func_name} if func_name else {})}


def _stdin(i, o):
    return {"input": i, "output": o, "testtype": "stdin"}


def _functional(i, o):
    return {"input": i, "output": o, "testtype": "functional"}


SUM = _problem("abc001_a", "Read two integers A and B and print A+B.", [_stdin("1 2\n", "3\n")],
               [_stdin("10 -4\n", "6\n"), _stdin("1000000 1\n", "1000001\n")])
TWO_SUM = _problem("two-sum", "Return the indices of the two numbers that add up to target.",
                   [_functional("[2,7,11,15]\n9", "[0, 1]")], [_functional("[3,2,4]\n6", "[1, 2]")],
                   starter="class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        ",
                   func_name="twoSum")
OLD = _problem("abc000_z", "An older problem.", [_stdin("", "0\n")], [], day="2024-07-31T00:00:00")
LATE = _problem("abc999_z", "A later problem.", [_stdin("", "0\n")], [], day="2025-02-01T00:00:00")

SUM_CODE = "a, b = map(int, input().split())\nprint(a + b)\n"
TWO_SUM_CODE = ("class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
                "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
                "                return [seen[target - x], i]\n            seen[x] = i\n")


@pytest.fixture()
def release_copy(tmp_path) -> Path:
    """A local copy of release_v5's five files in <data_dir>/livecodebench/, problems spread over them."""
    folder = tmp_path / "data" / "livecodebench"
    folder.mkdir(parents=True)
    spread = {"test.jsonl": [OLD], "test2.jsonl": [], "test3.jsonl": [], "test4.jsonl": [SUM],
              "test5.jsonl": [TWO_SUM, LATE]}
    for name, rows in spread.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder.parent


def test_load_reads_the_local_release_and_keeps_the_date_window(release_copy):
    rows = lcb.load(data_dir=str(release_copy), release="release_v5", start_date="2024-08-01",
                    end_date="2025-02-01")["test"]
    assert [r["question_id"] for r in rows] == ["abc001_a", "two-sum"]
    everything = lcb.load(data_dir=str(release_copy), release="release_v5")["test"]
    assert len(everything) == 4
    with pytest.raises(ValueError, match="release_v9"):
        lcb.load(data_dir=str(release_copy), release="release_v9")


def test_private_tests_decode_without_running_pickled_code(tmp_path):
    tests = [_stdin("1 1\n", "2\n")]
    assert lcb.private_tests(_sealed(tests)) == tests
    assert lcb.private_tests(json.dumps(tests)) == tests

    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    doctored = base64.b64encode(zlib.compress(pickle.dumps(Exploit()))).decode()
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        lcb.private_tests(doctored)
    assert not marker.exists()


def test_the_last_fenced_block_is_the_answer():
    response = "First try:\n```python\nprint(1)\n```\nBetter:\n```python\nprint(2)\n```\nDone."
    assert lcb.extract_code(response) == "print(2)\n"
    assert lcb.extract_code("no code at all") == ""


@pytest.mark.parametrize("code, expected", [
    (SUM_CODE, True),
    ("print(3)\n", False),  # right on the public test only
    ("a, b = map(int, input().split())\nprint(a - b)\n", False),
    ("import sys\nsys.exit(1)\n", False),
    ("while True:\n    pass\n", False),  # times out on its first test
    ("", False),
])
def test_stdin_candidates_graded_on_every_test(code, expected):
    assert lcb.passes(code, lcb._checks(SUM)) is expected


# A private test whose expected output appears nowhere else: a candidate that prints it must have read it.
HIDDEN = _problem("abc002_a", "Read A and B; print A+B.", [_stdin("1 2\n", "3\n")], [_stdin("40 2\n", "424242\n")])
CHEATS = {
    "reads tests.json": ("import json, sys\nfor t in json.load(open('tests.json'))['tests']:\n"
                         "    if t['input'] == sys.stdin.read(): print(t['output'])\n"),
    "writes output.txt and exits": "open('output.txt', 'w').write('424242\\n')\nimport os\nos._exit(0)\n",
    "searches every file for the answer": (
        "import os, sys\ndata = sys.stdin.read()\nif data.startswith('1 '):\n    print(3)\n    raise SystemExit\n"
        "for root, dirs, files in os.walk('/'):\n    dirs[:] = [d for d in dirs if root != '/' or d not in ('proc', 'usr', 'sys')]\n"
        "    for f in files:\n        try:\n            if b'424242' in open(os.path.join(root, f), 'rb').read(1 << 20):\n"
        "                print(424242)\n                raise SystemExit\n        except OSError:\n            pass\n"),
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_a_candidate_never_sees_the_expected_output(name):
    """The expected outputs stay outside the sandbox: only the input goes in, the comparison is made
    here. Each cheat would pass where it could read (or write) what it reaches for."""
    assert not lcb.passes(CHEATS[name], lcb._checks(HIDDEN))
    assert lcb.passes("a, b = map(int, input().split())\nprint(3 if a == 1 else 424242)\n", lcb._checks(HIDDEN))


def test_outputs_compare_by_line_and_by_decimal_value():
    problem = _problem("p", "Print one half and a pair.", [_stdin("", "0.5000\n1 2\n")], [])
    checks = lcb._checks(problem)
    assert lcb.passes("print(0.5)\nprint('1   2')\n", checks)  # tokens equal as decimals
    assert lcb.passes("print('  0.5000  ')\nprint(' 1 2 ')\n\n", checks)  # surrounding space ignored
    assert not lcb.passes("print(0.5)\n", checks)  # a line missing
    assert not lcb.passes("print(0.51)\nprint('1 2')\n", checks)


def test_functional_candidates_call_the_solution_method():
    checks = lcb._checks(TWO_SUM)
    assert checks["functional"] and checks["func_name"] == "twoSum"
    assert lcb.passes(TWO_SUM_CODE, checks)  # `List` comes from the prelude, as on LeetCode
    assert not lcb.passes(TWO_SUM_CODE.replace("[seen[target - x], i]", "[i, seen[target - x]]"), checks)
    assert not lcb.passes("class Solution:\n    pass\n", checks)


def test_pass_at_k_over_samples():
    scores = lcb.process_results(SUM, [["print('x')\n"] * 2 + [SUM_CODE]])
    assert scores == {"pass@1": pytest.approx(1 / 3)}


def test_livecodebench_through_lm_eval_on_canned_answers(release_copy):
    """The shipped YAML end to end: lm-eval builds LiveCodeBench's prompts, the filter keeps each
    response's last code block, and pass@1 counts the problems whose candidate passes."""
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM

    from prunebench.lmeval import task_manager

    answers = {"Read two integers": f"Here it is:\n```python\n{SUM_CODE}```",
               "two numbers that add up": f"```python\n{TWO_SUM_CODE.replace('[seen[target - x], i]', '[0, 0]')}```"}
    prompts = []

    class Canned(LM):
        def generate_until(self, requests):
            prompts.extend(r.args[0] for r in requests)
            return [next(a for key, a in answers.items() if key in r.args[0]) for r in requests]

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    manager = task_manager(str(release_copy), builtin=False)
    output = simple_evaluate(model=Canned(), tasks=["livecodebench"], task_manager=manager,
                             confirm_run_unsafe_code=True, log_samples=True)
    results = output["results"]["livecodebench"]
    assert results["pass@1,extract_code"] == pytest.approx(0.5)
    assert len(prompts) == 2
    starter = next(p for p in prompts if "twoSum" in p)
    assert lcb.WITH_STARTER in starter and "```python\nclass Solution:" in starter
    assert lcb.WITHOUT_STARTER in next(p for p in prompts if "Read two integers" in p)


def test_livecodebench_through_prunebench_tasks(tiny_model, release_copy, tmp_path):
    """`prunebench tasks`: refused without the hub allowed, run with it (the local copy read), its
    records keeping each problem without megabytes of tests, the sandbox stated."""
    from prunebench.cli import main
    from prunebench.io import iter_jsonl, read_json

    noise = random.Random(0).randbytes(100_000).hex()  # compresses to no less than 100 kB
    big = _problem("big", "Print 0.", [_stdin("", "0\n")], [_stdin(noise, "0\n")])
    with open(release_copy / "livecodebench" / "test5.jsonl", "a") as handle:
        handle.write(json.dumps(big) + "\n")
    suite = json.dumps({"livecodebench": {"category": "reasoning", "max_gen_toks": 8}})
    refused = tmp_path / "refused"
    args = ["tasks", "--model", str(tiny_model), "--suite-json", suite, "--data-dir", str(release_copy)]
    assert main(args + ["--out-dir", str(refused)]) == 2 and not refused.exists()  # the hub is not allowed

    out = tmp_path / "run"
    assert main(args + ["--allow-hub", "--out-dir", str(out)]) == 0
    result = read_json(out / "livecodebench.json")
    assert result["metric"] == "pass@1" and result["score"] == 0.0 and result["documents"] == 3
    assert "network" in result["sandbox"]
    docs = {r["doc"]["question_id"]: r["doc"] for r in iter_jsonl(out / "livecodebench.jsonl") if "doc" in r}
    assert set(docs) == {"abc001_a", "two-sum", "big"}
    assert docs["big"]["private_test_cases"]["omitted_characters"] > 64 << 10
    assert isinstance(docs["abc001_a"]["private_test_cases"], str)
