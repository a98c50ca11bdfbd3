"""RESP (pruning/resp.py) against the reference's computation (uncc-efficient-ai/RESP,
data_refresh_GISP.global_grad_sp_v2) done here step by step on a tiny model: the decode-only loss
through transformers' own labels (-100 on the prompt), every weight's |W * grad / n| summed per head
and channel as the reference reshapes them, its normalisation, protected layers, one pool and its
kthvalue threshold; then the whole iterative prune: the units it removes are zero and nothing else
is, its sparsity is counted from the zeros, traces are regenerated at the milestones, and a killed
run resumes to the same weights without redoing its finished steps."""

from __future__ import annotations

import json

import pytest
import torch

from prunebench.io import InputError
from prunebench.pruning import resp
from prunebench.pruning.driver import RunCheckpoints
from prunebench.pruning.spec import parse_method
from .conftest import load_fp32


@pytest.fixture(scope="module")
def deep_model(tmp_path_factory):
    """Ten blocks (the first and the last never pruned: int(0.1 L) = 1); 4 query heads in 2 KV groups."""
    from .conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("resp") / "model", layers=10, seed=5)


def _traces(count=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [resp.Trace(torch.randint(0, 300, (7 + i,), generator=g).tolist(),
                       torch.randint(0, 300, (12 - i,), generator=g).tolist(), f"p{i}", {"sample": 0})
            for i in range(count)]


def _reference_scores(model, traces, ratio):
    """The reference's importance and mask, written as its code computes them (bf16 aside)."""
    model.zero_grad(set_to_none=True)
    for trace in traces:
        ids = trace.ids.unsqueeze(0)
        labels = ids.clone()
        labels[0, :len(trace.prompt)] = -100
        (model(ids, labels=labels).loss * 1).backward()   # batch 1, summed
    config = model.config
    head_dim = config.hidden_size // config.num_attention_heads
    layers = model.model.layers
    n = len(traces)
    mha, mlp = [], []
    for x, layer in enumerate(layers):
        attn, ffn = layer.self_attn, layer.mlp
        head = 0
        for name, linear in (("q", attn.q_proj), ("k", attn.k_proj), ("v", attn.v_proj), ("o", attn.o_proj)):
            metric = (linear.weight * (linear.weight.grad / n)).abs()
            if name == "o":
                metric = metric.t()
            if name in ("k", "v"):   # grouped-query attention: keys and values are not a head's own
                continue
            head = head + metric.reshape(metric.shape[0] // head_dim, -1).sum(1)
        channel = 0
        for name, linear in (("u", ffn.up_proj), ("g", ffn.gate_proj), ("d", ffn.down_proj)):
            metric = (linear.weight * (linear.weight.grad / n)).abs()
            if name == "d":
                metric = metric.t()
            channel = channel + metric.sum(1)
        head = head / (4 * head_dim * config.hidden_size)
        channel = channel / (config.intermediate_size * 3)
        if x not in range(int(len(layers) * 0.1), len(layers) - 1):
            head, channel = torch.full_like(head, torch.inf), torch.full_like(channel, torch.inf)
        mha.append(head.detach())
        mlp.append(channel.detach())
    metrics = torch.cat([torch.cat(mha), torch.cat(mlp)])
    metrics = metrics + torch.abs(torch.min(metrics))
    N = metrics.numel()
    k = N - int(N * (1 - ratio)) + 1
    threshold, _ = torch.kthvalue(metrics, k=k)
    mask = metrics <= threshold
    heads = config.num_attention_heads * len(layers)
    return (torch.stack(mha), torch.stack(mlp),
            mask[:heads].reshape(len(layers), -1), mask[heads:].reshape(len(layers), -1))


def test_importance_and_mask_equal_the_references(deep_model):
    traces = _traces()
    model = load_fp32(deep_model)
    ref_heads, ref_channels, ref_head_mask, ref_channel_mask = _reference_scores(model, traces, 0.3)
    model = load_fp32(deep_model)
    layers = model.model.layers
    resp.decode_gradients(model, traces, resp.scored_weights(layers))
    heads, channels = resp.importance(layers, 16, 64, len(traces))
    assert torch.equal(torch.isinf(heads), torch.isinf(ref_heads)) and torch.isinf(heads[[0, 9]]).all()
    finite = ~torch.isinf(heads)
    assert torch.allclose(heads[finite], ref_heads[finite], rtol=1e-5, atol=0)
    assert torch.allclose(channels[~torch.isinf(channels)], ref_channels[~torch.isinf(ref_channels)], rtol=1e-5, atol=0)
    head_mask, channel_mask = resp.removed_at(heads, channels, 0.3)
    assert torch.equal(head_mask, ref_head_mask) and torch.equal(channel_mask, ref_channel_mask)
    assert 0 < int(head_mask.sum()) + int(channel_mask.sum()) and not head_mask[[0, 9]].any()
    assert model.lm_head.weight.grad is None   # only the scored projections' gradients are computed


def _with_biases(model):
    """The tiny model with seeded nonzero biases (initialised at zero), so that a zero is a removed weight."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    return model


def _zero_share(model, dense_params):
    """The decoder-block parameters that are zero, as a share (the random weights have no zeros)."""
    zeros = sum(int((p == 0).sum()) for p in model.model.layers.parameters())
    return zeros / dense_params


def test_prune_zeroes_whole_units_to_the_target_and_regenerates_at_milestones(deep_model, tmp_path):
    model = _with_biases(load_fp32(deep_model))
    dense = _with_biases(load_fp32(deep_model))
    assert _zero_share(dense, 1) == 0
    dense_params = sum(p.numel() for p in dense.model.layers.parameters())
    calls = []

    def regenerate(m, current, round_):
        calls.append((round_, [len(t.response) for t in current]))
        return [list(reversed(t.response)) for t in current]

    record = resp.prune(model, _traces(), parse_method("resp-0.3"), layers_path="model.layers", log=lambda *_: None,
                        regenerate=regenerate, resp_iterations=40, resp_final_ratio=0.7,
                        resp_milestones=[0.1, 0.2, 0.3, 0.4])
    assert record["overall_sparsity"] == pytest.approx(_zero_share(model, dense_params), abs=1e-12)
    assert abs(record["overall_sparsity"] - 0.3) < 0.05 and record["kept_dense_layers"] == [0, 9]
    # regenerated once per milestone below the target (0.1, 0.2), by the model pruned so far
    assert [c[0] for c in calls] == [1, 2] and [r["milestones"] for r in record["regenerations"]] == [[0.1], [0.2]]
    assert all(r["at_sparsity"] >= r["milestones"][-1] for r in record["regenerations"])
    for index, gone in record["removed"].items():
        layer, reference = model.model.layers[int(index)], dense.model.layers[int(index)]
        assert int(index) not in (0, 9)
        for h in gone["heads"]:
            rows = slice(16 * h, 16 * (h + 1))
            assert not layer.self_attn.q_proj.weight[rows].any() and not layer.self_attn.o_proj.weight[:, rows].any()
        for c in gone["channels"]:
            assert not layer.mlp.gate_proj.weight[c].any() and not layer.mlp.down_proj.weight[:, c].any()
        kept = [c for c in range(128) if c not in gone["channels"]]
        assert torch.equal(layer.mlp.up_proj.weight[kept], reference.mlp.up_proj.weight[kept])
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight, dense.model.layers[0].mlp.up_proj.weight)
    # the steps' ratios are the reference's linear schedule
    ratios = resp.schedule(40, 0.7)
    assert [s["ratio"] for s in record["steps"]] == ratios[:len(record["steps"])]


def test_a_killed_prune_resumes_to_the_same_weights_without_redoing_steps(deep_model, tmp_path, monkeypatch):
    regenerate = lambda m, current, round_: [list(reversed(t.response)) for t in current]  # noqa: E731
    options = dict(layers_path="model.layers", log=lambda *_: None, regenerate=regenerate, resp_iterations=30,
                   resp_final_ratio=0.7, resp_milestones=[0.1])
    whole = load_fp32(deep_model)
    expected = resp.prune(whole, _traces(), parse_method("resp-0.2"), **options)

    computed = []
    original = resp.decode_gradients

    def counting(*args):
        computed.append(1)
        if len(computed) == 4:
            raise KeyboardInterrupt   # the job is killed in its fourth step
        return original(*args)

    monkeypatch.setattr(resp, "decode_gradients", counting)
    folder = tmp_path / "parts"
    with pytest.raises(KeyboardInterrupt):
        resp.prune(load_fp32(deep_model), _traces(), parse_method("resp-0.2"),
                   checkpoints=RunCheckpoints(folder, "k", print), **options)
    assert len(list(folder.glob("resp-step-*.json"))) == 3
    computed.clear()
    monkeypatch.setattr(resp, "decode_gradients", original)
    again = load_fp32(deep_model)
    monkeypatch.setattr(resp, "decode_gradients", lambda *a: (computed.append(1), original(*a))[1])
    resumed = resp.prune(again, _traces(), parse_method("resp-0.2"), checkpoints=RunCheckpoints(folder, "k", print),
                         **options)
    assert len(computed) == len(expected["steps"]) - 3
    assert resumed["removed"] == expected["removed"] and resumed["regenerations"] == expected["regenerations"]
    for a, b in zip(again.parameters(), whole.parameters()):
        assert torch.equal(a, b)


def test_sparsity_counts_whole_units_and_the_kept_layers_follow_the_reference():
    shapes = [type("S", (), {"per_head": 10, "per_channel": 1})() for _ in range(2)]
    heads = torch.tensor([[True, False], [False, False]])
    channels = torch.zeros(2, 4, dtype=torch.bool)
    assert resp.sparsity(heads, channels, shapes, 100) == pytest.approx(0.1)
    assert resp.protected_layers(24) == {0, 1, 23} and resp.protected_layers(10) == {0, 9}


def test_prune_refuses_a_calibration_set_that_is_not_self_generated(tmp_path, tiny_model, capsys):
    """The prune command splits each trace at its problem's prompt: a C4 set is refused by name and
    line before the model loads, and nothing is written."""
    from prunebench.cli import main
    from prunebench.io import write_jsonl

    calibration = tmp_path / "c4.jsonl"
    write_jsonl(calibration, [{"index": 0, "source": "c4", "problem_id": None, "input_ids": [1, 2, 3, 4]}])
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, [{"id": "p", "question": "2+2?", "answer": "4"}])
    out = tmp_path / "pruned"
    assert main(["prune", "--model", str(tiny_model), "--calibration", str(calibration), "--method", "resp-0.2",
                 "--problems", str(problems), "--out", str(out)]) == 2
    assert f"{calibration}: sequence 1: not a self-generated trace" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "pruned.parts").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c4.jsonl", "problems.jsonl"]


def test_the_prune_command_splits_traces_at_their_prompts_and_regenerates_them(tmp_path, deep_model):
    """`prunebench prune --method resp-0.2` on a self-generated set: the prompts rebuilt from the
    problems begin every sequence, the pruned model answers them again (the HF backend over the
    model being pruned), and the record says where and with how many tokens."""
    from prunebench import datasets
    from prunebench.cli import main
    from prunebench.io import read_json, write_jsonl
    from prunebench.models import default_entry, load_tokenizer
    from prunebench.prompts import build_prompt, conversation

    tokenizer, entry = load_tokenizer(deep_model), default_entry()
    pool, _ = datasets.load("wordproblems_train", None)
    chosen = datasets.subset(pool, 3, 0, "wordproblems_train")
    instruction = datasets.get("wordproblems_train").instruction
    records = []
    for index, problem in enumerate(chosen):
        text = conversation(tokenizer, entry, problem["question"], instruction, f"So the answer is \\boxed{{{index}}}.")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:192]
        assert ids[:len(tokenizer(build_prompt(tokenizer, entry, problem["question"], instruction),
                                  add_special_tokens=False)["input_ids"])]
        records.append({"index": index, "source": "wordproblems_train", "problem_id": problem["id"], "sample": 0,
                        "input_ids": ids})
    write_jsonl(tmp_path / "sgr.jsonl", records)
    write_jsonl(tmp_path / "problems.jsonl", chosen)
    out = tmp_path / "pruned"
    assert main(["prune", "--model", str(deep_model), "--calibration", str(tmp_path / "sgr.jsonl"), "--method",
                 "resp-0.2", "--problems", str(tmp_path / "problems.jsonl"), "--resp-iterations", "20",
                 "--resp-milestones", "0.1", "--trace-tokens", "192", "--out", str(out),
                 "--record", str(tmp_path / "record.json")]) == 0
    record = read_json(tmp_path / "record.json")
    assert record["family"] == "width" and record["masked"] and 0.1 < record["overall_sparsity"] < 0.3
    assert [r["milestones"] for r in record["regenerations"]] == [[0.1]]
    assert record["regenerations"][0]["mean_response_tokens"] > 0
    assert record["provenance"]["params"]["traces"] == {"temperature": 0.6, "top_p": 0.95, "seed": 0,
                                                        "trace_tokens": 192}
    assert (out / "model.safetensors").exists() and not (tmp_path / "pruned.parts").exists()
