"""Recovery fine-tuning with LoRA: it lowers the loss on its data, the merged model is the base
plus the saved adapter (checked against W + alpha/r x B A computed here), early stopping keeps the
best held-out state, a pruned model of any family can be recovered."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from prunebench import recovery
from prunebench.training import held_out_loss

from .conftest import load_fp32 as _load, random_sequences

SETTINGS = {"steps": 30, "batch_size": 2, "learning_rate": 0.01, "lora_rank": 4, "lora_alpha": 8,
            "targets": ["q_proj", "v_proj", "down_proj"], "held_out": 0.0, "evaluate_every": 5, "patience": 0,
            "seed": 0, "checkpoint_every": 25}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from .conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("recovery") / "model", layers=2, seed=4)


def _sequences(count=4, length=24, seed=0):
    return random_sequences(count, length, seed)


def test_recovery_lowers_the_loss_and_the_merged_model_is_base_plus_adapter(model_path, tmp_path):
    model, base = _load(model_path), _load(model_path)
    data = _sequences()
    before = held_out_loss(model, data)
    record = recovery.recover(model, data, SETTINGS, adapter_dir=tmp_path / "adapter", log=lambda *_: None,
                              progress=False)
    assert held_out_loss(model, data) < before - 0.1
    assert record["training"]["steps"] == 30 and record["sequences"] == {"train": 4, "held_out": 0}
    adapter = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    scale = SETTINGS["lora_alpha"] / SETTINGS["lora_rank"]
    merged = dict(model.named_parameters())
    changed = 0
    for name, weight in base.named_parameters():
        stem = name.removesuffix(".weight")
        a, b = (f"base_model.model.{stem}.lora_{x}.weight" for x in "AB")
        if a in adapter:
            expected = weight + scale * adapter[b] @ adapter[a]
            assert torch.allclose(merged[name], expected, atol=1e-6), name
            changed += 1
        else:
            assert torch.equal(merged[name], weight), name   # only the targets change
    assert changed == 3 * base.config.num_hidden_layers


def test_early_stopping_keeps_the_best_held_out_state(model_path):
    model = _load(model_path)
    data = _sequences(count=6)
    settings = {**SETTINGS, "learning_rate": 3.0, "held_out": 0.34, "evaluate_every": 1, "patience": 2}
    record = recovery.recover(model, data, settings, log=lambda *_: None, progress=False)
    history = record["training"]
    assert history["stopped_early"] and history["steps"] < settings["steps"]
    assert record["sequences"] == {"train": 4, "held_out": 2}
    assert record["held_out_loss"]["after"] == pytest.approx(history["best_held_out_loss"], abs=1e-5)
    assert history["best_held_out_loss"] == min(h["held_out_loss"] for h in history["history"])


def test_a_recovery_target_the_model_lacks_is_refused_before_training(model_path):
    model = _load(model_path)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(Exception, match="c_attn"):
        recovery.recover(model, _sequences(), {**SETTINGS, "targets": ["c_attn"]}, log=lambda *_: None)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_a_width_pruned_model_is_recovered_in_its_own_architecture(model_path, tmp_path):
    from prunebench.pruning import prune_model
    from prunebench.pruning.spec import parse_method

    model = _load(model_path)
    prune_model(model, _sequences(), parse_method("slicegpt-0.3"), log=lambda *_: None)
    data = _sequences(seed=1)
    before = held_out_loss(model, data)
    recovery.recover(model, data, SETTINGS, log=lambda *_: None, progress=False)
    assert held_out_loss(model, data) < before
    model.save_pretrained(tmp_path / "out")
    assert type(_load(tmp_path / "out")).__name__.startswith("Sliced")


def test_a_dynamic_model_is_recovered_with_its_routers_frozen_and_deciding_as_at_inference(model_path):
    from prunebench.architectures import routed as routing

    model = _load(model_path)
    routing.attach_routers(model, "skipgpt", 0.5, seed=2)
    routers = {k: v.clone() for k, v in model.state_dict().items() if ".routers." in k}
    data = _sequences(seed=3)
    with torch.no_grad():
        for ids in data:
            model(ids[None])
    decided = routing.routing_counts(model)
    before = held_out_loss(model, data)
    recovery.recover(model, data, SETTINGS, log=lambda *_: None, progress=False)
    assert held_out_loss(model, data) < before
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in routers.items())
    assert 0 < decided["skipped_fraction"] < 1   # the routers skip some tokens
    # no Gumbel sample was drawn in training: every decision was the inference argmax
    assert all(layer.route_probabilities == [] for layer in model.model.layers)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_saved_state_is_set_aside_and_training_starts_over(model_path, tmp_path, damage):
    """A training.pt cut short (a disk filled, a copy interrupted) is not a traceback: it is kept as
    training.pt.damaged, said so, and training runs from the start to the same result."""
    checkpoint = tmp_path / "training.pt"
    if damage == "truncated":
        torch.save({"state": {"adapter": {"w": torch.zeros(64, 64)}}, "step": 3}, checkpoint)
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    else:
        checkpoint.write_bytes(b"\x80\x04not a checkpoint")
    damaged = checkpoint.read_bytes()
    messages = []
    resumed = _load(model_path)
    record = recovery.recover(resumed, _sequences(), SETTINGS, checkpoint=checkpoint, log=messages.append,
                              progress=False)
    assert record["training"]["steps"] == 30 and (tmp_path / "training.pt.damaged").read_bytes() == damaged
    assert any("cannot be read" in m and "starts over" in m for m in messages)
    fresh = _load(model_path)
    recovery.recover(fresh, _sequences(), SETTINGS, log=lambda *_: None, progress=False)
    for (name, a), (_, b) in zip(fresh.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
