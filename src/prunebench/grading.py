"""Grading with math-verify, and the quality filters that keep bad responses out of calibration.

Only the text after the think span counts and the last ``\\boxed{}`` in it is the answer; a
response cut off by the token limit, or one that never closed its thinking, is incorrect. Model
output is untrusted: each item is graded in a worker process with a hard wall-clock limit, on text
cut to a bounded size, so no response can crash or stall the grader.
"""

from __future__ import annotations

import os
import re
import zlib
from collections import Counter
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from .prompts import PROMPT_TOO_LONG, last_boxed, split_response

MAX_ANSWER_CHARS = 4096  # a box longer than this is not an answer
MAX_SCAN_CHARS = 200_000  # the answer is searched for in this many trailing characters
# Formatting around a choice letter: \text{...}, \mathrm{...} and the like, braces, dollars, spaces.
_CHOICE_MARKUP = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mathit|mathsf|operatorname)\s*\{|[{}$\s]+")
_CHOICE = re.compile(r"\(?([A-Da-d])(?:\)|[.:]|$)")
_PARENTHESIZED_LETTER = re.compile(r"\([A-Da-d]\)")
_LETTER_JOINERS = re.compile(r"[(),;&.]|and")
_LETTERS_ONLY = re.compile(r"[A-Da-d]{1,4}")
_TRAILING_PERCENT = re.compile(r"(?:\\[,;!: ]|\s)*\\?%$")

# Filter reasons, as counted in the report.
TRUNCATED, NO_ANSWER, MALFORMED, REPETITION, NO_REASONING = (
    "truncated", "no_answer", "malformed_answer", "repetition", "no_reasoning")
FILTER_REASONS = (TRUNCATED, NO_ANSWER, MALFORMED, REPETITION, NO_REASONING, PROMPT_TOO_LONG)


@dataclass(frozen=True)
class Extraction:
    answer: str | None
    truncated: bool
    reasoning_words: int


def extract(text: str, finish: str, think: dict | None, response_prefix: str = "") -> Extraction:
    """The final answer of a response (last box after the think span), and what the filters need."""
    text = text[-MAX_SCAN_CHARS:]
    parts = split_response(text, think, response_prefix)
    truncated = finish != "stop" or not parts.think_closed
    answer = last_boxed(parts.answer) if parts.answer else None
    return Extraction(answer=answer, truncated=truncated, reasoning_words=len(parts.thinking.split()))


def repetition_score(text: str, n: int = 10, max_words: int = 20_000) -> float:
    """Share of repeated word n-grams: near 0 for prose and worked solutions, high for loops."""
    words = text.split()[:max_words]
    if len(words) < 4 * n:
        return 0.0
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return 1.0 - len(grams) / total


def compressibility(text: str) -> float:
    raw = text.encode("utf-8", "replace")[:MAX_SCAN_CHARS]
    return len(zlib.compress(raw)) / max(len(raw), 1)


def quality_filters(text: str, extraction: Extraction, *, min_reasoning_words: int = 5) -> list[str]:
    """Reasons to keep a response out of self-generated calibration (empty list: keep it)."""
    reasons = []
    if extraction.truncated:
        reasons.append(TRUNCATED)
    if extraction.answer is None:
        reasons.append(NO_ANSWER)
    elif not extraction.answer.strip() or len(extraction.answer) > MAX_ANSWER_CHARS:
        reasons.append(MALFORMED)
    if repetition_score(text) > 0.3 or (len(text) > 2000 and compressibility(text) < 0.08):
        reasons.append(REPETITION)
    if extraction.reasoning_words < min_reasoning_words:
        reasons.append(NO_REASONING)
    return reasons


def _boxed(expr: str) -> str:
    return "\\boxed{" + expr + "}"


def choice_letter(answer: str) -> str | None:
    """The option letter of a multiple-choice answer: ``B``, ``(B)``, ``\\text{B}``, ``\\mathrm{B}``,
    ``B.`` or ``(B) 4.5 eV`` (the letter, then the option's text). None for anything else, and for
    an answer that names a second option. Linear time: markup is removed, then one anchored match."""
    plain = _CHOICE_MARKUP.sub("", answer)
    match = _CHOICE.match(plain)
    if match is None:
        return None
    rest = plain[match.end():]
    if _PARENTHESIZED_LETTER.search(rest):
        return None
    return match.group(1).upper()


def choice_letters(answer: str) -> frozenset[str] | None:
    """The option letters of a multiple-answer choice: ``ACD``, ``A, C and D``, ``(A)(C)``,
    ``\\text{A,C}``. None for anything else (an option's text, letters beyond D)."""
    plain = _CHOICE_MARKUP.sub("", answer)
    plain = _LETTER_JOINERS.sub("", plain)
    if not plain or not _LETTERS_ONLY.fullmatch(plain):
        return None
    return frozenset(plain.upper())


def _plain_number(answer: str) -> str:
    """What math-verify misreads, removed: a sentence's closing period (``9.``)."""
    answer = answer.strip()
    while answer.endswith(".") or answer.endswith("\\."):
        answer = answer[:-2] if answer.endswith("\\.") else answer[:-1]
        answer = answer.rstrip()
    return answer


# An answer written as an assignment to one variable (x = ..., a_1 = ..., \theta = ...).
_ASSIGNMENT = re.compile(r"^\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?\s*=\s*(?P<value>[^=]+?)\s*$", re.DOTALL)


def _verify(gold: str, predicted: str, seconds: int) -> bool:
    from math_verify import parse, verify

    gold_parsed = parse(_boxed(gold), parsing_timeout=seconds)
    pred_parsed = parse(_boxed(predicted), parsing_timeout=seconds)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=seconds))


def check_answer(gold: str, predicted: str, kind: str, timeout: float) -> bool:
    """Whether `predicted` equals `gold`: a letter match for choices, the same set of letters for a
    multiple-answer choice, math-verify otherwise (gold first).

    A trailing period is dropped first. An answer that assigns to one variable (``x = ...``) is
    also compared by its right side where the gold answer holds no equation. A percent sign is read
    as math-verify reads it; where that fails and either side ends in one, the two are compared
    without it (math-verify takes ``10\\%`` for 10 but not ``-10\\%`` for -10).
    """
    if kind == "choice":
        return choice_letter(predicted) == gold.strip().upper()
    if kind == "letters":  # every correct option and no other (JEEBench's multiple-answer questions)
        return choice_letters(predicted) == frozenset(gold.strip().upper())
    seconds = max(1, int(timeout))
    gold, predicted = _plain_number(gold), _plain_number(predicted)
    if _verify(gold, predicted, seconds):
        return True
    assigned = _ASSIGNMENT.match(predicted)
    if assigned and "=" not in gold and _verify(gold, assigned["value"], seconds):
        return True  # x = \text{Evelyn}: math-verify reads the left side only where the right is text
    bare_gold, bare_predicted = _TRAILING_PERCENT.sub("", gold), _TRAILING_PERCENT.sub("", predicted)
    if (bare_gold, bare_predicted) == (gold, predicted) or not bare_gold or not bare_predicted:
        return False
    return _verify(bare_gold, bare_predicted, seconds)


def _grade_one(job: tuple[str, str, str, float]) -> bool:
    gold, predicted, kind, timeout = job
    return check_answer(gold, predicted, kind, timeout)


def grade_answers(jobs: list[tuple[str, str, str]], timeout: float, workers: int = 0) -> list[str]:
    """Verdicts ('correct', 'incorrect', 'timeout', 'error') for (gold, predicted, kind) triples.

    Each item runs in a pebble worker process with a hard limit of `timeout` seconds: a parse that
    hangs is killed with its process, and only that item is lost.
    """
    if not jobs:
        return []
    from pebble import ProcessPool

    workers = workers or max(1, min(os.cpu_count() or 1, len(jobs) // 64 + 1))
    inner = max(1.0, timeout / 2)  # math-verify's own alarm fires first; pebble's limit is the backstop
    verdicts = []
    with ProcessPool(max_workers=workers) as pool:
        futures = [pool.schedule(_grade_one, args=((g, p, k, inner),), timeout=timeout) for g, p, k in jobs]
        for future in futures:
            try:
                verdicts.append("correct" if future.result() else "incorrect")
            except FutureTimeout:
                verdicts.append("timeout")
            except Exception:  # noqa: BLE001 - a crash on hostile text is a wrong answer, not a failed job
                verdicts.append("error")
    return verdicts


def grade_records(samples: list[dict], gold: dict[str, str], kind_of: dict[str, str], *, think: dict | None,
                  response_prefix: str = "", timeout: float, workers: int) -> list[dict]:
    """Samples with `extracted`, `correct`, `verdict` and `filters` added.

    A sample whose prompt did not fit the model's context (finish ``prompt_too_long``: nothing was
    generated) gets that verdict and filter of its own rather than passing for a truncated answer.
    """
    extractions = [extract(s["text"], s["finish"], think, response_prefix) for s in samples]
    too_long = [s["finish"] == PROMPT_TOO_LONG for s in samples]
    to_check = [i for i, e in enumerate(extractions) if not too_long[i]
                and e.answer is not None and not e.truncated and len(e.answer) <= MAX_ANSWER_CHARS]
    verdicts = grade_answers([(gold[samples[i]["id"]], extractions[i].answer, kind_of[samples[i]["id"]])
                              for i in to_check], timeout, workers)
    verdict_of = dict(zip(to_check, verdicts))
    graded = []
    for index, (sample, extraction) in enumerate(zip(samples, extractions)):
        if too_long[index]:
            graded.append({**sample, "extracted": None, "correct": False, "verdict": PROMPT_TOO_LONG,
                           "filters": [PROMPT_TOO_LONG]})
            continue
        if extraction.truncated:
            verdict = "truncated"
        elif extraction.answer is None:
            verdict = "no_answer"
        else:
            verdict = verdict_of.get(index, "incorrect")
        graded.append({**sample, "extracted": extraction.answer, "correct": verdict == "correct",
                       "verdict": verdict, "filters": quality_filters(sample["text"], extraction)})
    return graded
