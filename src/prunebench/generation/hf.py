"""The transformers backend: a KV cache, continuous batching, and sampling seeded per request.

Its own decode loop rather than `model.generate`, for three reasons: each row samples from its own
generator (a sample's text depends on its seed, not on which batch it landed in); rows that finish
leave the batch and the cache at once and waiting prompts take their places (a long rambling answer
does not hold the others back); and prompts are prefilled in groups of similar length, then joined
into one left-padded cache, so a long prompt does not make every short one pay for its padding.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

from ..models import load_model, load_tokenizer
from ..prompts import PROMPT_TOO_LONG
from . import Completion, Request, Sampling, fits


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


def prefill_groups(lengths: list[int], max_tokens: int, slack: float = 1.25) -> list[list[int]]:
    """Indices cut into groups to prefill together: padded size within `slack` of the real tokens.

    Indices are taken shortest first, so each group pads to its own longest prompt only.
    """
    groups: list[list[int]] = []
    group: list[int] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        padded = (len(group) + 1) * lengths[i]
        if group and (padded > slack * (real + lengths[i]) or padded > max_tokens):
            groups.append(group)
            group, real = [], 0
        group.append(i)
        real += lengths[i]
    if group:
        groups.append(group)
    return groups


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


@dataclass
class Rows:
    """Requests decoded together: their KV cache, attention mask, next position and next-token logits."""

    ids: list[int]
    cache: object
    mask: torch.Tensor        # (rows, width), 0 on left padding
    positions: torch.Tensor   # (rows, 1), the position of each row's last token
    logits: torch.Tensor      # (rows, vocab), the distribution of each row's next token
    joinable: bool            # a plain per-layer cache (see `joinable`): it can be padded and trimmed

    def select(self, keep: list[int]) -> None:
        """Keep these rows, and drop the left columns that are padding in every row kept."""
        index = torch.tensor(keep, device=self.mask.device)
        self.mask, self.positions, self.logits = self.mask[index], self.positions[index], self.logits[index]
        self.ids = [self.ids[k] for k in keep]
        if not self.joinable:
            for layer in self.cache.layers:
                layer.batch_select_indices(index)
            return
        lead = int(self.mask.any(dim=0).int().argmax())
        self.mask = self.mask[:, lead:]
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[index, :, lead:], layer.values[index, :, lead:]

    @staticmethod
    def join(parts: list["Rows"]) -> "Rows":
        """One batch of several: every cache and mask left-padded to the widest."""
        if len(parts) == 1:
            return parts[0]
        width = max(p.mask.shape[1] for p in parts)
        first = parts[0]
        for number, layer in enumerate(first.cache.layers):
            layer.keys = torch.cat([_left_pad(p.cache.layers[number].keys, width, 2) for p in parts])
            layer.values = torch.cat([_left_pad(p.cache.layers[number].values, width, 2) for p in parts])
        return Rows([i for p in parts for i in p.ids], first.cache,
                    torch.cat([_left_pad(p.mask, width, 1) for p in parts]),
                    torch.cat([p.positions for p in parts]), torch.cat([p.logits for p in parts]), True)


class InputMajorLinear(torch.nn.Module):
    """A linear layer whose weight is stored (in, out): x @ W runs 1.4x faster per decode step on
    CPU than F.linear's x @ W.T at small batch (Qwen2.5 0.5B, batch 30; MKL packs the operand better).
    Logits agree with nn.Linear to fp32 rounding (1e-4 on logits of 18)."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.weight_t = linear.weight.detach().t().contiguous()
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight_t
        return out if self.bias is None else out + self.bias


def use_input_major_linears(model: torch.nn.Module) -> None:
    """Swap every nn.Linear of an inference-only model for an InputMajorLinear (its own subclasses,
    such as a dynamic model's routers, stay as they are)."""
    for name, module in list(model.named_modules()):
        if type(module) is torch.nn.Linear:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, InputMajorLinear(module))


def joinable(cache) -> bool:
    """Plain per-layer caches can be padded and joined; sliding-window and static ones cannot."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in cache.layers)


class HFBackend:
    PREFILL_TOKENS = 8192  # the most tokens in one prefill call (activations grow with it)

    def __init__(self, model, entry: dict, device: str | None = None):
        self._setup(load_model(model, entry["dtype"], device), load_tokenizer(model), entry)
        if self.device.type == "cpu":
            use_input_major_linears(self.model)

    @classmethod
    def over(cls, model, tokenizer, entry: dict) -> "HFBackend":
        """A backend over a model already in memory, its modules left as they are (RESP regenerates
        its traces with the model it is pruning, between pruning steps)."""
        backend = cls.__new__(cls)
        backend._setup(model, tokenizer, entry)
        return backend

    def _setup(self, model, tokenizer, entry: dict) -> None:
        self.tokenizer, self.model = tokenizer, model
        self.device = self.model.device
        self.batch_size = entry["batch_size"]
        self.max_model_len = entry["max_model_len"]
        self.shard_size = 2 * self.batch_size  # rows finishing early make room for the rest of a shard
        self.eos = _eos_ids(self.model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos)
        from transformers import DynamicCache

        self.joinable = joinable(DynamicCache(config=self.model.config))

    def generate(self, requests: list[Request], sampling: Sampling) -> list[Completion]:
        prompts = [self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]
        budgets = [min(r.limit(sampling), self.max_model_len - len(p)) if fits(len(p), self.max_model_len)
                   else 0 for r, p in zip(requests, prompts)]
        generators = [torch.Generator().manual_seed(r.seed) for r in requests]
        return self._decode(prompts, budgets, generators, sampling)

    @torch.inference_mode()
    def _prefill(self, prompts: list[list[int]], ids: list[int]) -> Rows:
        from transformers import DynamicCache

        width = max(len(prompts[i]) for i in ids)
        tokens = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, i in enumerate(ids):
            tokens[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        tokens, mask = tokens.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self.model(input_ids=tokens, attention_mask=mask, position_ids=positions, past_key_values=cache,
                            use_cache=True, logits_to_keep=1).logits[:, -1, :]
        return Rows(list(ids), cache, mask, positions[:, -1:], logits, self.joinable)

    def _admit(self, prompts: list[list[int]], ids: list[int], batch: Rows | None) -> Rows:
        if not self.joinable:  # one padded prefill into an empty batch
            return self._prefill(prompts, ids)
        groups = prefill_groups([len(prompts[i]) for i in ids], self.PREFILL_TOKENS)
        parts = [self._prefill(prompts, [ids[g] for g in group]) for group in groups]
        return Rows.join(([batch] if batch is not None else []) + parts)

    @torch.inference_mode()
    def _decode(self, prompts: list[list[int]], budgets: list[int], generators: list[torch.Generator],
                sampling: Sampling) -> list[Completion]:
        tokens: list[list[int]] = [[] for _ in prompts]
        finish = ["length" if budget > 0 else PROMPT_TOO_LONG for budget in budgets]
        waiting = deque(sorted((i for i in range(len(prompts)) if budgets[i] > 0), key=lambda i: len(prompts[i])))
        batch: Rows | None = None
        refill = max(1, self.batch_size // 4)
        while waiting or batch is not None:
            free = self.batch_size - (len(batch.ids) if batch else 0)
            if waiting and (batch is None or (self.joinable and free >= min(refill, len(waiting)))):
                admitted = [waiting.popleft() for _ in range(min(free, len(waiting)))]
                batch = self._admit(prompts, admitted, batch)
            chosen = sample_next(batch.logits, [generators[i] for i in batch.ids], sampling.temperature,
                                 sampling.top_p)
            keep = []
            for slot, i in enumerate(batch.ids):
                token = int(chosen[slot])
                if token in self.eos:
                    finish[i] = "stop"
                    continue
                tokens[i].append(token)
                if len(tokens[i]) < budgets[i]:
                    keep.append(slot)
            if not keep:
                batch = None
                continue
            if len(keep) < len(batch.ids):
                batch.select(keep)
                chosen = chosen[keep]
            batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.ids), 1))], dim=-1)
            batch.positions = batch.positions + 1
            batch.logits = self.model(input_ids=chosen.unsqueeze(-1), attention_mask=batch.mask,
                                      position_ids=batch.positions, past_key_values=batch.cache,
                                      use_cache=True).logits[:, -1, :]
        return [Completion(self.tokenizer.decode(t, skip_special_tokens=True), len(t), f)
                for t, f in zip(tokens, finish)]
