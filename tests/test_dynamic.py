"""Dynamic pruning (MoD, D-LLM, SkipGPT) against independent computations: a router that runs
every token is the dense model; one that runs none of a block is the model with that block
removed; a routed layer computes, for the tokens that run it, what the plain layer computes on
those tokens alone; the KV cache gives what recomputation gives; the sparsity loss reaches its
target; a killed training resumes to the same weights; the saved model reloads and generates."""

from __future__ import annotations

import copy

import pytest
import torch

from prunebench.architectures import routed as routing
from prunebench.pruning import dynamic, prune_model
from prunebench.pruning.depth import remove_blocks
from prunebench.pruning.spec import parse_method
from .conftest import load_fp32 as _load, random_sequences, reload_and_generate

KINDS = ("mod", "dllm", "skipgpt")


@pytest.fixture(scope="module")
def four_layers(tmp_path_factory):
    from .conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("dynamic") / "model", layers=4, seed=5)


def _ids(seed=0, rows=2, length=20):
    return torch.randint(0, 300, (rows, length), generator=torch.Generator().manual_seed(seed))


def _force(model, layer: int, execute: bool):
    """Set a routed layer's routers to run every token (or none)."""
    routed = model.model.layers[layer]
    for router in routed.routers.values():
        router.weight.data.zero_()
        router.bias.data = torch.tensor([100.0, -100.0] if execute else [-100.0, 100.0])[:router.out_features]
    if not routed.route_gumbel:
        routed.route_thresholds = {unit: 0.0 for unit in routed.route_units}


def _logits(model, ids, **kwargs):
    with torch.no_grad():
        return model(ids, **kwargs).logits


@pytest.mark.parametrize("kind", KINDS)
def test_routers_that_run_every_token_give_the_dense_model(four_layers, kind):
    dense, routed = _load(four_layers), _load(four_layers)
    layers = routing.attach_routers(routed, kind, 0.0)
    for index in layers:
        _force(routed, index, execute=True)
    ids = _ids()
    assert torch.allclose(_logits(routed, ids), _logits(dense, ids), atol=1e-5)
    routed.train()   # training routing (top-k at capacity 1; Gumbel far from its boundary) computes the same
    assert torch.allclose(_logits(routed, ids), _logits(dense, ids), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_routers_that_run_no_token_of_a_block_give_the_model_without_it(four_layers, kind):
    ids = _ids(1)
    without = _load(four_layers)
    remove_blocks(without, [2], "model.layers")
    routed = _load(four_layers)
    for index in routing.attach_routers(routed, kind, 0.0):
        _force(routed, index, execute=index != 2)
    assert torch.allclose(_logits(routed, ids), _logits(without, ids), atol=1e-5)
    mod = _load(four_layers)   # MoD at capacity 0 of block 2: no token passes, in training and at inference
    routing.attach_routers(mod, "mod", 1.0, layers=[2])
    assert torch.allclose(_logits(mod, ids), _logits(without, ids), atol=1e-5)
    mod.train()
    assert torch.allclose(_logits(mod, ids), _logits(without, ids), atol=1e-5)


def test_a_routed_layer_computes_the_plain_layer_on_the_tokens_that_run_it(four_layers):
    """D-LLM with random routers: a skipped token passes unchanged; the tokens that run the block get
    exactly what the unrouted block computes on them alone, at their own positions."""
    model = _load(four_layers)
    plain = copy.deepcopy(model.model.layers[1])
    routing.attach_routers(model, "dllm", 0.5, layers=[1], seed=3)
    layer = model.model.layers[1]
    hidden = torch.randn(1, 16, model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    positions = torch.arange(16)[None]
    embeddings = model.model.rotary_emb(hidden, positions)
    with torch.no_grad():
        logits = layer.routers["block"](layer.input_layernorm(hidden))
        runs = logits[0, :, 0] > logits[0, :, 1]
        assert 0 < int(runs.sum()) < 16, "the seeded routers should split the tokens"
        out = layer(hidden, attention_mask=None, position_embeddings=embeddings)
        alone = plain(hidden[:, runs], attention_mask=None,
                      position_embeddings=model.model.rotary_emb(hidden, positions[:, runs]))
    assert torch.equal(out[0, ~runs], hidden[0, ~runs])
    assert torch.allclose(out[0, runs], alone[0], atol=1e-5)
    counts = routing.routing_counts(model)
    assert counts["skipped_fraction"] == pytest.approx(1 - int(runs.sum()) / 16)


@pytest.mark.parametrize("kind", ("dllm", "skipgpt"))
def test_generation_with_the_cache_equals_recomputing_every_step(four_layers, kind):
    """Tokens that skip a layer leave zero slots no later token attends: decoding with the cache gives
    what recomputing the whole sequence gives, for a batch with left padding too."""
    model = _load(four_layers)
    routing.attach_routers(model, kind, 0.5, seed=1)
    ids = _ids(4, rows=1, length=12)
    with torch.no_grad():
        cached = model.generate(ids, max_new_tokens=8, do_sample=False, use_cache=True)
        fresh = model.generate(ids, max_new_tokens=8, do_sample=False, use_cache=False)
    assert torch.equal(cached, fresh)
    skipped = routing.routing_counts(model)["skipped_fraction"]
    assert 0.05 < skipped < 0.95, "the routers should skip some tokens and run others"
    short = _ids(5, rows=1, length=7)
    pad = model.config.pad_token_id
    batch = torch.cat([torch.cat([torch.full((1, 5), pad), short], 1), ids], 0)
    mask = torch.cat([torch.cat([torch.zeros(1, 5), torch.ones(1, 7)], 1), torch.ones(1, 12)], 0).long()
    with torch.no_grad():
        both = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=pad)
        alone = model.generate(short, max_new_tokens=6, do_sample=False)
    assert torch.equal(both[0, 5:], alone[0]) and torch.equal(both[1], cached[0, :18])


@pytest.mark.parametrize("kind", KINDS)
def test_training_on_a_padded_batch_stays_finite(four_layers, kind):
    """Padding rows attend at least themselves, so no NaN reaches the real tokens' keys and values."""
    from prunebench.training import lm_loss, padded

    model = _load(four_layers)
    routing.attach_routers(model, kind, 0.5, seed=4)
    model.train()
    ids, mask = padded([torch.arange(5, 25), torch.arange(30, 36)], "cpu")
    left_ids, left_mask = ids.roll(14, dims=1) * 0, mask.roll(14, dims=1) * 0   # the short row padded on the left
    left_ids[0], left_mask[0] = ids[0], mask[0]
    left_ids[1, 14:], left_mask[1, 14:] = ids[1, :6], 1
    for ids, mask in ((ids, mask), (left_ids, left_mask)):
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        assert torch.isfinite(logits[mask.bool()]).all()
    loss = lm_loss(logits, ids, mask)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for l in model.model.layers if hasattr(l, "routers")
                                        for p in l.routers.parameters() if p.grad is not None)


def _options(**extra):
    from prunebench.config import pruning_defaults

    return {**{k: v for k, v in pruning_defaults().items() if k.startswith("router_")}, **extra}


def _train(model, kind, sparsity, calibration, **extra):
    options = _options(**extra)
    routing.attach_routers(model, kind, sparsity, seed=options["router_seed"])
    return dynamic.train_routers(
        model, calibration, kind, sparsity, steps=options["router_steps"], batch_size=options["router_batch_size"],
        learning_rate=options["router_learning_rate"], lora_learning_rate=options["router_lora_learning_rate"],
        penalty=options["router_penalty"], lora_rank=options["router_lora_rank"],
        lora_alpha=options["router_lora_alpha"], seed=options["router_seed"],
        checkpoint_every=options["router_checkpoint_every"], checkpoints=extra.get("checkpoints"),
        log=lambda *_: None, progress=False)


def _calibration(count=8, length=24, seed=0):
    return random_sequences(count, length, seed)


@pytest.mark.parametrize("kind", ("dllm", "skipgpt"))
def test_the_sparsity_loss_drives_the_execution_rate_to_its_target(four_layers, kind):
    model = _load(four_layers)
    calibration = _calibration()
    _train(model, kind, 0.5, calibration, router_steps=60, router_learning_rate=0.02, router_batch_size=2)
    routing.routing_counts(model)
    with torch.no_grad():
        for ids in calibration:
            model(ids[None])
    assert routing.routing_counts(model)["skipped_fraction"] == pytest.approx(0.5, abs=0.1)


def test_mod_thresholds_keep_its_capacity_token_by_token(four_layers):
    model = _load(four_layers)
    calibration = _calibration()
    _train(model, "mod", 0.5, calibration, router_steps=4, router_batch_size=2)
    dynamic.set_thresholds(model, calibration)
    with torch.no_grad():
        for ids in calibration:
            model(ids[None])
    assert routing.routing_counts(model)["skipped_fraction"] == pytest.approx(0.5, abs=0.1)


def test_a_killed_router_training_resumes_to_the_same_weights(four_layers, tmp_path, monkeypatch):
    from prunebench.pruning.driver import RunCheckpoints

    calibration = _calibration()
    settings = dict(router_steps=6, router_checkpoint_every=2, router_batch_size=2)
    unkilled = _load(four_layers)
    _train(unkilled, "skipgpt", 0.3, calibration, **settings)

    checkpoints = RunCheckpoints(tmp_path / "parts", "key", lambda *_: None)
    step = torch.optim.AdamW.step
    calls = {"n": 0}

    def dies_at_the_fifth_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", dies_at_the_fifth_step)
    with pytest.raises(KeyboardInterrupt):
        _train(_load(four_layers), "skipgpt", 0.3, calibration, checkpoints=checkpoints, **settings)
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    resumed = _load(four_layers)
    history = _train(resumed, "skipgpt", 0.3, calibration, checkpoints=checkpoints, **settings)
    assert history["resumed_at"] == 4
    for (name, a), (_, b) in zip(unkilled.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    dense = _load(four_layers)
    layer, base = resumed.model.layers[1], dense.model.layers[1]
    assert not torch.equal(layer.self_attn.q_proj.weight, base.self_attn.q_proj.weight)   # LoRA merged in
    assert not torch.equal(layer.mlp.gate_proj.weight, base.mlp.gate_proj.weight)         # SkipGPT: gate too
    assert torch.equal(layer.self_attn.k_proj.weight, base.self_attn.k_proj.weight)       # no LoRA there


@pytest.mark.parametrize("kind", KINDS)
def test_a_dynamic_model_saves_and_reloads_without_remote_code(four_layers, tmp_path, kind):
    model = _load(four_layers)
    spec = parse_method(f"{kind}-0.4")
    record = prune_model(model, _calibration(), spec, router_steps=3, router_batch_size=2, log=lambda *_: None)
    assert record["family"] == "dynamic" and record["method"] == f"{kind}-0.4"
    assert record["routing"]["layers"] == ([1, 2] if kind == "mod" else [0, 1, 2, 3])
    assert 0.0 <= record["overall_sparsity"] <= 1.0 and len(record["training"]["history"]) == 3
    assert record["parameters"]["after"] - record["parameters"]["before"] == record["parameters"]["routers"] > 0
    model.save_pretrained(tmp_path / "out")
    assert reload_and_generate(model, tmp_path / "out", _ids(6, rows=1, length=10).tolist()).startswith("Routed")


def test_continuous_batching_generates_with_a_routed_model_what_each_prompt_alone_gives(four_layers, tmp_path):
    """prunebench's HF backend prefills groups apart, joins them left-padded, drops finished rows and
    refills: the marks of skipped slots live in the cache tensors and follow every such move."""
    from transformers import AutoTokenizer

    from prunebench.architectures import RoutedConfig
    from prunebench.generation import Request, Sampling
    from prunebench.generation.hf import HFBackend
    from prunebench.prompts import build_prompt
    from .test_generation import ENTRY

    model = _load(four_layers)
    routing.attach_routers(model, "skipgpt", 0.5, seed=1)
    model.config = RoutedConfig.from_base(model.config, routing={"kind": "skipgpt", "sparsity": 0.5,
                                                                  "layers": [0, 1, 2, 3], "thresholds": {}})
    model.save_pretrained(tmp_path / "routed")

    AutoTokenizer.from_pretrained(four_layers).save_pretrained(tmp_path / "routed")
    mixed = HFBackend(tmp_path / "routed", dict(ENTRY, batch_size=3))
    questions = ["Add 2 and 3.", "Why? " * 30, "Sum 1 to 4.", "Explain. " * 12, "Hi.", "Go on. " * 20]
    requests = [Request(f"r{i}", 0, build_prompt(mixed.tokenizer, ENTRY, q, "Box it."), 11 + i)
                for i, q in enumerate(questions)]
    sampling = Sampling(0.0, 1.0, 12)
    together = mixed.generate(requests, sampling)
    alone = HFBackend(tmp_path / "routed", dict(ENTRY, batch_size=1)).generate(requests, sampling)
    assert [c.text for c in together] == [c.text for c in alone]
    skipped = routing.routing_counts(mixed.model)["skipped_fraction"]
    assert 0.05 < skipped < 0.95
