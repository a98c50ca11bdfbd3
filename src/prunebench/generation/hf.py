"""The transformers backend: left-padded batches, a KV cache, and sampling seeded per request.

Its own decode loop rather than `model.generate`, for two reasons: each row samples from its own
generator (a sample's text depends on its seed, not on which batch it landed in), and rows that
finish leave the batch and the cache at once, so a long rambling answer does not make the whole
batch pay for every row until it ends.
"""

from __future__ import annotations

import torch

from ..models import load_model, load_tokenizer
from . import Completion, Request, Sampling


def _eos_ids(model, tokenizer) -> set[int]:
    ids = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return ids


NUCLEUS_CANDIDATES = 1024


def sample_next(logits: torch.Tensor, generators: list[torch.Generator], temperature: float,
                top_p: float) -> torch.Tensor:
    """One token per row: greedy at temperature 0, else nucleus sampling by inverse CDF per row.

    The nucleus is looked for among the 1,024 most likely tokens (a top-k, much cheaper than
    sorting a 150k vocabulary every step); only when those do not hold top_p of the mass is the
    whole vocabulary sorted. Either way the truncated distribution, and so the draw, is the same.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)
    if top_p >= 1.0 or bool((sorted_probs.sum(dim=-1) < top_p).any()):
        sorted_probs, order = probs.sort(dim=-1, descending=True)
    if top_p < 1.0:
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass strictly above each token
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
    cdf = sorted_probs.cumsum(dim=-1)
    draws = torch.stack([torch.rand((), generator=g) for g in generators]).to(cdf.device, cdf.dtype)
    position = torch.searchsorted(cdf, (draws * cdf[:, -1]).unsqueeze(-1)).clamp(max=cdf.shape[-1] - 1)
    return order.gather(-1, position).squeeze(-1)


class HFBackend:
    def __init__(self, model, entry: dict, device: str | None = None):
        self.tokenizer = load_tokenizer(model)
        self.model = load_model(model, entry["dtype"], device)
        self.device = self.model.device
        self.batch_size = entry["batch_size"]
        self.max_model_len = entry["max_model_len"]
        self.shard_size = self.batch_size
        self.eos = _eos_ids(self.model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos)

    def generate(self, requests: list[Request], sampling: Sampling) -> list[Completion]:
        encoded = [self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i]))
        results: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            outs = self._decode([encoded[i] for i in batch], [requests[i].seed for i in batch], sampling)
            for i, completion in zip(batch, outs):
                results[i] = completion
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _decode(self, prompts: list[list[int]], seeds: list[int], sampling: Sampling) -> list[Completion]:
        from transformers import DynamicCache

        width = max(len(p) for p in prompts)
        budget = min(sampling.max_new_tokens, self.max_model_len - width)
        if budget <= 0:
            return [Completion("", 0, "length") for _ in prompts]
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = torch.tensor(prompt)
            mask[row, width - len(prompt):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        cache = DynamicCache(config=self.model.config)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                            use_cache=True, logits_to_keep=1).logits[:, -1, :]
        active = list(range(len(prompts)))  # original row of each row still in the batch
        tokens: list[list[int]] = [[] for _ in prompts]
        finish = ["length"] * len(prompts)
        positions = positions[:, -1:]
        for _ in range(budget):
            chosen = sample_next(logits, [generators[r] for r in active], sampling.temperature, sampling.top_p)
            keep = []
            for slot, row in enumerate(active):
                token = int(chosen[slot])
                if token in self.eos:
                    finish[row] = "stop"
                    continue
                tokens[row].append(token)
                if len(tokens[row]) < budget:
                    keep.append(slot)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                for layer in cache.layers:
                    layer.batch_select_indices(index)
                mask, positions, chosen = mask[index], positions[index], chosen[index]
                active = [active[slot] for slot in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            positions = positions + 1
            logits = self.model(input_ids=chosen.unsqueeze(-1), attention_mask=mask, position_ids=positions,
                                past_key_values=cache, use_cache=True).logits[:, -1, :]
        return [Completion(self.tokenizer.decode(t, skip_special_tokens=True), len(t), f)
                for t, f in zip(tokens, finish)]
