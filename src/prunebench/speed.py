"""What a model costs to run, measured: size, prefill and decode throughput, peak memory.

Structured pruning is done to make a model smaller and faster on ordinary hardware, so prunebench
measures it rather than assuming it: every model (dense or pruned) runs the same seeded prompts
(token ids drawn from the vocabulary, so no dataset or tokenizer is involved), the same batch, the
same number of steps, in its own process (peak memory is then the model's own):
- prefill: one forward over the prompts that fills the KV cache, as generation starts;
- decode: `new_tokens` single-token steps on that cache, greedy, never stopping early;
each timed `repeats` times after a warm-up, the median kept. Throughput counts tokens of the whole
batch per second of wall time.
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


@torch.no_grad()
def _prefill(model, ids):
    return model(input_ids=ids, use_cache=True)


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
    }
