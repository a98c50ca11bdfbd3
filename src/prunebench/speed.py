"""What a model costs to run, measured: size, prefill and decode throughput, peak memory.

Structured pruning is done to make a model smaller and faster on ordinary hardware, so prunebench
measures it rather than assuming it: every model (dense or pruned) runs the same seeded prompts
(token ids drawn from the vocabulary, so no dataset or tokenizer is involved), the same batch, the
same number of steps, in its own process (peak memory is then the model's own):
- prefill: one forward over the prompts that fills the KV cache and gives the next token's logits,
  as generation starts;
- decode: `new_tokens` single-token steps on that cache, greedy, never stopping early;
each timed `repeats` times after a warm-up, the median kept. Throughput counts tokens of the whole
batch per second of wall time. A dynamic model's routers skip tokens at run time: the fraction of
routed block-tokens they skipped during the timed runs is recorded beside the throughput.
"""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def checkpoint_size(directory: str | Path) -> dict:
    """Bytes of the weights on disk (the safetensors files of a checkpoint directory) and the dtype
    they are stored in (sizes of two checkpoints compare only at one dtype)."""
    import json

    config = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    return {"checkpoint_bytes": sum(p.stat().st_size for p in Path(directory).glob("*.safetensors")),
            "checkpoint_dtype": config.get("dtype") or config.get("torch_dtype")}


def two_four_linears(model) -> dict[str, torch.nn.Linear]:
    """The linears whose weights are 2:4 (at most two nonzeros in every four consecutive weights of
    a row): those PyTorch's semi-structured sparse kernels can run."""
    from .pruning.magnitude import satisfies_nm

    return {name: module for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and satisfies_nm(module.weight.detach(), 2, 4)}


def to_semi_structured(model) -> dict:
    """Swap every 2:4 linear's weight for PyTorch's semi-structured sparse tensor (cuSPARSELt or
    CUTLASS kernels), so that a 2:4 model is timed as it would actually run sparse. Those kernels
    exist on CUDA GPUs for half precision only; a weight whose shape they refuse stays dense."""
    from .io import InputError

    parameter = next(model.parameters())
    if parameter.device.type != "cuda":
        raise InputError("--semi-structured: PyTorch's 2:4 sparse kernels run on CUDA GPUs only (use --device cuda)")
    if parameter.dtype not in (torch.float16, torch.bfloat16):
        raise InputError(f"--semi-structured: the 2:4 kernels take float16 or bfloat16 weights, not {parameter.dtype}")
    from torch.sparse import to_sparse_semi_structured

    swapped, refused = [], {}
    for name, module in two_four_linears(model).items():
        try:
            module.weight = torch.nn.Parameter(to_sparse_semi_structured(module.weight.detach()), requires_grad=False)
            swapped.append(name)
        except (RuntimeError, ValueError) as err:
            refused[name] = str(err).splitlines()[0][:200]
    return {"semi_structured_linears": len(swapped), "semi_structured_refused": refused}


@torch.no_grad()
def _prefill(model, ids):
    # the next token's logits only, as generation asks for them: the prompt's other logits would
    # time the output head over every prompt position, work no generation does
    return model(input_ids=ids, use_cache=True, logits_to_keep=1)


@torch.no_grad()
def _decode(model, prefilled, steps: int) -> None:
    cache, token = prefilled.past_key_values, prefilled.logits[:, -1:].argmax(-1)
    for _ in range(steps):
        out = model(input_ids=token, past_key_values=cache, use_cache=True)
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)


def measure(model, *, prompt_tokens: int = 128, new_tokens: int = 64, batch_size: int = 1, repeats: int = 3,
            seed: int = 0) -> dict:
    """Throughput and memory of `model` (loaded, in eval mode) on seeded prompts."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (batch_size, prompt_tokens), generator=generator).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _decode(model, _prefill(model, ids), 2)  # warm-up: kernels, allocator, caches
    routed = _routing(model)   # a dynamic model: count its routers' decisions from here on
    prefill_s, decode_s = [], []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        prefilled = _prefill(model, ids)
        _sync(device)
        middle = time.perf_counter()
        _decode(model, prefilled, new_tokens)
        _sync(device)
        prefill_s.append(middle - start)
        decode_s.append(time.perf_counter() - middle)
        del prefilled
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "prefill_tokens_per_second": batch_size * prompt_tokens / statistics.median(prefill_s),
        "decode_tokens_per_second": batch_size * new_tokens / statistics.median(decode_s),
        "prefill_seconds": prefill_s, "decode_seconds": decode_s,
        "peak_memory_bytes": int(peak),
        "device": str(device), "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "settings": {"prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "batch_size": batch_size,
                     "repeats": repeats, "seed": seed},
        **({"routing": _routing(model)} if routed is not None else {}),
    }


def _routing(model) -> dict | None:
    """A dynamic model's skipped fraction of routed block-tokens since the last call (counters
    reset), or None for a model without routers."""
    from .architectures.routed import routing_counts

    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not any(hasattr(layer, "routers") for layer in layers):
        return None
    counts = routing_counts(model, "model.layers")
    return {"skipped_fraction": counts["skipped_fraction"], "unit_tokens": counts["unit_tokens"]}
