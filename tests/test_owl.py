"""OWL's layer-wise sparsity (pruning/owl.py through the driver's layer allocation), against an
independent computation: the dense model's full forward with hooks on every linear layer, the
Wanda scores and outlier ratios per layer, and the reference's allocation formula in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from prunebench.io import InputError
from prunebench.pruning import PruneSpec, prune_model
from prunebench.pruning import owl

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=128)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(Qwen2Config(**TINY), attn_implementation="sdpa",
                                            dtype=torch.float32).eval()


def calibration(lengths=(9, 23, 16), seed=3):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, TINY["vocab_size"], (n,), generator=generator) for n in lengths]


def reference_sparsities(model, sequences, target, lam, m):
    """luuyin/OWL's prune_wanda_outlier, step by step on the dense model: per linear the sum of its
    inputs' squares per channel, W_metric = |W| * sqrt(that / tokens), a layer's outlier ratio
    over all its W_metric entries (> M x their mean, in %), then the min-max scaling by 2 lambda and
    the shift to a mean kept fraction of 1 - s."""
    sums, tokens, hooks = {}, {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in name:
            def hook(mod, args, out, name=name):
                x = args[0].reshape(-1, args[0].shape[-1]).double()
                sums[name] = sums.get(name, 0) + (x ** 2).sum(0)
                tokens[name] = tokens.get(name, 0) + x.shape[0]
            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        for ids in sequences:
            model(ids.reshape(1, -1))
    for handle in hooks:
        handle.remove()
    modules = dict(model.named_modules())
    ratios = []
    for layer in range(TINY["num_hidden_layers"]):
        metrics = [(modules[name].weight.double().abs() * torch.sqrt(sums[name] / tokens[name]).reshape(1, -1)).flatten()
                   for name in sums if f".layers.{layer}." in name]
        metric = torch.cat(metrics)
        ratios.append(float((metric > torch.mean(metric) * m).sum().item()) / metric.numel() * 100)
    ratios = np.array(ratios)
    ratios = (ratios - ratios.min()) * (1 / (ratios.max() - ratios.min()) * lam * 2)
    ratios = ratios - np.mean(ratios) + (1 - target)
    return [float(1 - r) for r in ratios], ratios


@pytest.mark.parametrize("method", ["owl_wanda", "owl_sparsegpt"])
def test_layer_sparsities_equal_the_reference_computation(method):
    sequences = calibration()
    expected, _ = reference_sparsities(tiny_model(), sequences, 0.5, 0.08, 3.0)
    assert max(expected) - min(expected) == pytest.approx(0.16)  # the layers differ: the test can fail
    model = tiny_model()
    report = prune_model(model, sequences, PruneSpec(method, 0.5), owl_lambda=0.08, owl_m=3.0, log=lambda m: None)
    assert report["layer_sparsity_targets"] == pytest.approx(expected, abs=1e-12)
    # each layer is pruned to its own sparsity: Wanda int(columns x s) weights of every row, SparseGPT
    # int(rows x width x s) of every column block (128 columns)
    for name, entry in report["modules"].items():
        s = expected[int(name.split(".layers.")[1].split(".")[0])]
        rows, columns = entry["shape"]
        widths = [min(128, columns - start) for start in range(0, columns, 128)]
        zeros = rows * int(columns * s) if method == "owl_wanda" else sum(int(rows * w * s) for w in widths)
        assert entry["sparsity"] == zeros / (rows * columns), name


def test_equal_outlier_ratios_leave_every_layer_at_the_target():
    assert owl.sparsities([2.0, 2.0, 2.0], 0.6, owl_lambda=0.08) == [0.6, 0.6, 0.6]
    spread = owl.sparsities([0.0, 1.0, 2.0, 3.0], 0.5, owl_lambda=0.1)
    assert spread == pytest.approx([0.6, 0.5 + 0.1 / 3, 0.5 - 0.1 / 3, 0.4])  # more outliers, fewer zeros
    assert sum(spread) / 4 == pytest.approx(0.5)


def test_an_n_m_pattern_is_refused_before_any_work():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputError, match="gives each layer its own sparsity"):
        prune_model(model, calibration(), PruneSpec("owl_wanda", None, 2, 4), log=lambda m: None)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
