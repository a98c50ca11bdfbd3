"""Adaptive self-generation: the SSGR set equals fixed-n sampling's, with fewer samples drawn."""

import random

import pytest

from prunebench.generation.adaptive import dropped, sample_in_rounds


def _world(problems: int, samples: int, seed: int):
    """Which (problem, sample) is correct, and its length: what a seeded sampler would produce."""
    rng = random.Random(seed)
    skill = {f"p{i}": rng.random() for i in range(problems)}
    truth = {(pid, s): rng.random() < skill[pid] for pid in skill for s in range(samples)}
    length = {key: rng.randrange(20, 200) for key in truth}
    return list(skill), truth, length


def _ssgr_pool(records: list[dict], samples_per_problem: int, tau: float) -> dict[str, list[tuple[int, int]]]:
    """SSGR's eligible problems and their correct (sample, length) candidates, c over the drawn samples."""
    by_problem: dict[str, list[dict]] = {}
    for r in records:
        by_problem.setdefault(r["id"], []).append(r)
    pool = {}
    for pid, rs in by_problem.items():
        c = sum(r["correct"] for r in rs) / len(rs)
        if c <= tau:
            pool[pid] = [(r["sample"], r["tokens"]) for r in rs if r["correct"]]
    return pool


@pytest.mark.parametrize("tau", [0.25, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("seed", range(5))
def test_adaptive_ssgr_pool_equals_fixed_n(tau, seed):
    n = 8
    problems, truth, length = _world(30, n, seed)
    calls = []

    def generate(round_index, pairs):
        calls.append(pairs)
        return [{"id": pid, "sample": s, "tokens": length[(pid, s)], "correct": truth[(pid, s)]} for pid, s in pairs]

    records, saved = sample_in_rounds(problems, n, tau, generate, lambda rs: [r["correct"] for r in rs])
    fixed = [{"id": pid, "sample": s, "tokens": length[(pid, s)], "correct": truth[(pid, s)]}
             for pid in problems for s in range(n)]
    assert _ssgr_pool(records, n, tau) == _ssgr_pool(fixed, n, tau)
    # SGR's first correct response of every problem that has one is drawn too
    for pid in problems:
        first = next((s for s in range(n) if truth[(pid, s)]), None)
        if first is not None:
            assert any(r["id"] == pid and r["sample"] == first for r in records)
    drawn = {(r["id"], r["sample"]) for r in records}
    assert len(drawn) == len(records) == saved["samples_generated"]  # nothing drawn twice
    assert saved["samples_skipped"] == 30 * n - len(records)
    assert saved["tokens_generated"] == sum(length[key] for key in drawn)
    assert records == sorted(records, key=lambda r: (problems.index(r["id"]), r["sample"]))
    if tau < 1.0:
        assert saved["samples_skipped"] > 0  # easy problems stop early
    else:
        assert saved["samples_skipped"] == 0 and len(calls) == 1  # nothing is ever dropped at tau = 1


def test_first_round_draws_what_no_problem_can_be_decided_without():
    seen = []
    sample_in_rounds(["a"], 4, 0.5, lambda i, pairs: seen.append(pairs) or
                     [{"id": p, "sample": s, "tokens": 1} for p, s in pairs], lambda rs: [True] * len(rs))
    assert seen == [[("a", 0), ("a", 1), ("a", 2)]]  # 3 correct > 0.5 * 4: decided, no round 2
    assert dropped(3, 4, 0.5) and not dropped(2, 4, 0.5)
