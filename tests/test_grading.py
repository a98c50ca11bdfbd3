"""Grading: the answer after the think span, the last box, math-verify equivalence, hostile text."""

import pytest

from prunebench import grading
from prunebench.datasets import last_boxed

THINK = {"start": "<think>", "end": "</think>"}


def grade(text, gold, *, finish="stop", think=None, prefix="", kind="math"):
    sample = {"id": "p", "sample": 0, "text": text, "tokens": len(text.split()), "finish": finish}
    return grading.grade_records([sample], {"p": gold}, {"p": kind}, think=think, response_prefix=prefix,
                                 timeout=10, workers=1)[0]


@pytest.mark.parametrize("text,gold,correct", [
    ("so the answer is \\boxed{\\frac{1}{2}}", "0.5", True),
    ("the result is \\boxed{\\dfrac{3}{4}}.", "\\frac{3}{4}", True),
    ("Therefore \\boxed{5\\text{ cm}}", "5", True),
    ("That is \\boxed{25\\%}", "25", True),
    ("the interval \\boxed{(1, 2]}", "(1,2]", True),
    ("the interval \\boxed{[1, 2]}", "(1,2]", False),
    ("first \\boxed{17} then, correcting myself, \\boxed{18}", "18", True),
    ("first \\boxed{18} then, correcting myself, \\boxed{17}", "18", False),
    ("The answer is 42.", "42", False),  # no box: no answer, however plain the number
    ("\\boxed{1,000}", "1000", True),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", True),
])
def test_math_answers(text, gold, correct):
    result = grade(text, gold)
    assert result["correct"] is correct, result


def test_no_box_is_no_answer_and_filtered():
    result = grade("I think it is probably 12 or so.", "12")
    assert result["verdict"] == "no_answer" and not result["correct"]
    assert grading.NO_ANSWER in result["filters"]


def test_truncated_response_is_incorrect_even_with_right_box():
    result = grade("Step one... \\boxed{12} and then more", "12", finish="length")
    assert result["verdict"] == "truncated" and not result["correct"]
    assert grading.TRUNCATED in result["filters"]


def test_only_the_text_after_the_think_span_counts():
    text = "Maybe \\boxed{7}? No, recount.\n</think>\n\nThe total is \\boxed{8}."
    assert grade(text, "8", think=THINK, prefix="<think>\n")["correct"]
    assert not grade(text, "7", think=THINK, prefix="<think>\n")["correct"]


def test_unclosed_think_span_counts_as_truncated():
    text = "<think>Let me compute: \\boxed{8}"
    result = grade(text, "8", think=THINK)
    assert result["verdict"] == "truncated" and not result["correct"]


@pytest.mark.parametrize("text", ["\\boxed{B}", "\\boxed{\\text{B}}", "\\boxed{(B)}", "\\boxed{ b }"])
def test_choice_letters(text):
    assert grade(text, "B", kind="choice")["correct"]
    assert not grade(text, "C", kind="choice")["correct"]


def test_hostile_text_neither_crashes_nor_hangs():
    nasty = [
        "\\boxed{" + "{" * 5000,  # unbalanced braces
        "\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}",  # deep nesting
        "x" * 1_000_000 + " \\boxed{3}",  # a 1 MB line
        "\\boxed{\\input{/etc/passwd}}",
        "\\boxed{" + "9" * 5000 + "}",  # an enormous box
        "\\boxed{10^{10^{10^{10^{10}}}}}",  # a power tower sympy must not evaluate
        "\x00\x01\\boxed{\udcff}",
    ]
    results = [grade(text, "3") for text in nasty]  # each within the grader's timeout (their cost: bench/)
    assert results[2]["correct"]  # the answer after a huge line is still found
    assert not any(r["correct"] for i, r in enumerate(results) if i != 2)


def test_timeout_kills_only_the_item(monkeypatch):
    verdicts = grading.grade_answers([("1", "1", "math")], timeout=5, workers=1)
    assert verdicts == ["correct"]


def test_last_boxed_balances_braces():
    assert last_boxed("a \\boxed{\\frac{1}{2}} b") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{1} and \\boxed{2}") == "2"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{unclosed") is None
    assert last_boxed("\\boxed 5") is None


def test_repetition_filter_catches_loops_not_solutions():
    loop = "First we add the numbers. " + "So the total is 12 and we add 3. " * 60 + "\\boxed{15}"
    honest = ("Ava has 12 apples. She buys 3 more, so she has 12 + 3 = 15. Then she gives 4 away, leaving "
              "15 - 4 = 11. Each friend gets 11 / 1 = 11. The final answer is \\boxed{11}.") * 1
    extraction = grading.extract(loop, "stop", None)
    assert grading.REPETITION in grading.quality_filters(loop, extraction)
    assert grading.quality_filters(honest, grading.extract(honest, "stop", None)) == []


def test_no_reasoning_filter():
    text = "\\boxed{4}"
    assert grading.NO_REASONING in grading.quality_filters(text, grading.extract(text, "stop", None))


@pytest.mark.parametrize("text,gold,correct", [
    ("so \\boxed{9.}", "9", True),             # a sentence's period inside the box
    ("so \\boxed{9.} ", "8", False),
    ("a drop of \\boxed{-10\\%}", "-10", True),  # math-verify alone rejects this one
    ("a drop of \\boxed{-10\\%}", "10", False),
    ("a rise of \\boxed{10\\%}", "10", True),
    ("\\boxed{-10}", "-10\\%", True),
    ("\\boxed{-12\\%}", "-10", False),
])
def test_periods_and_percent_signs(text, gold, correct):
    assert grade(text, gold)["correct"] is correct


@pytest.mark.parametrize("text,gold,correct", [
    ("\\boxed{\\mathrm{A}}", "A", True),
    ("\\boxed{(A) 4.5 eV}", "A", True),
    ("\\boxed{\\text{(C) } 4.5\\,\\mathrm{eV}}", "C", True),
    ("\\boxed{D.}", "D", True),
    ("\\boxed{(A) or (B)}", "A", False),        # two options named: no answer of one letter
    ("\\boxed{All of them}", "A", False),
    ("\\boxed{AB}", "A", False),
])
def test_more_choice_spellings(text, gold, correct):
    assert grade(text, gold, kind="choice")["correct"] is correct


def test_choice_parsing_reads_hostile_boxes():
    """Their cost grows linearly with their length: bench/grading_scaling.py measures it."""
    answers = (" " * 4000 + "B", "(" * 4000 + "B", "\\text{" * 2000 + "B" + "}" * 2000, "{ " * 4000)
    # markup and spaces removed, a letter is left; unbalanced parentheses or braces are no option letter
    assert [grading.choice_letter(answer) for answer in answers] == ["B", None, "B", None]


@pytest.mark.parametrize("tail", ["\\boxed", "\\fbox", " and \\boxed{ never closed", "\\boxed 5"])
def test_a_stray_box_after_the_answer_keeps_the_answer(tail):
    result = grade("The total is \\boxed{12}. " + tail, "12")
    assert result["correct"] and result["extracted"] == "12", result


def test_last_box_survives_many_unclosed_boxes():
    """Linear in the text's length: bench/grading_scaling.py measures it."""
    assert last_boxed("\\boxed{7} " + "\\boxed{" * 40_000) == "7"


def test_a_prompt_too_long_has_its_own_verdict():
    result = grade("", "3", finish="prompt_too_long")
    assert result["verdict"] == "prompt_too_long" and result["filters"] == ["prompt_too_long"]
    assert not result["correct"]


def test_metrics_have_no_nan():
    import json

    from prunebench.evaluation import metrics

    single = [{"id": "p", "correct": False, "tokens": 5, "finish": "stop", "verdict": "incorrect"}]
    out = metrics(single)
    assert out["stderr"] is None and out["mean_tokens_correct"] is None
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("answer,right", [("ABD", True), ("A, B and D", True), ("(A)(B)(D)", True),
                                          ("\\text{A,B,D}", True), ("B, D, A", True), ("AB", False),
                                          ("ABCD", False), ("ABE", False), ("A: the radius", False), ("", False)])
def test_multiple_answer_letters(answer, right):
    assert grading.check_answer("ABD", answer, "letters", timeout=5) is right


def test_jeebench_problems_carry_their_grading(mirror):
    from prunebench import datasets

    records, _ = datasets.load("jeebench", mirror)
    assert len(records) == 515 and len({r["id"] for r in records}) == 515
    kinds = {r["meta"]["type"]: r["meta"]["kind"] for r in records}
    assert kinds == {"MCQ": "choice", "MCQ(multiple)": "letters", "Integer": "math", "Numeric": "math"}
    multiple = next(r for r in records if r["meta"]["type"] == "MCQ(multiple)")
    problem = {**multiple, "dataset": "jeebench"}
    assert datasets.kind_of(problem) == "letters" and "letters of all correct options" in datasets.instruction_of(problem)
    assert datasets.kind_of({"dataset": "gsm8k", "meta": {}}) == "math"


@pytest.mark.parametrize("gold, answer, right", [
    ("Evelyn", r"x = \text{Evelyn}", True),   # math-verify alone reads only the left side, 'x ='
    ("Evelyn", r"\text{Evelyn}", True),
    ("Evelyn", r"x = \text{Bob}", False),
    ("5", r"\theta = 5", True),
    ("3", "x = 3 = y", False),                # not one assignment: left to math-verify
    ("y = 2x", "y = 2x", True),
])
def test_an_answer_assigned_to_a_variable_is_graded_by_its_value(gold, answer, right):
    assert grading.check_answer(gold, answer, "math", timeout=5) is right
