"""Metrics of graded samples: pass@1 averaged over k samples, its standard error, response lengths.

Pure functions over graded records; the `evaluate` command wires generation and grading to them.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict


def per_problem_accuracy(samples: list[dict]) -> dict[str, float]:
    """Fraction of correct samples for each problem id."""
    grouped: dict[str, list[bool]] = defaultdict(list)
    for s in samples:
        grouped[s["id"]].append(bool(s["correct"]))
    return {pid: sum(v) / len(v) for pid, v in grouped.items()}


def pass_at_1(samples: list[dict]) -> tuple[float, float]:
    """Mean over problems of the per-problem accuracy (in %), and its standard error over problems."""
    acc = list(per_problem_accuracy(samples).values())
    if not acc:
        return float("nan"), float("nan")
    mean = 100.0 * sum(acc) / len(acc)
    stderr = 100.0 * statistics.stdev(acc) / math.sqrt(len(acc)) if len(acc) > 1 else float("nan")
    return mean, stderr


def mean_and_se(values: list[float]) -> tuple[float, float]:
    """Mean of `values` and its standard error (NaN where there are too few for either)."""
    if not values:
        return math.nan, math.nan
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return statistics.fmean(values), se


def length_stats(samples: list[dict]) -> dict:
    tokens = [s["tokens"] for s in samples]
    correct = [s["tokens"] for s in samples if s["correct"]]
    return {
        "mean_tokens": statistics.fmean(tokens) if tokens else float("nan"),
        "median_tokens": statistics.median(tokens) if tokens else float("nan"),
        "max_tokens": max(tokens) if tokens else 0,
        "mean_tokens_correct": statistics.fmean(correct) if correct else float("nan"),
        "truncation_rate": 100.0 * sum(s["finish"] == "length" for s in samples) / len(samples) if samples else None,
    }


def finite(value):
    """`value` with every NaN or infinity replaced by None: JSON has no NaN (a reader would fail on it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def metrics(samples: list[dict], group_by: str | None = None) -> dict:
    """Everything a table or figure reads about one benchmark run (None where a number is undefined,
    such as the standard error over a single problem)."""
    p1, se = pass_at_1(samples)
    out = {
        "pass@1": p1,
        "stderr": se,
        "problems": len({s["id"] for s in samples}),
        "samples": len(samples),
        "k": max(Counter(s["id"] for s in samples).values()) if samples else 0,
        "verdicts": dict(sorted(Counter(s["verdict"] for s in samples).items())),
        **length_stats(samples),
    }
    if group_by:
        groups: dict[str, list[dict]] = defaultdict(list)
        for s in samples:
            groups[str(s.get("meta", {}).get(group_by))].append(s)
        out["by_" + group_by] = {g: pass_at_1(v)[0] for g, v in sorted(groups.items())}
    return finite(out)
