"""SliceGPT against the dense model: rotation alone (nothing sliced) computes the same function to
fp32 rounding; slicing keeps the shapes it promises and stays close at small slices."""

from __future__ import annotations

import pytest
import torch

from prunebench.pruning import slicegpt
from .conftest import load_fp32, random_sequences, reload_and_generate




def _with_norm_scales(model, seed=1):
    """Random RMSNorm scales, so that folding them into the linears is tested (fresh models have ones)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if type(module).__name__.endswith("RMSNorm"):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
    return model


def test_rotation_without_slicing_computes_the_dense_model(tiny_model):
    dense, rotated = _with_norm_scales(load_fp32(tiny_model)), _with_norm_scales(load_fp32(tiny_model))
    record = slicegpt.rotate_and_slice(rotated, random_sequences(4, 32, 0), kept=64, log=lambda *_: None)
    assert record["hidden_size"] == {"before": 64, "after": 64}
    ids = random_sequences(1, 32, 5)[0][None]
    with torch.no_grad():
        expected, got = dense(ids).logits, rotated(ids).logits
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    shortcut = rotated.model.layers[0].attn_shortcut
    assert not torch.allclose(shortcut, torch.eye(64), atol=1e-3)  # rotated indeed, not left as it was
    assert torch.allclose(shortcut @ shortcut.T, torch.eye(64), atol=1e-5)  # orthogonal


def test_slicing_shrinks_every_residual_width(tiny_model):
    dense, sliced = load_fp32(tiny_model), load_fp32(tiny_model)
    slicegpt.rotate_and_slice(sliced, random_sequences(4, 32, 0), kept=48, log=lambda *_: None)
    layer = sliced.model.layers[0]
    assert sliced.config.hidden_size == 48 and sliced.model.embed_tokens.weight.shape[1] == 48
    assert layer.self_attn.q_proj.weight.shape[1] == 48 and layer.self_attn.o_proj.weight.shape[0] == 48
    assert layer.mlp.up_proj.weight.shape[1] == 48 and layer.mlp.down_proj.weight.shape[0] == 48
    assert layer.attn_shortcut.shape == layer.mlp_shortcut.shape == (48, 48)
    assert sliced.lm_head.weight.shape == (dense.lm_head.weight.shape[0], 48)
    ids = random_sequences(1, 32, 5)[0][None]
    with torch.no_grad():
        out = sliced(ids).logits
    assert out.shape == dense(ids).logits.shape and torch.isfinite(out).all()


def test_principal_basis_orders_directions_by_energy():
    x = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-3.0, 0.0, 0.0], [0.0, 0.0, 0.5]])
    values, vectors = slicegpt.principal_basis([x])
    assert values.tolist() == pytest.approx([18.0, 1.0, 0.25])
    assert vectors[:, 0].abs().tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert slicegpt.kept_dimension(896, 0.2) == 712 and slicegpt.kept_dimension(64, 0.0) == 64


def test_a_sliced_checkpoint_reloads_in_a_fresh_process_and_generates(tiny_model, tmp_path):
    from prunebench.architectures import SlicedConfig

    sliced = load_fp32(tiny_model)
    slicegpt.rotate_and_slice(sliced, random_sequences(4, 32, 0), kept=40, log=lambda *_: None)
    sliced.config = SlicedConfig.from_base(sliced.config)
    sliced.save_pretrained(tmp_path / "sliced")
    assert reload_and_generate(sliced, tmp_path / "sliced", [[5, 6, 7, 8]]) == "SlicedQwen2ForCausalLM"
    assert '"hidden_size": 40' in (tmp_path / "sliced" / "config.json").read_text()
    # vLLM has no such architecture: both vLLM paths refuse it by name before loading anything
    from prunebench.io import InputError
    from prunebench.lmeval import vllm_arguments
    from prunebench.models import require_vllm_servable

    with pytest.raises(InputError, match=r"config.json: model_type 'prunebench_sliced'.*backend: hf"):
        vllm_arguments(tmp_path / "sliced", {}, 8, 1, 0)
    require_vllm_servable(tiny_model)  # a standard architecture passes


def test_prune_cli_slices_to_a_ratio_of_decoder_parameters(tiny_model, tmp_path, monkeypatch):
    from prunebench import cli
    from prunebench.io import read_json, write_jsonl
    from prunebench.models import load_model

    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "cal.jsonl", [{"input_ids": list(range(1, 40))}, {"text": "The answer is 42."}])
    assert cli.main(["prune", "--model", str(tiny_model), "--calibration", "cal.jsonl", "--method", "slicegpt-0.2",
                     "--out", "sliced", "--dtype", "float32"]) == 0
    record = read_json(tmp_path / "sliced" / "sparsity.json")
    assert record["family"] == "width" and record["hidden_size"]["before"] == 64
    # A tiny model's widths (multiples of 8 of 64) reach only a few ratios, shortcuts included: the
    # recorded one is the nearest of them to 0.2, counted from a dense block's own parameters.
    dense_layers = load_fp32(tiny_model).model.layers
    dense_block = sum(p.numel() for p in dense_layers[0].parameters())
    per_block = {w: slicegpt.block_parameters(dense_layers[0], w, True) for w in range(8, 65, 8)}
    assert slicegpt.block_parameters(dense_layers[0], 64, False) == dense_block
    reachable = {w: 1 - n / dense_block for w, n in per_block.items()}
    after = record["hidden_size"]["after"]
    assert record["overall_sparsity"] == pytest.approx(reachable[after])
    assert abs(reachable[after] - 0.2) == pytest.approx(min(abs(r - 0.2) for r in reachable.values()))
    model = load_model(tmp_path / "sliced", "float32")
    assert type(model).__name__ == "SlicedQwen2ForCausalLM" and model.config.hidden_size == record["hidden_size"]["after"]
    dense = sum(p.numel() for p in load_fp32(tiny_model).model.layers.parameters())
    assert 1 - sum(p.numel() for p in model.model.layers.parameters()) / dense == pytest.approx(record["overall_sparsity"])
