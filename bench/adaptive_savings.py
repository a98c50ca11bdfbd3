"""Adaptive self-generation against fixed-n sampling, replayed over a graded fixed-n pool.

Every sample has its own seed, so the samples adaptive sampling draws are exactly the fixed-n
pool's samples with the same index (tests/test_workflow.py checks this on a real model). Replaying
`sample_in_rounds` over a graded pool therefore gives the exact samples and tokens adaptive
sampling would have generated, with no model run: the script prints both, their ratio, and checks
that the SSGR candidates are the same.

    python bench/adaptive_savings.py results/graded/qwen2.5-coder-0.5b-instruct/*.jsonl --tau 0.25 0.5 0.75
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from prunebench.generation.adaptive import dropped, sample_in_rounds
from prunebench.io import iter_jsonl


def load_pool(paths: list[str]) -> dict[str, dict[int, dict]]:
    pool: dict[str, dict[int, dict]] = defaultdict(dict)
    for path in paths:
        for record in iter_jsonl(path):
            if "id" in record:
                pool[record["id"]][record["sample"]] = record
    return pool


def ssgr_candidates(records: list[dict], samples: int, tau: float) -> set[tuple[str, int]]:
    """The correct samples of the problems SSGR keeps (c <= tau): what its eq. 1 picks from."""
    correct = defaultdict(int)
    for r in records:
        correct[r["id"]] += bool(r["correct"])
    return {(r["id"], r["sample"]) for r in records if r["correct"] and not dropped(correct[r["id"]], samples, tau)}


def replay(pool: dict[str, dict[int, dict]], tau: float) -> dict:
    samples = min(len(s) for s in pool.values())
    ids = sorted(pool)
    fixed = [pool[pid][s] for pid in ids for s in range(samples)]
    records, saved = sample_in_rounds(ids, samples, tau,
                                      generate=lambda _round, pairs: [pool[pid][s] for pid, s in pairs],
                                      grade=lambda batch: [bool(r["correct"]) for r in batch])
    fixed_tokens = sum(r["tokens"] for r in fixed)
    return {"tau": tau, "problems": len(ids), "samples": samples, "fixed_samples": len(fixed),
            "adaptive_samples": len(records), "fixed_tokens": fixed_tokens, "adaptive_tokens": saved["tokens_generated"],
            "same_ssgr": ssgr_candidates(fixed, samples, tau) == ssgr_candidates(records, samples, tau)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graded", nargs="+", help="graded pools (results/graded/MODEL/DATASET.jsonl)")
    parser.add_argument("--tau", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    args = parser.parse_args()
    pool = load_pool(args.graded)
    print(f"{'tau':>5} {'problems':>8} {'n':>3} {'samples fixed':>13} {'adaptive':>9} {'tokens fixed':>12} "
          f"{'adaptive':>9} {'ratio':>6} {'same SSGR':>9}")
    for tau in args.tau:
        r = replay(pool, tau)
        print(f"{tau:5.2f} {r['problems']:8d} {r['samples']:3d} {r['fixed_samples']:13d} {r['adaptive_samples']:9d} "
              f"{r['fixed_tokens']:12d} {r['adaptive_tokens']:9d} {r['adaptive_tokens'] / r['fixed_tokens']:6.2f} "
              f"{str(r['same_ssgr']):>9}")


if __name__ == "__main__":
    main()
