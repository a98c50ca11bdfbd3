"""The routed forward pass of prunebench's dynamic models (MoD, D-LLM, SkipGPT): routers decide,
token by token, which sub-blocks of a decoder layer run; the weights stay.

This is inference, and what loading a saved `prunebench_routed` checkpoint needs; training the
routers is prunebench.pruning.dynamic. A token that skips a sub-block is not computed there: no
projections, no attention query, no MLP. The KV cache keeps one slot per position in every layer; a
token that skips a layer's attention leaves a marked slot there (zero value; a key whose first
element is NaN, zeroed before attention), and no later token attends to it. The mark lives in the
cache's own tensors, so a cache whose rows are selected, trimmed, reordered or joined (prunebench's
continuous batching) keeps it. MoD decides at inference by a threshold per router (the weight the
calibration tokens' top-k selection cut at); the two-way routers take the argmax.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..io import InputError
from .layout import decoder_layers


@dataclass(frozen=True)
class Routing:
    units: tuple[str, ...]      # the routed sub-blocks of a layer: attn and mlp, or the whole block
    gumbel: bool                # two-way Gumbel router (else MoD's one weight and top-k)
    dense_ends: bool            # first and last layers run every token
    lora_targets: tuple[str, ...]


ROUTINGS = {
    "mod": Routing(("attn", "mlp"), gumbel=False, dense_ends=True, lora_targets=("q_proj", "v_proj")),
    "dllm": Routing(("block",), gumbel=True, dense_ends=False, lora_targets=("q_proj", "v_proj")),
    "skipgpt": Routing(("attn", "mlp"), gumbel=True, dense_ends=False, lora_targets=("q_proj", "v_proj", "gate_proj")),
}


class Router(nn.Linear):
    """A router: a linear map from a token's normalised hidden state to its routing logits. Its own
    class, so that inference rewrites of a model's linear layers can tell it apart and leave it be."""


def _allowed(attention_mask, batch: int, length: int, past: int, device) -> torch.Tensor:
    """The model's attention mask as booleans (B, 1, T, S), True where a query may attend a key."""
    if attention_mask is None:
        keys = torch.arange(past + length, device=device)
        causal = keys[None, :] <= (past + torch.arange(length, device=device))[:, None]
        return causal.expand(batch, 1, length, past + length)
    allowed = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    return allowed.expand(batch, 1, *allowed.shape[-2:])


def _as_implementation(allowed: torch.Tensor, module: nn.Module, dtype) -> torch.Tensor:
    implementation = module.config._attn_implementation
    if implementation == "sdpa":
        return allowed
    if implementation == "eager":
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)
    raise InputError(f"routed layers run on the sdpa or eager attention, not {implementation!r}")


def _marked(keys: torch.Tensor, executed: torch.Tensor) -> torch.Tensor:
    """Keys (B, H, T, D) with the slots of tokens that did not run marked: first element NaN."""
    return keys.masked_fill((~executed)[:, None, :, None] & (torch.arange(keys.shape[-1], device=keys.device) == 0),
                            math.nan)


class _ScatterCache:
    """What the attention module of a routed layer sees as its cache: the executed tokens' keys and
    values go to their positions' slots, marked empty slots to the skipped ones' (see _marked), and
    all slots come back with the marks zeroed."""

    def __init__(self, cache, index: torch.Tensor, length: int, executed: torch.Tensor | None = None):
        self.cache, self.index, self.length, self.executed = cache, index, length, executed

    def _full(self, states: torch.Tensor) -> torch.Tensor:
        batch, heads, _, dim = states.shape
        full = states.new_zeros(batch, heads, self.length + 1, dim)   # slot `length` takes the padding
        full.scatter_(2, self.index[:, None, :, None].expand(-1, heads, -1, dim), states)
        return full[:, :, :self.length]

    def update(self, keys, values, layer_idx, *args, **kwargs):
        keys, values = _marked(self._full(keys), self.executed), self._full(values)
        if self.cache is not None:
            keys, values = self.cache.update(keys, values, layer_idx, *args, **kwargs)
        return keys.nan_to_num(0.0), values


def _executed_index(selected: torch.Tensor) -> torch.Tensor:
    """(B, n) positions of each row's selected tokens in order, padded with T (n: the most in a row)."""
    batch, length = selected.shape
    count = int(selected.sum(1).max()) if selected.numel() else 0
    order = torch.where(selected, torch.arange(length, device=selected.device), length)
    return order.sort(dim=1).values[:, :count]


def _gather(states: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of (B, T, ...) states at (B, n) positions, a zero row where the index is T (padding)."""
    padded = torch.cat([states, states.new_zeros(states.shape[0], 1, *states.shape[2:])], dim=1)
    return padded.gather(1, index.reshape(*index.shape, *[1] * (states.dim() - 2)).expand(-1, -1, *states.shape[2:]))


def _gate(layer, unit: str, normed: torch.Tensor, real: torch.Tensor):
    """(selected, gate) per token: which tokens run `unit`, and the factor on its output (1 or 0 in
    value; in training carrying the router's gradient)."""
    router = layer.routers[unit]
    logits = router(normed.to(router.weight.dtype))
    if not layer.route_gumbel:
        weight = logits[..., 0]
        if layer.training:
            k = torch.round(layer.route_capacity * real.sum(1)).long()              # per sequence
            ranked = weight.masked_fill(~real, -math.inf).argsort(dim=1, descending=True, stable=True)
            rank = torch.empty_like(ranked).scatter_(1, ranked, torch.arange(ranked.shape[1], device=ranked.device)
                                                      .expand_as(ranked).contiguous())
            selected = (rank < k[:, None]) & real
            if layer.route_seen is not None:
                layer.route_seen[unit].append(weight[real].detach().float())
            gate = selected * (1 + weight - weight.detach())
        else:
            selected = (weight > layer.route_thresholds[unit]) & real
            gate = selected.to(weight.dtype)
    else:
        if layer.training:
            uniform = torch.rand(logits.shape, generator=layer.route_noise, device="cpu").to(logits.device)
            soft = ((logits - torch.log(-torch.log(uniform.clamp(1e-10, 1 - 1e-10)))) / layer.route_temperature).softmax(-1)
            hard = nn.functional.one_hot(soft.argmax(-1), 2).to(soft.dtype)
            straight = hard - soft.detach() + soft
            selected, gate = hard[..., 0].bool() & real, straight[..., 0] * real
            layer.route_probabilities.append((logits.softmax(-1)[..., 0] * real).sum())
        else:
            selected = (logits[..., 0] > logits[..., 1]) & real
            gate = selected.to(logits.dtype)
    counts = layer.route_counts.setdefault(unit, torch.zeros(2, dtype=torch.long, device=real.device))
    counts += torch.stack([selected.sum(), real.sum()])
    return selected, gate


def _executed_keys(layer, cache, selected: torch.Tensor, past: int) -> torch.Tensor:
    """(B, S) flags of the keys this layer computed: earlier steps' (read off the marks in the cache)
    and this one's."""
    if cache is None or not past:
        return selected
    earlier = ~torch.isnan(cache.layers[layer.self_attn.layer_idx].keys[:, 0, :past, 0])
    return torch.cat([earlier, selected], dim=1)


def _attention(layer, normed, selected, gate, allowed, keys, position_embeddings, cache, kwargs):
    """The attention sub-block's contribution: every token in training, only the selected ones at inference."""
    attention = layer.self_attn
    batch, length, _ = normed.shape
    if layer.training:
        own = _diagonal(length, allowed.shape[-1], normed.device)
        # a skipped query (and a padding one) attends at least itself: no empty row, no NaN to spread
        mask = (allowed & keys[:, None, None, :]) | own
        every = torch.arange(length, device=normed.device).expand(batch, length)
        out, _ = attention(hidden_states=normed, position_embeddings=position_embeddings,
                           attention_mask=_as_implementation(mask, attention, normed.dtype),
                           past_key_values=_ScatterCache(cache, every, length, selected), **kwargs)
        return gate[..., None].to(out.dtype) * out
    index = _executed_index(selected)
    if index.shape[1] == 0:
        if cache is not None:   # nothing runs: the step's slots are still added, all marked empty
            config = attention.config
            heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
            zeros = normed.new_zeros(batch, heads, length, attention.head_dim)
            cache.update(_marked(zeros, selected), zeros, attention.layer_idx)
        return None
    padded = index == length
    cos, sin = (_gather(part.expand(batch, *part.shape[1:]), index) for part in position_embeddings)
    rows = torch.cat([allowed, allowed.new_ones(batch, 1, 1, allowed.shape[-1])], dim=2)
    rows = rows.gather(2, index[:, None, :, None].expand(-1, 1, -1, allowed.shape[-1]))
    mask = (rows & keys[:, None, None, :]) | padded[:, None, :, None]   # a padding row may attend anything
    out, _ = attention(hidden_states=_gather(normed, index), position_embeddings=(cos, sin),
                       attention_mask=_as_implementation(mask, attention, normed.dtype),
                       past_key_values=_ScatterCache(cache, index, length, selected), **kwargs)
    return _ScatterCache(None, index, length)._full(out[:, None])[:, 0]


def _diagonal(length: int, keys: int, device) -> torch.Tensor:
    """(T, S) True where a query of this step meets its own key (the step's keys are the last T)."""
    return torch.arange(keys, device=device)[None, :] == (keys - length + torch.arange(length, device=device))[:, None]


def _mlp(layer, normed, selected, gate):
    if layer.training:
        out = layer.mlp(normed)
        return gate[..., None].to(out.dtype) * out
    flat = selected.reshape(-1).nonzero().squeeze(1)
    if flat.numel() == 0:
        return None
    width = normed.shape[-1]
    out = layer.mlp(normed.reshape(-1, width).index_select(0, flat))
    return normed.new_zeros(normed.shape[0] * normed.shape[1], width).index_add_(0, flat, out).reshape(normed.shape)


def _routed_forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_values=None,
                    use_cache=False, position_embeddings=None, **kwargs):
    """The decoder layer with its sub-blocks routed (see the module docstring)."""
    batch, length, _ = hidden_states.shape
    cache = past_key_values
    past = cache.get_seq_length(self.self_attn.layer_idx) if cache is not None else 0
    allowed = _allowed(attention_mask, batch, length, past, hidden_states.device)
    real = allowed[:, 0].diagonal(offset=allowed.shape[-1] - length, dim1=-2, dim2=-1)
    normed = self.input_layernorm(hidden_states)
    first = self.route_units[0]
    selected, gate = _gate(self, first, normed, real)
    keys = _executed_keys(self, cache, selected, past)
    out = _attention(self, normed, selected, gate, allowed, keys, position_embeddings, cache, kwargs)
    if out is not None:
        hidden_states = hidden_states + out
    normed = self.post_attention_layernorm(hidden_states)
    if first != "block":
        selected, gate = _gate(self, "mlp", normed, real)
    out = _mlp(self, normed, selected, gate)
    return hidden_states if out is None else hidden_states + out


@functools.lru_cache(maxsize=None)
def routed_layer_class(base: type) -> type:
    """The base architecture's decoder layer with its forward routed; its weights' names unchanged."""
    return type(f"Routed{base.__name__}", (base,), {"forward": _routed_forward})


def routed_layers(model: nn.Module, kind: str, layers_path: str = "model.layers") -> list[int]:
    """Indices of the layers a routing routes: all, or all but the first and last (MoD)."""
    count = len(decoder_layers(model, layers_path))
    return list(range(1, count - 1)) if ROUTINGS[kind].dense_ends else list(range(count))


def attach_routers(model: nn.Module, kind: str, sparsity: float, *, layers_path: str = "model.layers",
                   layers: list[int] | None = None, thresholds: dict | None = None, temperature: float = 1.0,
                   seed: int = 0) -> list[int]:
    """Give the routed layers their routers (seeded initialisation) and routed forward; return their indices.

    The two-way routers start as the study's (Kaiming-uniform weight, zero bias); MoD's as nn.Linear's
    default. `thresholds` ({layer: {unit: weight}}, MoD) are the inference cut-offs (set_thresholds);
    without them a token runs where its weight is positive (every token at sparsity 0, none at 1).
    """
    routing = ROUTINGS[kind]
    if not 0.0 <= sparsity <= 1.0:
        raise InputError(f"{kind}: sparsity must lie in [0, 1], got {sparsity}")
    modules = decoder_layers(model, layers_path)
    layers = routed_layers(model, kind, layers_path) if layers is None else list(layers)
    hidden = model.config.hidden_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for index in layers:
            layer = modules[index]
            missing = [name for name in ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")
                       if not hasattr(layer, name)]
            if missing:
                raise InputError(f"{kind}: decoder layer {index} ({type(layer).__name__}) has no {', '.join(missing)}: "
                                 "routing needs a Llama-family block")
            device = next(layer.parameters()).device
            routers = nn.ModuleDict({unit: Router(hidden, 2 if routing.gumbel else 1, device=device,
                                                  dtype=torch.float32) for unit in routing.units})
            if routing.gumbel:
                for router in routers.values():
                    nn.init.kaiming_uniform_(router.weight, nonlinearity="linear")
                    nn.init.zeros_(router.bias)
            layer.__class__ = routed_layer_class(type(layer))
            layer.routers = routers
            layer.route_units, layer.route_gumbel = routing.units, routing.gumbel
            layer.route_capacity, layer.route_temperature = 1.0 - sparsity, temperature
            cut = (thresholds or {}).get(str(index), (thresholds or {}).get(index, {}))
            untrained = -math.inf if sparsity <= 0 else math.inf if sparsity >= 1 else 0.0
            layer.route_thresholds = {unit: float(cut.get(unit, untrained)) for unit in routing.units}
            layer.route_noise, layer.route_seen = None, None
            layer.route_probabilities, layer.route_counts = [], {}
    return layers


def routed_modules(model: nn.Module, layers_path: str = "model.layers") -> list[nn.Module]:
    """The decoder layers that carry routers."""
    return [layer for layer in decoder_layers(model, layers_path) if hasattr(layer, "routers")]


def routing_counts(model: nn.Module, layers_path: str = "model.layers", reset: bool = True) -> dict:
    """Executed and real token counts per routed layer and unit since the last reset, and the
    skipped fraction of all routed unit-tokens."""
    per_layer, executed, total = {}, 0, 0
    for index, layer in enumerate(decoder_layers(model, layers_path)):
        if not hasattr(layer, "routers"):
            continue
        counts = {unit: [int(v) for v in c.tolist()] for unit, c in layer.route_counts.items()}
        per_layer[str(index)] = {unit: 1 - run / max(seen, 1) for unit, (run, seen) in counts.items()}
        executed += sum(run for run, _ in counts.values())
        total += sum(seen for _, seen in counts.values())
        if reset:
            layer.route_counts = {}
    return {"skipped_fraction": 1 - executed / total if total else 0.0, "unit_tokens": total, "by_layer": per_layer}
