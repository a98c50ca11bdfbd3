"""LLM-Pruner against the dense model: the pruned model computes exactly what the dense model
computes with the removed heads and channels zeroed; importance is |w x grad| summed per structure;
the saved model reloads in a fresh process and generates."""

from __future__ import annotations

import json

import pytest
import torch

from prunebench.architectures import layer_widths
from prunebench.pruning import llm_pruner
from prunebench.pruning.spec import parse_method
from .conftest import load_fp32, random_sequences, reload_and_generate




@pytest.fixture(scope="module")
def deep_model(tmp_path_factory):
    """Eight blocks (one kept first, one kept last, six pruned); 4 query heads in 2 KV groups."""
    from .conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("deep") / "model", layers=8, seed=3)


def _zeroed(model, removed, head_dim):
    """The dense model with the removed heads' query rows, output columns and the removed channels zeroed."""
    with torch.no_grad():
        for index, gone in removed.items():
            layer = model.model.layers[int(index)]
            for h in gone["heads"]:
                rows = slice(h * head_dim, (h + 1) * head_dim)
                layer.self_attn.q_proj.weight[rows] = 0
                layer.self_attn.q_proj.bias[rows] = 0
                layer.self_attn.o_proj.weight[:, rows] = 0
            for c in gone["channels"]:
                layer.mlp.gate_proj.weight[c] = 0
                layer.mlp.up_proj.weight[c] = 0
                layer.mlp.down_proj.weight[:, c] = 0
    return model


def test_pruned_model_equals_the_dense_model_with_removed_structures_zeroed(deep_model):
    pruned = load_fp32(deep_model)
    record = llm_pruner.prune(pruned, random_sequences(), parse_method("llm_pruner-0.3"), layers_path="model.layers",
                              log=lambda *_: None)
    assert record["kept_dense_layers"] == [0, 7]
    assert sorted(record["removed"]) == [str(i) for i in range(1, 7)]
    for gone in record["removed"].values():
        assert len(gone["heads"]) == 2 and {h // 2 for h in gone["heads"]} == {0, 1}  # one head per KV group
        assert len(gone["channels"]) == round(record["layer_fraction"] * 128)
    layer = pruned.model.layers[3]
    assert layer.self_attn.q_proj.weight.shape == (32, 64) and layer.self_attn.k_proj.weight.shape == (32, 64)
    assert layer.mlp.down_proj.weight.shape[1] == 128 - len(record["removed"]["3"]["channels"])
    assert pruned.model.layers[0].mlp.gate_proj.weight.shape == (128, 64)
    dense = sum(p.numel() for p in load_fp32(deep_model).model.layers.parameters())
    kept = sum(p.numel() for p in pruned.model.layers.parameters())
    assert record["overall_sparsity"] == pytest.approx(1 - kept / dense)
    assert record["parameters"] == {"before": dense, "after": kept}
    zeroed = _zeroed(load_fp32(deep_model), record["removed"], head_dim=16)
    ids = random_sequences(1, 24, 9)[0][None]
    with torch.no_grad():
        assert torch.allclose(pruned(ids).logits, zeroed(ids).logits, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(pruned(ids).logits, load_fp32(deep_model)(ids).logits, atol=1e-3)


def test_importance_is_weight_times_gradient_summed_per_structure(deep_model):
    from prunebench.pruning.depth import loss_gradients

    model = load_fp32(deep_model)
    loss_gradients(model, random_sequences(3, 24, 0))
    layer = model.model.layers[2]
    heads, channels = llm_pruner.importance(layer, head_dim=16, grouped=True)

    def taylor(p):
        return (p.detach() * p.grad).abs()

    q, qb, o = taylor(layer.self_attn.q_proj.weight), taylor(layer.self_attn.q_proj.bias), taylor(layer.self_attn.o_proj.weight)
    expected_heads = torch.stack([q[h * 16:(h + 1) * 16].sum() + qb[h * 16:(h + 1) * 16].sum() + o[:, h * 16:(h + 1) * 16].sum()
                                  for h in range(4)])
    expected_channels = (taylor(layer.mlp.gate_proj.weight).sum(1) + taylor(layer.mlp.up_proj.weight).sum(1)
                         + taylor(layer.mlp.down_proj.weight).sum(0))
    assert torch.allclose(heads, expected_heads, rtol=1e-5) and torch.allclose(channels, expected_channels, rtol=1e-5)
    assert heads.min() > 0


def test_without_gqa_heads_go_with_their_keys_and_values():
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(1)
    config = AutoConfig.for_model("qwen2", vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                  num_attention_heads=4, num_key_value_heads=4)  # one KV head per query head
    model = AutoModelForCausalLM.from_config(config)
    model.eval()
    record = llm_pruner.prune(model, random_sequences(), parse_method("llm_pruner-0.2"), layers_path="model.layers",
                              log=lambda *_: None)
    for index, gone in record["removed"].items():
        attention = model.model.layers[int(index)].self_attn
        kept = 4 - len(gone["heads"])
        assert attention.k_proj.out_features == attention.v_proj.out_features == attention.q_proj.out_features == 16 * kept
        assert attention.num_key_value_groups == 1


def test_layer_fraction_comes_nearest_the_ratio_counting_kept_layers(deep_model):
    layers = load_fp32(deep_model).model.layers
    shapes = [None] + [llm_pruner.Shape(layer, 16) for layer in layers[1:7]] + [None]
    dense = sum(p.numel() for p in layers.parameters())
    fraction = llm_pruner.layer_fraction(shapes, dense, 0.2)
    achieved = sum(s.parameters_removed(fraction) for s in shapes if s) / dense
    # every other fraction on the grid is no nearer
    assert all(abs(sum(s.parameters_removed(f / 100) for s in shapes if s) / dense - 0.2) >= abs(achieved - 0.2) - 1e-12
               for f in range(100))
    assert fraction > 0.2  # the kept first and last blocks make the pruned ones lose more than the ratio


def test_saved_model_reloads_in_a_fresh_process_and_generates(deep_model, tmp_path):
    pruned = load_fp32(deep_model)
    llm_pruner.prune(pruned, random_sequences(3, 24, 0), parse_method("llm_pruner-0.4"), layers_path="model.layers",
                     log=lambda *_: None)
    pruned.save_pretrained(tmp_path / "pruned")
    assert reload_and_generate(pruned, tmp_path / "pruned", [[5, 6, 7, 8]]) == "LayerWidthsQwen2ForCausalLM"
    assert (tmp_path / "pruned" / "config.json").read_text().count('"intermediate_size"') == 9  # base + 8 layers
    from prunebench.io import InputError
    from prunebench.models import require_vllm_servable

    with pytest.raises(InputError, match=r"model_type 'prunebench_layer_widths'.*backend: hf"):
        require_vllm_servable(tmp_path / "pruned")


def test_prune_cli_records_what_went_and_the_model_loads(deep_model, tmp_path, monkeypatch):
    from prunebench import cli
    from prunebench.io import read_json, write_jsonl
    from prunebench.models import load_model

    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "cal.jsonl", [{"input_ids": list(range(1, 40))}, {"text": "The answer is 42."}])
    assert cli.main(["prune", "--model", str(deep_model), "--calibration", "cal.jsonl", "--method",
                     "llm_pruner-0.2", "--out", "pruned", "--dtype", "float32"]) == 0
    record = read_json(tmp_path / "pruned" / "sparsity.json")
    assert record["family"] == "width" and record["method"] == "llm_pruner-0.2"
    model = load_model(tmp_path / "pruned", "float32")
    assert type(model).__name__ == "LayerWidthsQwen2ForCausalLM"
    assert [layer_widths.widths(layer, 16) for layer in model.model.layers] == record["layer_widths"]
    dense = sum(p.numel() for p in load_fp32(deep_model).model.layers.parameters())
    assert 1 - sum(p.numel() for p in model.model.layers.parameters()) / dense == pytest.approx(record["overall_sparsity"])
    assert abs(record["overall_sparsity"] - 0.2) < 0.05
