"""SliceGPT's decoder layer: shortcut matrices on its two residual connections, which carry the
residual stream from one layer's rotated basis to the next (prunebench.pruning.slicegpt builds them)."""

from __future__ import annotations

import types

import torch
from torch import nn


def sliced_layer_forward(self, hidden_states, *args, **kwargs):
    """A decoder layer with shortcut matrices on its two residual connections (as SliceGPT's)."""
    residual = hidden_states
    attended = self.self_attn(hidden_states=self.input_layernorm(hidden_states), *args, **kwargs)
    attended = attended[0] if isinstance(attended, tuple) else attended
    hidden_states = residual @ self.attn_shortcut.to(residual.dtype) + attended
    residual = hidden_states
    hidden_states = self.mlp(self.post_attention_layernorm(hidden_states))
    return residual @ self.mlp_shortcut.to(residual.dtype) + hidden_states


def make_sliced(layer: nn.Module, attn_shortcut: torch.Tensor, mlp_shortcut: torch.Tensor) -> None:
    """Give a decoder layer its shortcut matrices and the forward that applies them."""
    dtype = layer.input_layernorm.weight.dtype
    layer.attn_shortcut = nn.Parameter(attn_shortcut.to(dtype), requires_grad=False)
    layer.mlp_shortcut = nn.Parameter(mlp_shortcut.to(dtype), requires_grad=False)
    layer.forward = types.MethodType(sliced_layer_forward, layer)
