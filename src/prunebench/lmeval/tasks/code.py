"""HumanEval's pass@k with every program run in prunebench's sandbox.

lm-eval's own `humaneval` scores through Hugging Face `evaluate`'s code_eval, which downloads its
metric script at import and runs programs in threads of the evaluating process. Here the metric is
the same (each candidate is the prompt plus the completion, checked by the task's tests; pass@k by
the unbiased estimator of Chen et al. 2021), and stricter about what a pass is: the candidate runs in
a container of its own (prunebench.sandbox) and in a process of its own inside it, the tests run in
another process that calls the candidate's functions and sees only the plain values they return, and
a pass is that process's word that the tests ran to their end. A candidate that exits early
(`exit()`, `sys.exit`, `os._exit`, an atexit hook, `unittest.main`), returns an object that claims to
equal anything, or reads or writes outside its own scratch folder therefore fails. The task YAMLs
run it only when a config lists them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from prunebench.sandbox import Limits, run_tests

# Per candidate. lm-eval's code_eval allows 3 s; HumanEval+'s slowest canonical solutions take 12 s
# here by themselves (HumanEval/15, /139), and every value crossing between the candidate's process
# and the tests' adds to that.
LIMITS = Limits(wall_seconds=20.0, cpu_seconds=20, memory_bytes=1 << 30)
PASS_AT_K = (1, 10, 100)  # the k a code task reports, as far as its samples per document allow


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), computed stably (the estimator code_eval uses)."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k(references: list[str], predictions: list[list[str]], k: list[int] | int | None = None,
              limits: Limits = LIMITS) -> dict:
    """pass@k of one problem's candidates (lm-eval calls this once per document)."""
    ks = [k] if isinstance(k, int) else list(k or [1])
    programs = [(i, (candidate, reference)) for i, (reference, candidates) in enumerate(zip(references, predictions))
                for candidate in candidates]
    outcomes = run_all(lambda item: run_tests(item[1][0], item[1][1], limits), programs)
    scores = {f"pass@{kk}": [] for kk in ks}
    for i, candidates in enumerate(predictions):
        correct = sum(passed for (j, _), passed in zip(programs, outcomes) if j == i)
        for kk in ks:
            if kk <= len(candidates):
                scores[f"pass@{kk}"].append(estimate_pass_at_k(len(candidates), correct, kk))
    return {name: float(np.mean(values)) for name, values in scores.items() if values}


def run_all(check, items: list) -> list:
    """`check` over `items`, as many at once as there are cores (each runs a sandboxed process)."""
    with ThreadPoolExecutor(max_workers=max(1, min(len(items), os.cpu_count() or 1))) as pool:
        return list(pool.map(check, items))


def build_predictions(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """lm-eval's filter: each completion after its prompt."""
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs)]
