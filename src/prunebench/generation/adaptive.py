"""Adaptive self-generation: sample in rounds and stop sampling a problem once SSGR has dropped it.

SSGR keeps a problem only if its correctness ratio c = k/n is at most tau, so a problem with more
than tau * n correct responses is out whatever its remaining samples say. Every sample has its own
seed, so the samples that are generated are exactly those fixed-n sampling would give: the SSGR
set (and SGR's first correct response) is the same, with fewer generated tokens. Difficulty bands,
length picks and false samples need every sample and so need fixed-n sampling.
"""

from __future__ import annotations

import math
from typing import Callable


def dropped(correct: int, samples: int, tau: float) -> bool:
    """Whether a problem with `correct` correct responses so far is out of SSGR at threshold tau."""
    return correct > tau * samples


def sample_in_rounds(problem_ids: list[str], samples: int, tau: float,
                     generate: Callable[[int, list[tuple[str, int]]], list[dict]],
                     grade: Callable[[list[dict]], list[bool]]) -> tuple[list[dict], dict]:
    """Generate (problem, sample index) pairs round by round, grading after each round.

    The first round draws floor(tau * n) + 1 samples of every problem (none can be dropped sooner),
    each later round one more sample of every problem still undecided. `generate(round, pairs)`
    returns one record per pair (with "id", "sample", "tokens"); `grade(records)` one bool each.
    Returns the records in (problem, sample) order, and what was saved.
    """
    first = min(samples, math.floor(tau * samples) + 1)
    correct = dict.fromkeys(problem_ids, 0)
    records: list[dict] = []
    pairs = [(pid, s) for pid in problem_ids for s in range(first)]
    for round_index, next_sample in enumerate(range(first, samples + 1)):
        if not pairs:
            break
        generated = generate(round_index, pairs)
        for record, ok in zip(generated, grade(generated), strict=True):
            correct[record["id"]] += bool(ok)
        records += generated
        pairs = [(pid, next_sample) for pid in problem_ids
                 if next_sample < samples and not dropped(correct[pid], samples, tau)]
    order = {pid: i for i, pid in enumerate(problem_ids)}
    records.sort(key=lambda r: (order[r["id"]], r["sample"]))
    tokens = sum(r["tokens"] for r in records)
    skipped = len(problem_ids) * samples - len(records)
    return records, {
        "tau": tau, "samples_per_problem": samples, "samples_generated": len(records), "samples_skipped": skipped,
        "tokens_generated": tokens,
        # the skipped samples' lengths are unknown: estimated at the mean of those generated
        "tokens_saved_estimate": round(skipped * tokens / len(records)) if records else 0,
        "problems_dropped_early": sum(1 for pid in problem_ids if dropped(correct[pid], samples, tau)
                                      and sum(1 for r in records if r["id"] == pid) < samples),
    }
