"""LLM-Pruner's decoder layer: its own number of query heads, KV heads and MLP channels
(prunebench.pruning.llm_pruner chooses which; a saved model records the widths per layer)."""

from __future__ import annotations

import torch
from torch import nn

from .layout import ATTENTION_IN, ATTENTION_OUT, MLP_IN, MLP_OUT, submodule

Q, K, V = ATTENTION_IN
O = ATTENTION_OUT
GATE, UP = MLP_IN
DOWN = MLP_OUT


def _rows(linear: nn.Linear, index: torch.Tensor) -> None:
    linear.weight = nn.Parameter(linear.weight.data.index_select(0, index.to(linear.weight.device)).clone())
    if linear.bias is not None:
        linear.bias = nn.Parameter(linear.bias.data.index_select(0, index.to(linear.bias.device)).clone())
    linear.out_features = len(index)


def _columns(linear: nn.Linear, index: torch.Tensor) -> None:
    linear.weight = nn.Parameter(linear.weight.data.index_select(1, index.to(linear.weight.device)).clone())
    linear.in_features = len(index)


def _head_rows(heads: list[int], head_dim: int) -> torch.Tensor:
    return torch.tensor([h * head_dim + i for h in heads for i in range(head_dim)], dtype=torch.long)


def narrow_layer(layer: nn.Module, heads: list[int], kv_heads: list[int], channels: list[int], head_dim: int) -> None:
    """Keep only the listed query heads (ordered by KV group), KV heads and MLP channels of a block."""
    query, kv = _head_rows(heads, head_dim), _head_rows(kv_heads, head_dim)
    _rows(submodule(layer, Q), query)
    _columns(submodule(layer, O), query)
    for path in (K, V):
        _rows(submodule(layer, path), kv)
    layer.self_attn.num_key_value_groups = len(heads) // len(kv_heads)
    index = torch.tensor(channels, dtype=torch.long)
    for path in (GATE, UP):
        _rows(submodule(layer, path), index)
    _columns(submodule(layer, DOWN), index)


def widths(layer: nn.Module, head_dim: int) -> dict:
    """A block's widths as `config.layer_widths` records them."""
    return {"num_attention_heads": submodule(layer, Q).out_features // head_dim,
            "num_key_value_heads": submodule(layer, K).out_features // head_dim,
            "intermediate_size": submodule(layer, GATE).out_features}
