"""What every pass over a model shares, whatever the method: the decoder layers' inputs captured
once (each layer's call recorded, the layers themselves not run), a layer run again on a recorded
call, the start and the record fields of a whole-model pass, the language-modelling loss's
gradients, and the check that a model's layers are of the Llama family the width and dynamic
methods rewrite. The layer-by-layer driver and every whole-model method import these; none of
them imports another method.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import resource
import time

import torch
from torch import nn

from ..architectures.layout import LLAMA_PARTS, decoder_layers, submodule
from ..io import InputError


def require_llama_layers(model: nn.Module, layers_path: str, spec) -> nn.ModuleList:
    """The decoder layers, refused (one line naming what is missing) unless they are Llama-family
    layers with RMSNorm; GPT-2, OPT and other layouts are not rewritten by these methods."""
    layers = decoder_layers(model, layers_path)
    for part in LLAMA_PARTS:
        try:
            found = submodule(layers[0], part)
        except AttributeError:
            raise InputError(f"{spec.name} needs Llama-family decoder layers (RMSNorm, q/k/v/o projections, a "
                             f"gated MLP); {type(model).__name__}'s layers have no {part}") from None
        if part.endswith("layernorm") and not hasattr(found, "variance_epsilon"):
            raise InputError(f"{spec.name} needs RMSNorm decoder layers; {type(model).__name__}'s {part} is "
                             f"{type(found).__name__}")
    return layers


def begin_pass(model: nn.Module, calibration, spec, device=None, min_tokens: int = 2) -> list[torch.Tensor]:
    """What every whole-model (depth or width) pass does first: the model on its device in eval
    mode, and the calibration as 1-D token tensors, refused unless each has `min_tokens`."""
    if device is not None:
        model.to(device)
    model.eval()
    calibration = [torch.as_tensor(ids).reshape(-1) for ids in calibration]
    if not calibration or any(len(ids) < min_tokens for ids in calibration):
        raise InputError(f"{spec.name} needs calibration sequences of at least {min_tokens} tokens")
    return calibration


def pass_fields(model: nn.Module, calibration: list[torch.Tensor], start: float) -> dict:
    """The record fields every whole-model pass ends with: calibration size, wall time, peak memory."""
    run_device = next(model.parameters()).device
    peak = (torch.cuda.max_memory_allocated(run_device) if run_device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"calibration": {"sequences": len(calibration), "tokens": int(sum(len(ids) for ids in calibration))},
            "wall_seconds": time.perf_counter() - start, "peak_memory_bytes": int(peak), "resumed_layers": 0}


def loss_gradients(model: nn.Module, calibration: list[torch.Tensor]) -> None:
    """Leave in every parameter's .grad the gradient of L, the mean next-token loss over every
    predicted calibration token (one sequence at a time); the caller reads and clears them."""
    model.zero_grad(set_to_none=True)
    tokens = sum(len(ids) - 1 for ids in calibration)
    with torch.enable_grad():
        for ids in calibration:
            ids = ids.reshape(1, -1).to(model.device)
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            (nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum") / tokens).backward()


class _Stop(Exception):
    """Raised by the capture hook to end the model's forward once the layers' inputs are known."""


def _move(obj, device):
    """Tensors inside tuples, lists and dicts moved to ``device``; anything else unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_move(item, device) for item in obj)
    if isinstance(obj, dict):
        return {key: _move(value, device) for key, value in obj.items()}
    return obj


def device_of(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


def input_device(model, fallback) -> torch.device:
    """Where the token ids must go: the input embedding's device."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return device_of(embeddings) if embeddings is not None else fallback


def _outside_tensors(model: nn.Module, layers: nn.Module):
    """(module, kind, name, tensor) for every parameter and buffer not inside ``layers``."""
    inside = {id(t) for t in (*layers.parameters(), *layers.buffers())}
    for module in model.modules():
        for kind in ("_parameters", "_buffers"):
            for name, tensor in getattr(module, kind).items():
                if tensor is not None and id(tensor) not in inside:
                    yield module, kind, name, tensor


def move_outside(model, layers, device) -> list:
    """Move the model except its decoder layers (embeddings, rotary, norm, head) to ``device``."""
    moved = []
    for module, kind, name, tensor in list(_outside_tensors(model, layers)):
        moved.append((module, kind, name, tensor.device))
        if kind == "_parameters":
            tensor.data = tensor.data.to(device)          # keeps tied parameters tied
        else:
            module._buffers[name] = tensor.to(device)
    return moved


def restore(moved) -> None:
    for module, kind, name, device in moved:
        if kind == "_parameters":
            module._parameters[name].data = module._parameters[name].data.to(device)
        else:
            module._buffers[name] = module._buffers[name].to(device)


def _layer_call(layer: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The captured call (after the hidden states) with the cache switched off, where the layer
    accepts those. Positional arguments are passed by name where the signature names them: GPT-2's
    model hands its blocks the cache positionally, and a keyword on top would give it twice."""
    kwargs = dict(kwargs)
    kwargs.pop("hidden_states", None)
    params = inspect.signature(layer.forward).parameters
    names = [name for name, p in params.items()
             if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)][1:]
    rest = []
    for index, value in enumerate(args):
        if index < len(names) and params[names[index]].kind is not inspect.Parameter.POSITIONAL_ONLY \
                and names[index] not in kwargs:
            kwargs[names[index]] = value
        else:
            rest.append(value)
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, value in (("use_cache", False), ("past_key_values", None), ("layer_past", None)):
        if key in kwargs or key in params or (open_kwargs and key != "layer_past"):
            kwargs[key] = value
    return tuple(rest), kwargs


def capture_inputs(model: nn.Module, layers, calibration: list[torch.Tensor], device, *, store_device=None,
                   pin_memory: bool = False):
    """Run the model on each sequence and record each decoder layer's call (hidden states, kwargs).

    Returns (hidden, calls): ``hidden[j]`` is layer 0's input on sequence j, a view into one buffer
    that holds every sequence's activations (on ``store_device``, pinned if asked) and that the
    driver overwrites layer after layer; ``calls[j][i]`` is (extra positional args, kwargs) of layer
    i on sequence j. Keyword arguments are recorded per layer because models may give layers
    different masks or rotary tables (Gemma 3's local and global layers). The layers do not run:
    each is a pass-through during the capture, and the last one's pre-hook stops the forward, so the
    capture costs the embeddings and nothing else.
    """
    hidden, calls = [], []
    current: list = []
    lengths = [len(ids) for ids in calibration]
    offsets = [0, *itertools.accumulate(lengths)]
    buffer: list[torch.Tensor] = []

    def hook(index, module, args, kwargs):
        if index == 0:
            x = args[0] if args else kwargs["hidden_states"]
            if not buffer:
                target = torch.device(store_device) if store_device is not None else x.device
                buffer.append(torch.empty((offsets[-1], x.shape[-1]), dtype=x.dtype, device=target,
                                          pin_memory=pin_memory and target.type == "cpu"))
            j = len(hidden)
            view = buffer[0][offsets[j]:offsets[j] + lengths[j]]
            view.copy_(x.reshape(lengths[j], -1))
            hidden.append(view.view(x.shape))
        current.append((tuple(args[1:]), {k: v for k, v in kwargs.items() if k != "hidden_states"}))
        if index == len(layers) - 1:
            raise _Stop

    def passthrough(*args, **kwargs):
        return args[0] if args else kwargs["hidden_states"]  # same shape, used as is or as [0]

    handles, saved = [], []
    try:
        for index, layer in enumerate(layers):
            handles.append(layer.register_forward_pre_hook(functools.partial(hook, index), with_kwargs=True))
            saved.append(layer.__dict__.get("forward"))
            layer.forward = passthrough
        for ids in calibration:
            current = []
            try:
                model(input_ids=ids.reshape(1, -1).to(device), use_cache=False)
            except _Stop:
                pass
            else:
                raise InputError("the model returned without calling its last decoder layer; check layers_path")
            calls.append(current)
    finally:
        for handle in handles:
            handle.remove()
        for layer, forward in zip(layers, saved):
            del layer.forward
            if forward is not None:
                layer.forward = forward
    return hidden, calls


def run_layer(layer, hidden, call, device):
    """A decoder layer run on one sequence's hidden states with the call recorded for it."""
    args, kwargs = _layer_call(layer, *call)
    out = layer(hidden.to(device, non_blocking=True), *_move(args, device), **_move(kwargs, device))
    return out[0] if isinstance(out, (tuple, list)) else out
