"""Calibration recipes: which token sequences a pruning method sees, and why each was chosen.

Every recipe is a registry entry taking a `Context` and its config entry and returning
`Sequence`s. The selection rules themselves (eq. 1 of the paper, difficulty from the correctness
ratio) are pure functions over plain numbers so that they can be tested on crafted cases.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from .io import InputError, iter_jsonl
from .prompts import build_prompt, conversation, end_of_turn, without_thinking


@dataclass
class Sequence:
    input_ids: list[int]
    source: str
    why: str
    problem_id: str | None = None
    sample: int | None = None
    meta: dict = field(default_factory=dict)

    def record(self, index: int, tokenizer) -> dict:
        return {"index": index, "source": self.source, "problem_id": self.problem_id, "sample": self.sample,
                "tokens": len(self.input_ids), "why": self.why, "meta": self.meta,
                "text": tokenizer.decode(self.input_ids), "input_ids": self.input_ids}


@dataclass
class Context:
    tokenizer: object
    entry: dict  # the model's config entry (chat template, think tags, ...)
    sequences: int
    max_length: int
    seed: int
    problems: dict[str, list[dict]]  # dataset -> normalized records (with question text)
    graded: dict[str, list[dict]]  # dataset -> graded self-generated samples
    instructions: dict[str, str]  # dataset -> instruction appended to its questions

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_tokens(self, dataset: str, question: str) -> int:
        return len(self.tokens(build_prompt(self.tokenizer, self.entry, question, self.instructions[dataset])))

    def exchange(self, dataset: str, question: str, response: str) -> list[int]:
        text = conversation(self.tokenizer, self.entry, question, self.instructions[dataset], response)
        return self.tokens(text)[: self.max_length]


# ---------------------------------------------------------------- pure selection rules

def correctness_ratio(samples: list[dict]) -> float:
    """c = k / n: correct responses over all responses of one problem."""
    return sum(1 for s in samples if s["correct"]) / len(samples) if samples else 0.0


def difficulty_band(c: float) -> str:
    """The paper's bands by the dense model's own accuracy: Easy c = 1, Medium c > 0.5, Hard c <= 0.5."""
    if c >= 1.0:
        return "easy"
    return "medium" if c > 0.5 else "hard"


def select_by_length(lengths: list[int], budget: int) -> tuple[int, str]:
    """Eq. 1: index of the response to keep among candidates of the given token lengths, and the case.

    Candidates are ordered by length (ties by position); the median is the one at index floor(n/2)
    of that order (0-based: the middle one for odd n, the upper middle for even n). It is kept if it
    fits the budget l' = l - l_q; else the longest that fits; else the shortest of all.
    """
    if not lengths:
        raise ValueError("select_by_length needs at least one candidate")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    median = order[len(order) // 2]
    if lengths[median] <= budget:
        return median, "median fits"
    fitting = [i for i in order if lengths[i] <= budget]
    if fitting:
        return fitting[-1], "median too long; longest that fits"
    return order[0], "nothing fits; shortest"


def choose(items: list, count: int, seed: int, salt: str) -> list:
    """A seeded choice of `count` items (all of them, in order, if there are not more)."""
    if len(items) <= count:
        return list(items)
    picked = sorted(random.Random(f"{seed}:{salt}").sample(range(len(items)), count))
    return [items[i] for i in picked]


# ---------------------------------------------------------------- recipes

def _by_problem(ctx: Context) -> list[tuple[str, str, list[dict]]]:
    """(dataset, problem id, samples sorted by sample index) for every self-generated problem."""
    out = []
    for dataset, samples in ctx.graded.items():
        grouped: dict[str, list[dict]] = defaultdict(list)
        for s in samples:
            grouped[s["id"]].append(s)
        for pid, group in grouped.items():  # problems in file order
            out.append((dataset, pid, sorted(group, key=lambda s: s["sample"])))
    return out


class _Questions(dict):
    """Problem id -> question text; a graded sample of an unknown problem is one clear error."""

    def __missing__(self, pid):
        raise InputError(f"calibration: graded sample of problem {pid!r}, which no --data file holds")


def _questions(ctx: Context) -> dict[str, str]:
    return _Questions((r["id"], r["question"]) for records in ctx.problems.values() for r in records)


def recipe_pretraining(ctx: Context, spec: dict) -> list[Sequence]:
    """Seeded random windows of exactly `max_length` tokens from documents long enough to hold one."""
    rng = random.Random(f"{ctx.seed}:pretraining:{','.join(spec['datasets'])}")
    docs = [(d, r) for d in spec["datasets"] for r in ctx.problems[d]]
    tokenized: dict[int, list[int]] = {}
    out, tries = [], 0
    while len(out) < ctx.sequences:
        tries += 1
        if tries > 100 * ctx.sequences + 1000:
            raise InputError(f"calibration: {', '.join(spec['datasets'])} has too few documents longer than "
                             f"{ctx.max_length} tokens for {ctx.sequences} windows")
        index = rng.randrange(len(docs))
        if index not in tokenized:
            tokenized[index] = ctx.tokens(docs[index][1]["text"])
        ids = tokenized[index]
        if len(ids) <= ctx.max_length:
            continue
        start = rng.randrange(len(ids) - ctx.max_length)
        dataset, doc = docs[index]
        out.append(Sequence(ids[start:start + ctx.max_length], dataset, f"random window at token {start}",
                            problem_id=doc["id"]))
    return out


def recipe_gold(ctx: Context, spec: dict) -> list[Sequence]:
    """MathR: gold worked solutions of the source problems in the model's chat format."""
    pool = [(d, r) for d in spec["datasets"] for r in ctx.problems[d] if r.get("solution")]
    out = []
    for dataset, record in choose(pool, ctx.sequences, ctx.seed, "gold:" + ",".join(spec["datasets"])):
        ids = ctx.exchange(dataset, record["question"], record["solution"])
        out.append(Sequence(ids, dataset, "gold solution", problem_id=record["id"]))
    return out


def _first_valid_correct(samples: list[dict]) -> dict | None:
    return next((s for s in samples if s["correct"] and not s["filters"]), None)


def _self_generated(ctx: Context, spec: dict, transform: Callable[[str], str], label: str) -> list[Sequence]:
    questions = _questions(ctx)
    pool = [(d, pid, s) for d, pid, samples in _by_problem(ctx) if (s := _first_valid_correct(samples))]
    out = []
    for dataset, pid, sample in choose(pool, ctx.sequences, ctx.seed, label):
        ids = ctx.exchange(dataset, questions[pid], transform(sample["text"]))
        out.append(Sequence(ids, dataset, "first correct response", problem_id=pid, sample=sample["sample"]))
    return out


def recipe_sgr(ctx: Context, spec: dict) -> list[Sequence]:
    """SGR: the first correct response (that passes the quality filters) of each problem."""
    return _self_generated(ctx, spec, lambda text: text, "sgr")


def recipe_sgr_without_thinking(ctx: Context, spec: dict) -> list[Sequence]:
    """SGR with the thinking removed from each response (Table 3's ablation)."""
    think, prefix = ctx.entry.get("think"), ctx.entry.get("response_prefix", "")
    return _self_generated(ctx, spec, lambda text: without_thinking(text, think, prefix), "sgr_nothink")


def _pick_per_problem(ctx: Context, keep: Callable[[float], bool], pick: Callable, label: str,
                      explain: Callable[[float], str]) -> list[Sequence]:
    """For each problem whose correctness ratio c passes `keep`, the valid correct response that
    `pick(lengths, budget, pid)` chooses (token lengths include the end of turn; the budget is
    l - l_q); then a seeded choice of `ctx.sequences` problems."""
    questions = _questions(ctx)
    eot = len(ctx.tokens(end_of_turn(ctx.tokenizer)))
    pool = []
    for dataset, pid, samples in _by_problem(ctx):
        c = correctness_ratio(samples)
        candidates = [s for s in samples if s["correct"] and not s["filters"]]
        if not keep(c) or not candidates:
            continue
        budget = ctx.max_length - ctx.prompt_tokens(dataset, questions[pid])
        lengths = [len(ctx.tokens(s["text"])) + eot for s in candidates]
        index, case = pick(lengths, budget, pid)
        pool.append((dataset, pid, candidates[index], c,
                     f"c={c:.2f} {explain(c)} ({difficulty_band(c)}); {case} "
                     f"({lengths[index]} of budget {budget} tokens, {len(candidates)} candidates)"))
    out = []
    for dataset, pid, sample, c, why in choose(pool, ctx.sequences, ctx.seed, label):
        ids = ctx.exchange(dataset, questions[pid], sample["text"])
        out.append(Sequence(ids, dataset, why, problem_id=pid, sample=sample["sample"],
                            meta={"correctness_ratio": c, "band": difficulty_band(c)}))
    return out


def _eq1(lengths: list[int], budget: int, pid: str) -> tuple[int, str]:
    return select_by_length(lengths, budget)


def recipe_ssgr(ctx: Context, spec: dict) -> list[Sequence]:
    """SSGR: problems with c <= tau; among their valid correct responses, the one eq. 1 picks."""
    tau = spec["tau"]
    return _pick_per_problem(ctx, lambda c: c <= tau, _eq1, f"ssgr:{tau}", lambda c: f"<= tau={tau:g}")


def recipe_difficulty(ctx: Context, spec: dict) -> list[Sequence]:
    """Table 4 and Figure 3: problems of one difficulty band only, each response picked by eq. 1."""
    band = spec["band"]
    return _pick_per_problem(ctx, lambda c: difficulty_band(c) == band, _eq1, f"difficulty:{band}",
                             lambda c: f"in band {band}")


def pick_by_length(lengths: list[int], pick: str, rng: random.Random) -> tuple[int, str]:
    """Table 1's reasoning-length rows: the shortest, median (eq. 1's), longest or a random response."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    if pick == "short":
        return order[0], "shortest"
    if pick == "long":
        return order[-1], "longest"
    if pick == "medium":
        return order[len(order) // 2], "median"
    if pick == "random":
        return rng.randrange(len(lengths)), "random"
    raise ValueError(f"unknown length pick {pick!r}")


def recipe_length(ctx: Context, spec: dict) -> list[Sequence]:
    """Table 1: every problem with a valid correct response, the response picked by length alone."""
    pick = spec["pick"]
    return _pick_per_problem(
        ctx, lambda c: True,
        lambda lengths, budget, pid: pick_by_length(lengths, pick, random.Random(f"{ctx.seed}:length:{pid}")),
        f"length:{pick}", lambda c: "any")


def recipe_correctness(ctx: Context, spec: dict) -> list[Sequence]:
    """Table 1's True / False samples: each problem's first valid correct, or first wrong, response.

    A wrong response is one that finished with a final answer that is not the gold one (no quality
    filter applies to it); a truncated or answerless response is neither kind.
    """
    correct = spec["correct"]
    questions = _questions(ctx)
    pool = [(d, pid, s) for d, pid, samples in _by_problem(ctx)
            if (s := next((x for x in samples if bool(x["correct"]) == correct and not x["filters"]), None))]
    kind = "correct" if correct else "wrong"
    out = []
    for dataset, pid, sample in choose(pool, ctx.sequences, ctx.seed, f"correctness:{kind}"):
        ids = ctx.exchange(dataset, questions[pid], sample["text"])
        out.append(Sequence(ids, dataset, f"first {kind} response", problem_id=pid, sample=sample["sample"]))
    return out


def recipe_responses(ctx: Context, spec: dict) -> list[Sequence]:
    """RESP's traces: each problem's first response as the model wrote it, correct or not and
    unfiltered (a response cut at the token limit too), then a seeded choice of problems."""
    questions = _questions(ctx)
    pool = [(d, pid, samples[0]) for d, pid, samples in _by_problem(ctx)]
    out = []
    for dataset, pid, sample in choose(pool, ctx.sequences, ctx.seed, "responses"):
        ids = ctx.exchange(dataset, questions[pid], sample["text"])
        out.append(Sequence(ids, dataset, "first response, correct or not", problem_id=pid, sample=sample["sample"]))
    return out


RECIPES: dict[str, Callable[[Context, dict], list[Sequence]]] = {
    "pretraining": recipe_pretraining,
    "gold": recipe_gold,
    "sgr": recipe_sgr,
    "sgr_nothink": recipe_sgr_without_thinking,
    "ssgr": recipe_ssgr,
    "difficulty": recipe_difficulty,
    "length": recipe_length,
    "correctness": recipe_correctness,
    "responses": recipe_responses,
}



def needs(spec: dict, self_generation_sources: list[str]) -> tuple[list[str], list[str]]:
    """(datasets whose normalized records the recipe reads, datasets whose graded samples it reads).

    The pool's sources come sorted: the selection draws from them in this order, and a config
    mapping's key order (which a JSON round trip may change) must not change the calibration set."""
    if spec["type"] in ("pretraining", "gold"):
        return list(spec["datasets"]), []
    return sorted(self_generation_sources), sorted(self_generation_sources)


def build(ctx: Context, name: str, spec: dict) -> list[Sequence]:
    """The recipe's sequences; `spec` is checked against the schema and given its defaults first."""
    from .config import validate_recipe

    spec = validate_recipe(dict(spec), f"calibration recipe {name!r}")
    if spec["max_length"] is not None:  # Table 6: the same recipe at another sequence length
        ctx = dataclasses.replace(ctx, max_length=spec["max_length"])
    if spec["sequences"] is not None:  # the same recipe at another calibration size
        ctx = dataclasses.replace(ctx, sequences=spec["sequences"])
    return RECIPES[spec["type"]](ctx, spec)


def read_calibration(path: str, tokenizer, positions: int | None, vocabulary: int, allow_empty: bool = False) -> list:
    """Token id tensors from a calibration JSONL whose lines hold `input_ids` or `text`.

    Each sequence must fit the model: ids below its embedding's row count (which may exceed the
    tokenizer's vocabulary), and at most `positions` tokens (refused by line, never cut silently).
    """
    import torch

    sequences = []
    for lineno, record in enumerate(iter_jsonl(path), 1):
        where = f"{path}: sequence {lineno}"
        if "input_ids" in record:
            ids = record["input_ids"]
            if not isinstance(ids, list) or not ids or not all(
                    isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in ids):
                raise InputError(f"{where}: input_ids must be a non-empty list of token ids (integers >= 0)")
        elif isinstance(record.get("text"), str) and record["text"]:
            ids = tokenizer(record["text"])["input_ids"]
        else:
            raise InputError(f"{where}: needs 'input_ids' or a non-empty 'text'")
        if max(ids) >= vocabulary:
            raise InputError(f"{where}: token id {max(ids)} is outside the model's embedding ({vocabulary} rows)")
        if positions is not None and len(ids) > positions:
            raise InputError(f"{where}: {len(ids)} tokens, more than the model's {positions} positions; "
                             f"cut the calibration set (calibration.max_length)")
        sequences.append(torch.tensor(ids, dtype=torch.long))
    if not sequences and not allow_empty:
        raise InputError(f"{path}: no calibration sequences")
    return sequences


def summary(sequences: list[Sequence], requested: int) -> dict:
    lengths = [len(s.input_ids) for s in sequences]
    return {"requested": requested, "selected": len(sequences), "tokens": sum(lengths),
            "mean_tokens": sum(lengths) / len(lengths) if lengths else None,
            "sources": sorted({s.source for s in sequences})}

