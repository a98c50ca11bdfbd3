"""`prunebench speed`: what it records of a dense and a depth-pruned model (sizes checked against
the checkpoints; throughput only for being measured, never timed here)."""

from __future__ import annotations

import pytest
import torch

from prunebench import cli
from prunebench.io import read_json
from prunebench.pruning import depth


@pytest.fixture()
def models(tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    depth.remove_blocks(model, [0], "model.layers")
    model.save_pretrained(tmp_path / "pruned")
    return tiny_model, tmp_path / "pruned"


def test_speed_records_size_throughput_and_memory(models, tmp_path):
    dense, pruned = models
    args = ["--prompt-tokens", "16", "--new-tokens", "4", "--repeats", "2", "--dtype", "float32"]
    assert cli.main(["speed", "--model", str(dense), "--out", str(tmp_path / "dense.json"), *args]) == 0
    assert cli.main(["speed", "--model", str(pruned), "--out", str(tmp_path / "pruned.json"), *args]) == 0
    a, b = read_json(tmp_path / "dense.json"), read_json(tmp_path / "pruned.json")
    layer = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(dense)
                .model.layers[0].parameters())
    assert a["parameters"] - b["parameters"] == layer
    assert a["checkpoint_bytes"] == sum(f.stat().st_size for f in dense.glob("*.safetensors"))
    assert b["checkpoint_bytes"] < a["checkpoint_bytes"]
    for result in (a, b):
        assert result["prefill_tokens_per_second"] > 0 and result["decode_tokens_per_second"] > 0
        assert len(result["decode_seconds"]) == 2 and result["peak_memory_bytes"] > 0
        assert result["settings"] == {"prompt_tokens": 16, "new_tokens": 4, "batch_size": 1, "repeats": 2, "seed": 0}


def test_speed_refuses_bad_settings_before_writing(models, tmp_path):
    dense, _ = models
    out = tmp_path / "never.json"
    assert cli.main(["speed", "--model", str(dense), "--new-tokens", "0", "--out", str(out)]) == 2
    assert not out.exists()


def test_two_four_linears_are_found_and_the_sparse_kernels_need_a_gpu(models, tmp_path):
    import torch

    from prunebench import speed
    from prunebench.io import InputError
    from prunebench.pruning.magnitude import nm_mask

    dense, _ = models
    model = __import__("transformers").AutoModelForCausalLM.from_pretrained(dense, dtype=torch.float32)
    assert speed.two_four_linears(model) == {}
    up = model.model.layers[0].mlp.up_proj
    with torch.no_grad():
        up.weight.mul_(nm_mask(up.weight.abs(), 2, 4).logical_not())  # keep the two largest of every four
    assert list(speed.two_four_linears(model)) == ["model.layers.0.mlp.up_proj"]
    with pytest.raises(InputError, match="CUDA GPUs only"):
        speed.to_semi_structured(model)
    out = tmp_path / "never.json"
    assert cli.main(["speed", "--model", str(dense), "--semi-structured", "--out", str(out)]) == 2
    assert not out.exists()
