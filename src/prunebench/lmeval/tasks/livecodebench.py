"""LiveCodeBench code generation (Jain et al. 2024), which lm-eval lacks, as an lm-eval task.

The problems are the hub's `livecodebench/code_generation_lite` files of one release (release_v5:
test.jsonl to test5.jsonl), kept between two contest dates (the second paper's "v5" is the window
2024-08-01 to 2025-02-01 that reasoning-model reports use). The mirror does not hold them (see
data/README.md); a copy of the release's files in `<data_dir>/livecodebench/` is read in place of
the hub.

The prompt is LiveCodeBench's own for chat models (the question, then either the starter code to
complete or the instruction to read stdin and write stdout, the answer in a fenced block); the
answer is the last fenced code block of the response. A candidate passes if it passes every public
and private test, as LiveCodeBench grades it:
- stdin problems (AtCoder, Codeforces): the program's output, stripped line by line, equals the
  expected output, or each line's whitespace-separated tokens are equal decimals;
- functional problems (LeetCode): `Solution().<func_name>(*args)`, each argument one JSON line of
  the test's input, returns the JSON-decoded expected output.
Each test of a candidate is a sandbox run of its own (prunebench.sandbox) that receives the test's
input and nothing else; its output is compared here, outside, so that no candidate can read an
expected output or write a verdict. pass@k over several samples by the unbiased estimator.

Private tests are stored as base64 of zlib of a pickle of a JSON string; the pickle is decoded by
an unpickler that builds no objects but plain strings, so that a doctored file cannot run code here.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import zlib
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from prunebench.sandbox import Limits, run

from prunebench.lmeval.tasks.code import PASS_AT_K, estimate_pass_at_k, run_all

HUB_FILES = "hf://datasets/livecodebench/code_generation_lite/"
RELEASE_FILES = {f"release_v{n}": [f"test{'' if i == 1 else i}.jsonl" for i in range(1, n + 1)] for n in range(1, 7)}
TEST_SECONDS = 6  # per test, as LiveCodeBench's grader allows
SYSTEM_MESSAGE = ("You are an expert Python programmer. You will be given a question (problem specification) and will "
                  "generate a correct Python program that matches the specification and passes all tests.")
WITH_STARTER = ("You will use the following starter code to write the solution to the problem and enclose your code "
                "within delimiters.")
WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test "
                   "on the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python "
                   "program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.")
# What LiveCodeBench puts before every candidate: the imports LeetCode's environment provides.
PRELUDE = ("from typing import *\nfrom collections import *\nfrom functools import *\nfrom itertools import *\n"
           "from heapq import *\nfrom bisect import *\nfrom math import *\nfrom string import *\nimport sys, re, math, "
           "json, string, random, heapq, bisect, collections, itertools, functools, operator\n"
           "sys.setrecursionlimit(50000)\n")
# Run inside the sandbox, one container per test: the test's input is the program's standard input,
# and what it prints is compared outside (the expected output never enters the container).
RUN_SCRIPT = """
import runpy
runpy.run_path("/box/solution.py", run_name="__main__")
"""
RUN_FUNCTION = """
import json, sys
sys.set_int_max_str_digits(0)
args = [json.loads(line) for line in sys.stdin.read().split("\\n")]
namespace = {"__name__": "solution"}
exec(compile(open("/box/solution.py", encoding="utf-8").read(), "solution.py", "exec"), namespace)
result = getattr(namespace["Solution"](), FUNC_NAME)(*args)
print(json.dumps(list(result) if isinstance(result, tuple) else result))
"""


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except InvalidOperation:
        return None


def same_output(got: str, expected: str) -> bool:
    """LiveCodeBench's stdin comparison: equal stripped lines, or lines of equal decimals."""
    got_lines, expected_lines = _lines(got), _lines(expected)
    if len(got_lines) != len(expected_lines):
        return False
    return all(a == b or (_decimals(a) is not None and _decimals(a) == _decimals(b))
               for a, b in zip(got_lines, expected_lines))


def same_value(got: str, expected: str) -> bool:
    """LiveCodeBench's functional comparison: the printed JSON equals the expected JSON."""
    try:
        return json.loads(got) == json.loads(expected)
    except ValueError:
        return False


class _StringsOnly(pickle.Unpickler):
    """Unpickles plain data only: any class or function reference is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"private tests refer to {module}.{name}: refused")


def private_tests(encoded: str) -> list[dict]:
    """A problem's private tests: JSON, or base64(zlib(pickle(JSON))) as the hub stores them."""
    try:
        return json.loads(encoded)
    except json.JSONDecodeError:
        pass
    text = _StringsOnly(io.BytesIO(zlib.decompress(base64.b64decode(encoded.encode("ascii"))))).load()
    return json.loads(text)


def _day(value) -> date:
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def load(data_dir: str | None = None, release: str = "release_v5", start_date: str | None = None,
         end_date: str | None = None, **_):
    """The release's problems with start_date <= contest date < end_date, from a local copy of
    its files in <data_dir>/livecodebench/ where one is there, else from the hub."""
    import datasets

    if release not in RELEASE_FILES:
        raise ValueError(f"livecodebench release {release!r}: one of {', '.join(RELEASE_FILES)}")
    local = Path(data_dir or "") / "livecodebench"
    names = RELEASE_FILES[release]
    if data_dir and all((local / name).is_file() for name in names):
        files = [str(local / name) for name in names]
    else:
        files = [HUB_FILES + name for name in names]
    rows = datasets.load_dataset("json", data_files={"test": files}, split="test")
    start = _day(start_date) if start_date else date.min
    end = _day(end_date) if end_date else date.max
    kept = rows.filter(lambda row: start <= _day(row["contest_date"]) < end)
    return datasets.DatasetDict({"test": kept})


def doc_to_text(doc: dict) -> str:
    """LiveCodeBench's question template for chat models, with its system message first."""
    prompt = f"{SYSTEM_MESSAGE}\n\n### Question:\n{doc['question_content']}\n\n"
    if doc.get("starter_code"):
        prompt += f"### Format: {WITH_STARTER}\n```python\n{doc['starter_code']}\n```\n\n"
    else:
        prompt += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return prompt + "### Answer: (use the provided format with backticks)\n\n"


FENCED = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def extract_code(response: str) -> str:
    """The last fenced code block of a response ('' where there is none)."""
    blocks = FENCED.findall(response)
    return blocks[-1] if blocks else ""


def extract_all(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """lm-eval's filter: every sample's code, kept (pass@k needs all of them)."""
    return [[extract_code(r) for r in resp] for resp in resps]


def _checks(doc: dict) -> dict:
    tests = json.loads(doc["public_test_cases"]) + private_tests(doc["private_test_cases"])
    functional = bool(tests) and tests[0].get("testtype") == "functional"
    metadata = json.loads(doc.get("metadata") or "{}")
    return {"tests": [{"input": t["input"], "output": t["output"]} for t in tests], "functional": functional,
            "func_name": metadata.get("func_name"), "seconds": TEST_SECONDS}


def passes(code: str, checks: dict) -> bool:
    """Whether one candidate passes every test: each test a sandbox run of its own, given the input
    only, its output compared here."""
    if not code.strip():
        return False
    if checks["functional"]:
        runner = RUN_FUNCTION.replace("FUNC_NAME", json.dumps(str(checks["func_name"])))
    else:
        runner = RUN_SCRIPT
    files = {"solution.py": PRELUDE + code, "run.py": runner}
    compare = same_value if checks["functional"] else same_output
    for test in checks["tests"]:
        limits = Limits(wall_seconds=checks["seconds"] + 2, cpu_seconds=checks["seconds"], memory_bytes=2 << 30,
                        file_bytes=64 << 20, output_bytes=max(1 << 20, 4 * len(test["output"])))
        outcome = run(files, "run.py", test["input"].encode("utf-8"), limits)
        if (outcome.status != "exited" or outcome.returncode != 0 or not outcome.stdout_complete
                or not compare(outcome.stdout.decode("utf-8", "replace"), test["output"])):
            return False
    return True


def process_results(doc: dict, results: list) -> dict:
    """pass@k for every k the document's samples allow."""
    candidates = results[0] if results and isinstance(results[0], list) else results
    checks = _checks(doc)
    correct = sum(run_all(lambda code: passes(code, checks), list(candidates)))
    return {f"pass@{k}": estimate_pass_at_k(len(candidates), correct, k) for k in PASS_AT_K if k <= len(candidates)}
