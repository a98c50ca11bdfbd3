"""PopQA's score: a generated answer is right if it contains one of the gold answers (any alias),
compared case-insensitively, as the dataset's authors score it (Mallen et al. 2023)."""

from __future__ import annotations

import json


def _answers(doc: dict) -> list[str]:
    answers = doc["possible_answers"]
    return json.loads(answers) if isinstance(answers, str) else list(answers)


def process_results(doc: dict, results: list[str]) -> dict:
    generated = results[0].strip().lower()
    return {"acc": float(any(answer.lower() in generated for answer in _answers(doc)))}
