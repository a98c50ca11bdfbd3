"""LLM-Pruner (Ma et al. 2023), block-wise: remove coupled structures ranked by first-order Taylor
importance on the calibration sequences.

The coupled structures of a Llama-family block (Llama, Mistral, Qwen2, Qwen3):
- an attention head h: the rows of q_proj (and its bias) that compute h and the columns of o_proj
  that read it; without grouped-query attention (one query head per KV head) also h's rows of
  k_proj and v_proj. With it, query heads go in equal numbers from every KV group and the group's
  key and value stay, so every layer keeps a uniform GQA ratio (`num_key_value_groups`).
- an MLP channel c: row c of gate_proj and up_proj, column c of down_proj.
A structure's importance is sum |w x dL/dw| over its weights (the reference's `taylor` importance
with `param_first`, summed over the group), L the mean next-token loss on the calibration tokens.

As the reference keeps LLaMA-7B's first four and last two of 32 blocks whole, round(L/8) first and
round(L/16) last blocks (at least one each) stay dense; every other block loses the same fraction
of its heads and of its channels (the reference's default, local and uniform). That fraction is the
one whose removed decoder-block parameters come nearest the ratio, since a ratio here counts the
whole decoder, kept blocks included. The model left has per-layer widths: prunebench's own
`prunebench_layer_widths` architecture (prunebench.architectures), each layer's widths in
`config.layer_widths`.

The dependency bookkeeping is written here rather than taken from torch-pruning (the library
LLM-Pruner is built on): torch-pruning 1.6.1's graph tracing did not finish on a two-layer Qwen2
model of transformers 5 within five minutes, while a Llama-family block's couplings are the few
listed above.
"""

from __future__ import annotations

import torch
from torch import nn

from ..architectures.layer_widths import DOWN, GATE, K, O, Q, UP, V, narrow_layer, widths
from ..architectures.layout import decoder_layers
from ..architectures.layout import submodule as _get
from ..io import InputError
from .passes import begin_pass, loss_gradients, pass_fields, require_llama_layers


def _taylor(linear: nn.Linear, dim: int, size: int) -> torch.Tensor:
    """|w x grad| summed into `size`-wide slices along `dim` (0: rows, 1: columns), bias rows included."""
    score = (linear.weight.detach().float() * linear.weight.grad.float()).abs()
    score = score.sum(dim=1 - dim)
    if dim == 0 and linear.bias is not None and linear.bias.grad is not None:
        score = score + (linear.bias.detach().float() * linear.bias.grad.float()).abs()
    return score.reshape(-1, size).sum(dim=1)


def importance(layer: nn.Module, head_dim: int, grouped: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(per query head, per MLP channel) Taylor importance of a block whose weights hold gradients."""
    heads = _taylor(_get(layer, Q), 0, head_dim) + _taylor(_get(layer, O), 1, head_dim)
    if not grouped:
        heads = heads + _taylor(_get(layer, K), 0, head_dim) + _taylor(_get(layer, V), 0, head_dim)
    channels = _taylor(_get(layer, GATE), 0, 1) + _taylor(_get(layer, UP), 0, 1) + _taylor(_get(layer, DOWN), 1, 1)
    return heads, channels


def kept_layers(blocks: int) -> tuple[int, int]:
    """(first, last) blocks kept dense: the reference's 4 and 2 of 32, scaled, at least one each."""
    return max(1, round(blocks / 8)), max(1, round(blocks / 16))


class Shape:
    """A block's dense shape and what removing a fraction of its heads and channels leaves."""

    def __init__(self, layer: nn.Module, head_dim: int):
        self.head_dim = head_dim
        self.heads, self.kv_heads = _get(layer, Q).out_features // head_dim, _get(layer, K).out_features // head_dim
        self.group = self.heads // self.kv_heads
        self.channels = _get(layer, GATE).out_features
        q, o = _get(layer, Q), _get(layer, O)
        self.per_head = q.in_features * head_dim + (head_dim if q.bias is not None else 0) + o.out_features * head_dim
        if self.group == 1:
            k, v = _get(layer, K), _get(layer, V)
            self.per_head += (k.in_features + v.in_features) * head_dim + head_dim * ((k.bias is not None) + (v.bias is not None))
        self.per_channel = sum(_get(layer, p).in_features + (_get(layer, p).bias is not None) for p in (GATE, UP))
        self.per_channel += _get(layer, DOWN).out_features

    def removed(self, fraction: float) -> tuple[int, int]:
        """(query heads per KV group, or heads where there is no GQA; channels) a fraction removes."""
        units = self.group if self.group > 1 else self.heads
        return min(units - 1, round(fraction * units)), min(self.channels - 1, round(fraction * self.channels))

    def parameters_removed(self, fraction: float) -> int:
        heads, channels = self.removed(fraction)
        return heads * (self.kv_heads if self.group > 1 else 1) * self.per_head + channels * self.per_channel


def layer_fraction(shapes: list[Shape | None], dense: int, ratio: float, step: float = 0.0005) -> float:
    """The per-block fraction whose removed parameters, over `dense` decoder-block ones, come nearest `ratio`."""
    def achieved(fraction):
        return sum(s.parameters_removed(fraction) for s in shapes if s is not None) / dense

    candidates = [i * step for i in range(int(1 / step))]
    return min(candidates, key=lambda f: (abs(achieved(f) - ratio), f))


def chosen_structures(heads: torch.Tensor, channels: torch.Tensor, shape: Shape, fraction: float) -> dict:
    """The heads and channels of one block to remove: the least important, equal numbers per KV group."""
    head_count, channel_count = shape.removed(fraction)
    if shape.group > 1:
        by_group = heads.reshape(shape.kv_heads, shape.group)
        removed_heads = sorted(g * shape.group + int(i) for g in range(shape.kv_heads)
                               for i in torch.argsort(by_group[g], stable=True)[:head_count])
    else:
        removed_heads = sorted(int(i) for i in torch.argsort(heads, stable=True)[:head_count])
    removed_channels = sorted(int(i) for i in torch.argsort(channels, stable=True)[:channel_count])
    return {"heads": removed_heads, "channels": removed_channels}


def check(model: nn.Module, spec, layers_path: str) -> None:
    """Refuse a model LLM-Pruner cannot prune (the model may sit on the meta device): Llama-family
    layers, and at least one block between the first and last ones it keeps dense."""
    layers = require_llama_layers(model, layers_path, spec)
    first, last = kept_layers(len(layers))
    if not range(first, len(layers) - last):
        raise InputError(f"{spec.name}: the first {first} and last {last} of {len(layers)} blocks stay dense, "
                         "which leaves no block to prune")


def prune(model: nn.Module, calibration: list[torch.Tensor], spec, *, layers_path: str, device=None,
          log=print, checkpoints=None, **_options) -> dict:
    """LLM-Pruner at a ratio of decoder-block parameters removed; the model is left as prunebench's
    `prunebench_layer_widths` architecture, ready to save."""
    import time

    from ..architectures import LayerWidthsConfig

    start = time.perf_counter()
    calibration = begin_pass(model, calibration, spec, device)
    layers = decoder_layers(model, layers_path)
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    check(model, spec, layers_path)
    first, last = kept_layers(len(layers))
    pruned = range(first, len(layers) - last)
    shapes = [Shape(layer, head_dim) if i in pruned else None for i, layer in enumerate(layers)]
    dense = sum(p.numel() for layer in layers for p in layer.parameters())
    fraction = layer_fraction(shapes, dense, spec.sparsity)
    loss_gradients(model, calibration)
    removed = {}
    for index in pruned:
        heads, channels = importance(layers[index], head_dim, shapes[index].group > 1)
        removed[index] = chosen_structures(heads, channels, shapes[index], fraction)
    model.zero_grad(set_to_none=True)
    for index, gone in removed.items():
        shape = shapes[index]
        heads = [h for h in range(shape.heads) if h not in set(gone["heads"])]
        kv = list(range(shape.kv_heads)) if shape.group > 1 else heads
        narrow_layer(layers[index], heads, kv, [c for c in range(shape.channels) if c not in set(gone["channels"])],
                     head_dim)
    after = sum(p.numel() for layer in layers for p in layer.parameters())
    layer_widths = [widths(layer, head_dim) for layer in layers]
    config.head_dim = head_dim
    model.config = LayerWidthsConfig.from_base(config, layer_widths=layer_widths)
    log(f"{spec.name}: blocks {first}..{len(layers) - last - 1} each lose {fraction:.1%} of heads and channels, "
        f"{1 - after / dense:.1%} of decoder-block parameters removed")
    return {"method": spec.name, "family": "width", "sparsity_target": spec.sparsity, "pattern": None,
            "overall_sparsity": 1 - after / dense, "layer_fraction": fraction,
            "kept_dense_layers": [i for i in range(len(layers)) if i not in pruned],
            "removed": {str(i): gone for i, gone in removed.items()}, "layer_widths": layer_widths,
            "parameters": {"before": dense, "after": after}, **pass_fields(model, calibration, start)}
