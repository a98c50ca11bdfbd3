"""Where the parts of a decoder model are: the decoder layers at a dotted path, and the names of a
Llama-family layer's parts (Llama, Mistral, Qwen2, Qwen3 use them), which prunebench's own
architectures reshape and its structured methods rewrite."""

from __future__ import annotations

import functools

from torch import nn

ATTENTION_IN, ATTENTION_OUT = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "self_attn.o_proj"
MLP_IN, MLP_OUT = ("mlp.gate_proj", "mlp.up_proj"), "mlp.down_proj"
NORMS = ("input_layernorm", "post_attention_layernorm")
# Everything a Llama-family layer holds that width and dynamic methods rewrite.
LLAMA_PARTS = (*NORMS, *ATTENTION_IN, ATTENTION_OUT, *MLP_IN, MLP_OUT)


def submodule(module: nn.Module, path: str) -> nn.Module:
    """The module at a dotted attribute path ("model.layers", "self_attn.q_proj")."""
    return functools.reduce(getattr, path.split("."), module)


def decoder_layers(model: nn.Module, layers_path: str) -> nn.ModuleList:
    return submodule(model, layers_path)
