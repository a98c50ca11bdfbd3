"""Generation: per-request seeds, the HF backend's decode loop, and resumable shards."""

import pytest
import torch

from prunebench.generation import Completion, Request, Sampling, request_seed, run_sharded
from prunebench.generation.hf import HFBackend, prefill_groups, sample_next

ENTRY = {"dtype": "float32", "batch_size": 4, "max_model_len": 512, "system_prompt": None, "chat_template": None,
         "response_prefix": ""}


def test_greedy_and_tiny_top_p_pick_the_argmax():
    logits = torch.tensor([[0.1, 3.0, 0.2, 2.9], [5.0, 0.0, 0.0, 0.0]])
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    assert sample_next(logits, gens, 0.0, 1.0).tolist() == [1, 0]
    assert sample_next(logits, gens, 1.0, 1e-6).tolist() == [1, 0]


def test_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    gen = torch.Generator().manual_seed(0)
    draws = [int(sample_next(logits, [gen], 1.0, 1.0)) for _ in range(4000)]
    freq = [draws.count(i) / len(draws) for i in range(3)]
    assert freq == pytest.approx([0.5, 0.3, 0.2], abs=0.03)
    # top-p 0.6 keeps the two most likely tokens only
    draws = [int(sample_next(logits, [gen], 1.0, 0.6)) for _ in range(2000)]
    assert set(draws) == {0, 1}


def _full_sort_sample(logits, generators, temperature, top_p):
    """Nucleus sampling over the whole sorted vocabulary, the definition the fast path must equal."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs
    cdf = sorted_probs.masked_fill(before >= top_p, 0.0).cumsum(dim=-1)
    draws = torch.stack([torch.rand((), generator=g) for g in generators])
    position = torch.searchsorted(cdf, (draws * cdf[:, -1]).unsqueeze(-1)).clamp(max=cdf.shape[-1] - 1)
    return order.gather(-1, position).squeeze(-1)


@pytest.mark.parametrize("scale", [0.5, 3.0, 8.0])   # flat (full-sort fallback) to peaked (top-k path)
def test_candidate_shortcut_draws_what_a_full_sort_draws(scale):
    logits = torch.randn(8, 5000, generator=torch.Generator().manual_seed(1)) * scale
    for step in range(5):
        ours = sample_next(logits, [torch.Generator().manual_seed(10 * step + i) for i in range(8)], 0.6, 0.95)
        full = _full_sort_sample(logits, [torch.Generator().manual_seed(10 * step + i) for i in range(8)], 0.6, 0.95)
        assert torch.equal(ours, full)


def test_request_seed_is_stable_and_distinct():
    assert request_seed(0, "p1", 0) == request_seed(0, "p1", 0)
    assert len({request_seed(0, "p1", s) for s in range(100)}) == 100
    assert request_seed(0, "p1", 0) != request_seed(1, "p1", 0)


@pytest.fixture(scope="module")
def backend(tiny_model):
    return HFBackend(tiny_model, ENTRY)


def _requests(backend, n=6):
    from prunebench.prompts import build_prompt

    questions = [f"What is {i} plus {i * 7}?" + " Think." * (i % 3) for i in range(n)]
    return [Request(f"q{i}", 0, build_prompt(backend.tokenizer, ENTRY, q, "Answer in a box."), request_seed(0, f"q{i}", 0))
            for i, q in enumerate(questions)]


def test_text_depends_on_the_seed_not_on_the_batch(tiny_model, backend):
    requests = _requests(backend)
    sampling = Sampling(1.0, 0.95, 24)
    together = backend.generate(requests, sampling)
    alone = HFBackend(tiny_model, dict(ENTRY, batch_size=1)).generate(requests, sampling)
    assert [c.text for c in together] == [c.text for c in alone]
    assert all(0 < c.tokens <= 24 for c in together)
    assert {c.finish for c in together} <= {"stop", "length"}
    reseeded = [Request(r.id, r.sample, r.prompt, r.seed + 1) for r in requests]
    assert [c.text for c in backend.generate(reseeded, sampling)] != [c.text for c in together]


def test_prompts_of_very_different_lengths_join_one_batch(tiny_model, backend):
    """Groups prefilled apart, joined, thinned and refilled give what each prompt alone gives."""
    from prunebench.prompts import build_prompt

    questions = ["Add 2 and 3.", "Why? " * 60, "Sum 1 to 4.", "Explain. " * 25, "Hi.", "Go on. " * 40, "7 x 8?"]
    requests = [Request(f"v{i}", 0, build_prompt(backend.tokenizer, ENTRY, q, "Box it."), request_seed(3, f"v{i}", 0))
                for i, q in enumerate(questions)]
    sampling = Sampling(1.0, 0.9, 20)
    mixed = HFBackend(tiny_model, dict(ENTRY, batch_size=3)).generate(requests, sampling)
    alone = HFBackend(tiny_model, dict(ENTRY, batch_size=1)).generate(requests, sampling)
    assert [c.text for c in mixed] == [c.text for c in alone]
    assert [c.finish for c in mixed] == [c.finish for c in alone]


@pytest.mark.parametrize("lengths, expected", [
    ([10, 10, 10], [[0, 1, 2]]),
    ([100, 10, 11, 12], [[1, 2, 3], [0]]),          # the long prompt does not pad the short ones
    ([50, 50, 50, 50], [[0, 1], [2, 3]]),           # at most 100 tokens per call
])
def test_prefill_groups_bound_padding_and_size(lengths, expected):
    assert prefill_groups(lengths, max_tokens=100) == expected


def test_token_limit_is_respected(backend):
    out = backend.generate(_requests(backend, 3), Sampling(1.0, 1.0, 5))
    assert all(c.tokens <= 5 for c in out) and any(c.finish == "length" for c in out)


class Crashing:
    """A backend that dies after a number of shards, as a killed job would."""

    shard_size = 2

    def __init__(self, inner, crash_after):
        self.inner, self.left = inner, crash_after

    def generate(self, requests, sampling):
        if self.left == 0:
            raise KeyboardInterrupt("killed")
        self.left -= 1
        return self.inner.generate(requests, sampling)


def test_killed_run_resumes_without_loss_or_duplication(tmp_path, backend):
    requests = _requests(backend, 7)
    sampling = Sampling(0.7, 0.95, 12)
    kwargs = dict(model_key="tiny", extra=lambda r: {"dataset": "x"})
    reference = run_sharded(lambda: Crashing(backend, 99), requests, sampling, tmp_path / "ref", **kwargs)

    work = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_sharded(lambda: Crashing(backend, 2), requests, sampling, work, **kwargs)
    assert len(list(work.glob("shard-*.jsonl"))) == 2
    calls = []

    def counting():
        calls.append(1)
        return Crashing(backend, 99)

    resumed = run_sharded(counting, requests, sampling, work, **kwargs)
    assert [(r["id"], r["sample"], r["text"]) for r in resumed] == \
        [(r["id"], r["sample"], r["text"]) for r in reference]
    assert len({(r["id"], r["sample"]) for r in resumed}) == len(requests)
    assert len(calls) == 1  # the remaining shards only


def test_changed_requests_discard_old_shards(tmp_path, backend):
    requests = _requests(backend, 4)
    kwargs = dict(model_key="tiny", extra=lambda r: {})
    run_sharded(lambda: Crashing(backend, 99), requests, Sampling(0.7, 0.95, 8), tmp_path, **kwargs)
    out = run_sharded(lambda: Crashing(backend, 99), requests, Sampling(0.7, 0.95, 4), tmp_path, **kwargs)
    assert all(r["tokens"] <= 4 for r in out)


def test_completion_is_a_plain_record():
    assert Completion("x", 1, "stop").finish == "stop"
