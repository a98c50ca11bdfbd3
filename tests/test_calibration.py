"""Calibration recipes: eq. 1, difficulty bands, tau, think-span removal, and what each recipe selects."""

import pytest

from prunebench import calibration as cal
from prunebench.prompts import split_response, without_thinking

THINK = {"start": "<think>", "end": "</think>"}


# ---------------------------------------------------------------- eq. 1

def test_median_fits():
    # lengths sorted: 100 (i=2), 200 (i=0), 300 (i=3), 400 (i=1); floor(4/2) = index 2 of the order -> 300
    assert cal.select_by_length([200, 400, 100, 300], budget=1000) == (3, "median fits")


def test_median_of_odd_count_is_the_middle():
    assert cal.select_by_length([50, 10, 30], budget=1000)[0] == 2


def test_median_too_long_takes_longest_that_fits():
    index, case = cal.select_by_length([200, 400, 100, 300], budget=250)
    assert index == 0 and case.startswith("median too long")


def test_nothing_fits_takes_shortest():
    index, case = cal.select_by_length([200, 400, 150, 300], budget=100)
    assert index == 2 and case.startswith("nothing fits")


def test_single_candidate_and_ties():
    assert cal.select_by_length([500], budget=1000)[0] == 0
    assert cal.select_by_length([500], budget=10)[0] == 0
    assert cal.select_by_length([7, 7, 7, 7], budget=100)[0] == 2  # ties keep their order


def test_select_needs_candidates():
    with pytest.raises(ValueError):
        cal.select_by_length([], budget=10)


# ---------------------------------------------------------------- bands and ratios

@pytest.mark.parametrize("c,band", [(1.0, "easy"), (0.75, "medium"), (0.51, "medium"), (0.5, "hard"),
                                    (0.25, "hard"), (0.0, "hard")])
def test_difficulty_bands(c, band):
    assert cal.difficulty_band(c) == band


def test_correctness_ratio():
    assert cal.correctness_ratio([{"correct": True}, {"correct": False}, {"correct": True}, {"correct": True}]) == 0.75


def test_choose_is_seeded_and_keeps_order():
    items = list(range(100))
    a = cal.choose(items, 10, seed=1, salt="x")
    assert a == cal.choose(items, 10, seed=1, salt="x")
    assert a != cal.choose(items, 10, seed=2, salt="x")
    assert a == sorted(a)
    assert cal.choose(items[:5], 10, seed=1, salt="x") == items[:5]


# ---------------------------------------------------------------- think spans

def test_split_with_think_tags_and_prefix():
    parts = split_response("reasoning here\n</think>\n\nSo \\boxed{3}.", THINK, "<think>\n")
    assert parts.thinking == "reasoning here" and parts.answer == "So \\boxed{3}." and parts.think_closed


def test_without_thinking_keeps_an_empty_span_and_the_answer():
    text = "long reasoning\n</think>\n\nThe answer is \\boxed{3}."
    assert without_thinking(text, THINK, "<think>\n") == "\n</think>\n\nThe answer is \\boxed{3}."
    assert without_thinking("<think>r</think>A \\boxed{1}", THINK, "") == "<think>\n</think>\n\nA \\boxed{1}"


def test_without_thinking_for_models_without_tags_keeps_the_final_line():
    text = "Step 1: 2 + 2 = 4.\nStep 2: 4 + 1 = 5.\nSo the answer is \\boxed{5}."
    assert without_thinking(text, None) == "So the answer is \\boxed{5}."


# ---------------------------------------------------------------- recipes on a real tokenizer

@pytest.fixture(scope="module")
def ctx_factory(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    entry = {"think": None, "response_prefix": "", "system_prompt": None, "chat_template": None}

    def make(graded, problems, sequences=8, max_length=256):
        return cal.Context(tokenizer=tokenizer, entry=entry, sequences=sequences, max_length=max_length, seed=0,
                           problems=problems, graded=graded, instructions={d: "Solve." for d in problems})
    return make


def _pool():
    """Four problems: p0 easy (4/4), p1 medium (3/4), p2 hard (1/4), p3 never solved."""
    samples = []
    truth = {"p0": [1, 1, 1, 1], "p1": [0, 1, 1, 1], "p2": [0, 0, 1, 0], "p3": [0, 0, 0, 0]}
    for pid, flags in truth.items():
        for k, ok in enumerate(flags):
            text = f"Work for {pid} sample {k}. " + "step. " * (5 + 10 * k) + f"\\boxed{{{k}}}"
            samples.append({"id": pid, "sample": k, "text": text, "correct": bool(ok), "filters": []})
    problems = {"src": [{"id": p, "question": f"Question {p}?", "answer": "1"} for p in truth]}
    return {"src": samples}, problems


def test_sgr_takes_first_correct_response(ctx_factory):
    graded, problems = _pool()
    seqs = cal.build(ctx_factory(graded, problems), "sgr", {"type": "sgr"})
    chosen = {s.problem_id: s.sample for s in seqs}
    assert chosen == {"p0": 0, "p1": 1, "p2": 2}


def test_sgr_skips_filtered_responses(ctx_factory):
    graded, problems = _pool()
    graded["src"][0]["filters"] = ["repetition"]  # p0's first correct response is filtered
    seqs = cal.build(ctx_factory(graded, problems), "sgr", {"type": "sgr"})
    assert {s.problem_id: s.sample for s in seqs}["p0"] == 1


@pytest.mark.parametrize("tau,expected", [(1.0, {"p0", "p1", "p2"}), (0.75, {"p1", "p2"}), (0.5, {"p2"}),
                                          (0.25, {"p2"})])
def test_ssgr_tau_filter(ctx_factory, tau, expected):
    graded, problems = _pool()
    seqs = cal.build(ctx_factory(graded, problems), "ssgr", {"type": "ssgr", "tau": tau})
    assert {s.problem_id for s in seqs} == expected


def test_ssgr_picks_median_length_correct_response(ctx_factory):
    graded, problems = _pool()
    seqs = cal.build(ctx_factory(graded, problems), "ssgr", {"type": "ssgr", "tau": 0.75})
    by_problem = {s.problem_id: s for s in seqs}
    # p1's correct responses are samples 1, 2, 3 with increasing length: the median is sample 2
    assert by_problem["p1"].sample == 2 and "median fits" in by_problem["p1"].why
    assert "c=0.75" in by_problem["p1"].why and "(medium)" in by_problem["p1"].why


def test_ssgr_respects_the_budget(ctx_factory):
    graded, problems = _pool()
    ctx = ctx_factory(graded, problems, max_length=80)
    seqs = cal.build(ctx, "ssgr", {"type": "ssgr", "tau": 0.75})
    p1 = {s.problem_id: s for s in seqs}["p1"]
    assert p1.sample in (1, 2) and all(len(s.input_ids) <= 80 for s in seqs)


def test_pretraining_windows_have_exact_length(ctx_factory):
    docs = {"corpus": [{"id": "d0", "text": "short"}, {"id": "d1", "text": " ".join(["word"] * 400)}]}
    seqs = cal.build(ctx_factory({}, docs, sequences=5, max_length=64), "c4", {"type": "pretraining",
                                                                              "datasets": ["corpus"]})
    assert len(seqs) == 5 and all(len(s.input_ids) == 64 and s.problem_id == "d1" for s in seqs)


def test_pretraining_without_long_documents_is_a_clear_error(ctx_factory):
    from prunebench.io import InputError

    docs = {"corpus": [{"id": "d0", "text": "short"}]}
    with pytest.raises(InputError, match="too few documents"):
        cal.build(ctx_factory({}, docs, sequences=2, max_length=64), "c4", {"type": "pretraining",
                                                                             "datasets": ["corpus"]})


def test_gold_uses_solutions_in_chat_format(ctx_factory):
    problems = {"gold": [{"id": f"g{i}", "question": f"What is {i}+1?", "answer": str(i + 1),
                          "solution": f"{i}+1={i + 1}. \\boxed{{{i + 1}}}"} for i in range(20)]}
    ctx = ctx_factory({}, problems, sequences=4)
    seqs = cal.build(ctx, "mathr", {"type": "gold", "datasets": ["gold"]})
    assert len(seqs) == 4
    text = ctx.tokenizer.decode(seqs[0].input_ids)
    assert "<|im_start|>user" in text and "<|im_start|>assistant" in text and text.endswith("<|im_end|>")


@pytest.mark.parametrize("band,expected", [("easy", {"p0"}), ("medium", {"p1"}), ("hard", {"p2"})])
def test_difficulty_recipe_keeps_one_band(ctx_factory, band, expected):
    graded, problems = _pool()
    seqs = cal.build(ctx_factory(graded, problems), band, {"type": "difficulty", "band": band})
    assert {s.problem_id for s in seqs} == expected and all(f"({band})" in s.why for s in seqs)


@pytest.mark.parametrize("pick,p0,p1", [("short", 0, 1), ("medium", 2, 2), ("long", 3, 3)])
def test_length_recipe_picks_by_length(ctx_factory, pick, p0, p1):
    # longer sample index = longer response; p0's correct samples are 0-3, p1's 1-3, p2's only 2
    graded, problems = _pool()
    seqs = cal.build(ctx_factory(graded, problems, max_length=1024), pick, {"type": "length", "pick": pick})
    chosen = {s.problem_id: s.sample for s in seqs}
    assert chosen == {"p0": p0, "p1": p1, "p2": 2}


def test_length_recipe_random_is_seeded_and_among_correct(ctx_factory):
    graded, problems = _pool()
    ctx = ctx_factory(graded, problems, max_length=1024)
    first = cal.build(ctx, "random", {"type": "length", "pick": "random"})
    again = cal.build(ctx, "random", {"type": "length", "pick": "random"})
    assert [(s.problem_id, s.sample) for s in first] == [(s.problem_id, s.sample) for s in again]
    correct = {(s["id"], s["sample"]) for s in graded["src"] if s["correct"]}
    assert all((s.problem_id, s.sample) in correct for s in first)


def test_correctness_recipe_true_and_false_samples(ctx_factory):
    graded, problems = _pool()
    graded["src"][4]["filters"] = ["no_answer"]  # p1's only wrong response has no final answer
    ctx = ctx_factory(graded, problems)
    right = {s.problem_id: s.sample for s in cal.build(ctx, "true", {"type": "correctness", "correct": True})}
    wrong = {s.problem_id: s.sample for s in cal.build(ctx, "false", {"type": "correctness", "correct": False})}
    assert right == {"p0": 0, "p1": 1, "p2": 2}
    assert wrong == {"p2": 0, "p3": 0}  # p0 is never wrong; p1's wrong response is filtered


def test_responses_recipe_takes_each_problems_first_response_correct_or_not(ctx_factory):
    """RESP's traces: every problem, its sample 0, whatever its grade and filters."""
    graded, problems = _pool()
    graded["src"][0]["filters"] = ["no_answer"]
    seqs = cal.build(ctx_factory(graded, problems), "traces", {"type": "responses"})
    assert sorted((s.problem_id, s.sample) for s in seqs) == [("p0", 0), ("p1", 0), ("p2", 0), ("p3", 0)]
    by_id = {(g["id"], g["sample"]): g for g in graded["src"]}
    assert {bool(by_id[(s.problem_id, 0)]["correct"]) for s in seqs} == {True, False}


def test_recipe_max_length_overrides_the_calibration_length(ctx_factory):
    docs = {"corpus": [{"id": "d1", "text": " ".join(["word"] * 400)}]}
    seqs = cal.build(ctx_factory({}, docs, sequences=2, max_length=64), "c4-128",
                     {"type": "pretraining", "datasets": ["corpus"], "max_length": 128})
    assert [len(s.input_ids) for s in seqs] == [128, 128]


def test_recipe_sequences_override_the_calibration_size(ctx_factory):
    docs = {"corpus": [{"id": "d1", "text": " ".join(["word"] * 400)}]}
    spec = {"type": "pretraining", "datasets": ["corpus"], "sequences": 5, "max_length": 32}
    seqs = cal.build(ctx_factory({}, docs, sequences=2, max_length=64), "c4-5", spec)
    assert [len(s.input_ids) for s in seqs] == [32] * 5


def test_recipe_missing_its_parameter_is_named():
    from prunebench.config import validate
    from prunebench.io import InputError

    with pytest.raises(InputError, match=r"recipe_definitions\.hard: 'band' is a required property"):
        validate({"models": {"m": {"source": {"path": "/x"}}},
                  "calibration": {"recipe_definitions": {"hard": {"type": "difficulty"}, "c4": {"type": "pretraining", "datasets": ["c4"]}}, "recipes": ["c4"]}})


def test_graded_sample_of_an_unknown_problem_is_named(ctx_factory):
    from prunebench.io import InputError

    graded, problems = _pool()
    with pytest.raises(InputError, match="problem 'p0', which no --data file holds"):
        cal.build(ctx_factory(graded, {"src": []}), "sgr", {"type": "sgr"})


def test_the_pool_sources_order_does_not_depend_on_the_config_mapping():
    from prunebench import calibration

    assert calibration.needs({"type": "ssgr"}, ["wordproblems_train", "gsm8k_train"]) == \
        calibration.needs({"type": "ssgr"}, ["gsm8k_train", "wordproblems_train"]) == \
        (["gsm8k_train", "wordproblems_train"], ["gsm8k_train", "wordproblems_train"])
