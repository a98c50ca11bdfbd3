"""Depth pruning against independent computations on a tiny model: removed blocks behave as
skipped blocks, ShortGPT's influence is the cosine formula, SLEB's first choice is the brute-force
best, and a pruned checkpoint reloads in a fresh process and generates."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from prunebench.pruning import depth

from .conftest import load_fp32, random_sequences, reload_and_generate

LAYERS = "model.layers"


@pytest.fixture(scope="module")
def deep_model(tmp_path_factory):
    from .conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("deep") / "model", layers=5)




@contextlib.contextmanager
def _as_identity(model, skipped):
    """The reference: the dense model with the skipped blocks' outputs replaced by their inputs."""
    def identity(module, args, kwargs, output):
        h_in = args[0] if args else kwargs["hidden_states"]
        return (h_in, *output[1:]) if isinstance(output, tuple) else h_in

    layers = depth.decoder_layers(model, LAYERS)
    handles = [layers[i].register_forward_hook(identity, with_kwargs=True) for i in skipped]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _perplexity_reference(model, calibration, skipped):
    with _as_identity(model, skipped), torch.no_grad():
        losses = [torch.nn.functional.cross_entropy(model(ids[None]).logits[0, :-1], ids[1:], reduction="sum")
                  for ids in calibration]
    return math.exp(float(sum(losses)) / sum(len(ids) - 1 for ids in calibration))


def test_a_model_with_blocks_removed_computes_the_dense_model_with_them_skipped(deep_model):
    dense, pruned = load_fp32(deep_model), load_fp32(deep_model)
    depth.remove_blocks(pruned, [1, 3], LAYERS)
    assert pruned.config.num_hidden_layers == 3 and len(pruned.config.layer_types) == 3
    assert [layer.self_attn.layer_idx for layer in pruned.model.layers] == [0, 1, 2]
    ids = random_sequences(1, 24, 0)[0][None]
    with _as_identity(dense, [1, 3]), torch.no_grad():
        expected = dense(ids).logits
        expected_tokens = dense.generate(ids, max_new_tokens=8, do_sample=False)
    with torch.no_grad():
        assert torch.equal(pruned(ids).logits, expected)
        assert torch.equal(pruned.generate(ids, max_new_tokens=8, do_sample=False), expected_tokens)  # KV cache
    with depth.skipping(dense, {1, 3}, LAYERS), torch.no_grad():
        assert torch.equal(dense(ids, use_cache=False).logits, expected)
    assert len(dense.model.layers) == 5  # restored


def test_removing_every_block_or_an_unknown_one_is_refused(deep_model):
    model = load_fp32(deep_model)
    for removed in ([0, 1, 2, 3, 4], [7]):
        with pytest.raises(ValueError, match="cannot remove"):
            depth.remove_blocks(model, removed, LAYERS)
    assert len(model.model.layers) == 5


def test_influence_on_hand_built_hidden_states():
    h_in = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    h_out = torch.tensor([[0.0, 5.0], [0.0, 1.0], [-1.0, -1.0]])  # cos 0, 1, -1
    assert depth.influence(h_in, h_out) == (pytest.approx(1.0 + 0.0 + 2.0), 3)


def test_shortgpt_scores_equal_the_cosine_over_the_models_hidden_states(deep_model):
    model = load_fp32(deep_model)
    calibration = random_sequences(3, 24, 0)
    scores = depth.block_influence(model, calibration, LAYERS)
    sums, tokens = [0.0] * 5, 0
    captured = {}
    hooks = [layer.register_forward_hook(lambda m, a, k, o, i=i: captured.__setitem__(i, (k.get("hidden_states", a[0] if a else None), o)),
                                         with_kwargs=True) for i, layer in enumerate(model.model.layers)]
    with torch.no_grad():
        for ids in calibration:
            model(ids[None], use_cache=False)
            for i, (h_in, h_out) in captured.items():
                h_out = h_out[0] if isinstance(h_out, tuple) else h_out
                a, b = h_in[0].double(), h_out[0].double()
                sums[i] += float((1 - (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))).sum())
            tokens += len(ids)
    for hook in hooks:
        hook.remove()
    assert scores == pytest.approx([s / tokens for s in sums], rel=1e-5)
    chosen, record = depth.choose_blocks("shortgpt", model, calibration, 2, LAYERS)
    assert chosen == sorted(range(5), key=lambda i: scores[i])[:2]
    assert record["block_influence"] == pytest.approx(scores)


def test_sleb_first_choice_is_the_brute_force_lowest_perplexity(deep_model):
    model = load_fp32(deep_model)
    calibration = random_sequences(3, 24, 1)
    brute = {i: _perplexity_reference(model, calibration, [i]) for i in range(5)}
    chosen, record = depth.choose_blocks("sleb", model, calibration, 2, LAYERS, log=lambda *_: None)
    assert chosen[0] == min(brute, key=brute.get)
    assert {int(k): v for k, v in record["perplexity_per_round"][0].items()} == pytest.approx(brute, rel=1e-5)
    second = {i: _perplexity_reference(model, calibration, [chosen[0], i]) for i in range(5) if i != chosen[0]}
    assert chosen[1] == min(second, key=second.get)  # scores computed again after the first removal
    # every candidate's score, each run from the kept outputs of the blocks before it
    assert {int(k): v for k, v in record["perplexity_per_round"][1].items()} == pytest.approx(second, rel=1e-5)
    ppl_chosen, _ = depth.choose_blocks("shortened_ppl", model, calibration, 2, LAYERS)
    assert ppl_chosen == sorted(brute, key=brute.get)[:2]  # one-shot: the two best alone


def test_a_killed_sleb_search_resumes_after_its_last_finished_round(deep_model, tmp_path):
    from prunebench.pruning.driver import RunCheckpoints

    model, calibration = load_fp32(deep_model), random_sequences(3, 24, 1)
    store = RunCheckpoints(tmp_path / "parts", "key", log=lambda *_: None)
    whole, record = depth.choose_blocks("sleb", model, calibration, 3, LAYERS, lambda *_: None, store)
    for leftover in sorted((tmp_path / "parts").glob("sleb-round-*.json"))[1:]:
        leftover.unlink()  # killed after its first round
    computed = []
    original = depth.removal_perplexities

    def counting(*args, **kwargs):
        computed.append(args[-1] if len(args) > 3 else kwargs.get("removed"))
        return original(*args, **kwargs)

    depth.removal_perplexities = counting
    try:
        resumed, resumed_record = depth.choose_blocks("sleb", model, calibration, 3, LAYERS, lambda *_: None,
                                                      RunCheckpoints(tmp_path / "parts", "key", log=lambda *_: None))
    finally:
        depth.removal_perplexities = original
    assert resumed == whole and resumed_record == record
    assert len(computed) == 2  # rounds 2 and 3 only
    # a saved round from another search (a different removal before it) is not taken
    stale = RunCheckpoints(tmp_path / "parts", "key", log=lambda *_: None)
    stale.save_step("sleb-round-0001", {"removed_before": [99], "perplexity": {"0": 0.0}})
    again, _ = depth.choose_blocks("sleb", model, calibration, 3, LAYERS, lambda *_: None, stale)
    assert again == whole


def test_taylor_importance_sums_gradient_times_weight_per_block(deep_model):
    model = load_fp32(deep_model)
    calibration = random_sequences(3, 24, 2)
    scores = depth.taylor_importance(model, calibration, LAYERS)
    reference = load_fp32(deep_model)
    tokens = sum(len(ids) - 1 for ids in calibration)
    loss = sum(torch.nn.functional.cross_entropy(reference(ids[None]).logits[0, :-1], ids[1:], reduction="sum")
               for ids in calibration) / tokens
    loss.backward()
    expected = [float(sum((p.grad * p.detach()).abs().sum() for p in layer.parameters())) for layer in reference.model.layers]
    assert scores == pytest.approx(expected, rel=1e-4)
    assert all(p.grad is None for p in model.parameters())


def test_ratios_count_blocks():
    assert depth.block_count(24, 0.2) == 5 and depth.block_count(24, 0.4) == 10 and depth.block_count(30, 0.6) == 18
    assert depth.block_count(5, 0.01) == 1 and depth.block_count(5, 0.99) == 4


def test_a_depth_pruned_checkpoint_reloads_in_a_fresh_process_and_generates(deep_model, tmp_path):
    model = load_fp32(deep_model)
    depth.remove_blocks(model, [0, 2], LAYERS)
    model.save_pretrained(tmp_path / "pruned")
    assert reload_and_generate(model, tmp_path / "pruned", [[5, 6, 7]], new_tokens=4) == "Qwen2ForCausalLM"
    assert '"num_hidden_layers": 3' in (tmp_path / "pruned" / "config.json").read_text()


@pytest.mark.parametrize("method", ["shortgpt-0.4", "sleb-0.4", "shortened_ppl-0.4", "shortened_taylor-0.4"])
def test_prune_cli_writes_a_smaller_standard_checkpoint(deep_model, tmp_path, monkeypatch, method):
    from prunebench import cli
    from prunebench.io import read_json, write_jsonl

    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "cal.jsonl", [{"input_ids": list(range(1, 40))}, {"text": "The answer is 42."}])
    assert cli.main(["prune", "--model", str(deep_model), "--calibration", "cal.jsonl", "--method", method,
                     "--out", "pruned", "--measurements", "measured.json"]) == 0
    record = read_json(tmp_path / "pruned" / "sparsity.json")
    assert record["family"] == "depth" and len(record["removed_blocks"]) == 2 == 5 - record["blocks"]["after"]
    assert record["overall_sparsity"] == pytest.approx(0.4)
    assert "wall_seconds" not in record and read_json(tmp_path / "measured.json")["wall_seconds"] > 0
    pruned = load_fp32(tmp_path / "pruned")
    assert pruned.config.num_hidden_layers == 3
    dense = load_fp32(deep_model).to(torch.bfloat16).float()  # the CLI prunes in the entry's dtype, bfloat16
    ids = torch.tensor([[3, 4, 5, 6]])
    with _as_identity(dense, record["removed_blocks"]), torch.no_grad():
        assert torch.allclose(pruned(ids).logits, dense(ids).logits, atol=1e-6)


def test_depth_methods_take_a_ratio_not_a_pattern():
    from prunebench.pruning import parse_method

    assert parse_method("shortgpt-0.2").family == "depth" and parse_method("wanda-0.5").family == "unstructured"
    with pytest.raises(ValueError, match="takes a ratio"):
        parse_method("sleb-2of4")
