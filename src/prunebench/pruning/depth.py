"""Depth pruning: remove whole decoder blocks, ranked on calibration sequences.

- ShortGPT (Men et al. 2024): a block's influence is 1 - cos(h_in, h_out), averaged over every
  calibration token; the least influential blocks go, all at once.
- SLEB (Song et al. 2024): blocks go one at a time, each time the block whose removal leaves the
  lowest calibration perplexity, the scores computed again after every removal.
- Shortened-LLaMA (Kim et al. 2024), one-shot: by the perplexity with each block removed alone
  (`ppl`), or by Taylor+ importance, |gradient x weight| of the language-modelling loss summed over
  the block's parameters (`taylor`).

A ratio is the fraction of decoder-block parameters removed; blocks of one model are alike, so it
is round(ratio x blocks) blocks (at least one, never all). `remove_blocks` leaves the standard
architecture with fewer layers: transformers 5 keys its KV cache by each attention's `layer_idx`
and builds masks from `config.layer_types`, so both are renumbered with the blocks that stay.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time

import torch
from torch import nn

from ..architectures.layout import decoder_layers
from ..io import InputError
from .passes import begin_pass, loss_gradients, pass_fields


def check(model: nn.Module, spec, layers_path: str) -> None:
    """Refuse a model this method cannot prune (the model may sit on the meta device): removing
    blocks keeps at least one, so a one-block model has nothing to remove."""
    blocks = len(decoder_layers(model, layers_path))
    if blocks < 2:
        raise InputError(f"{spec.name} removes whole decoder blocks and keeps at least one; this model has {blocks}")


def block_count(blocks: int, ratio: float) -> int:
    """How many of `blocks` alike blocks a ratio of the decoder's parameters removes."""
    return min(blocks - 1, max(1, round(ratio * blocks)))


def removed_fraction(model: nn.Module, removed: list[int], layers_path: str) -> float:
    """The fraction of decoder-block parameters in the `removed` blocks."""
    sizes = [sum(p.numel() for p in layer.parameters()) for layer in decoder_layers(model, layers_path)]
    return sum(sizes[i] for i in removed) / sum(sizes)


def remove_blocks(model: nn.Module, removed: list[int], layers_path: str) -> None:
    """Delete the `removed` blocks in place and renumber what stays, as a model built with fewer layers."""
    layers = decoder_layers(model, layers_path)
    gone = set(removed)
    if not gone <= set(range(len(layers))) or len(gone) >= len(layers):
        raise ValueError(f"cannot remove blocks {sorted(gone)} of {len(layers)}")
    kept = [layer for i, layer in enumerate(layers) if i not in gone]
    parent_path, _, name = layers_path.rpartition(".")
    parent = functools.reduce(getattr, parent_path.split("."), model) if parent_path else model
    setattr(parent, name, nn.ModuleList(kept))
    for index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = index
    config = model.config
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = [kind for i, kind in enumerate(config.layer_types) if i not in gone]
    config.num_hidden_layers = len(kept)


@contextlib.contextmanager
def running(model: nn.Module, blocks: list[nn.Module], layers_path: str):
    """The model runs `blocks` as its decoder layers (without a KV cache), then is restored."""
    layers = decoder_layers(model, layers_path)
    parent_path, _, name = layers_path.rpartition(".")
    parent = functools.reduce(getattr, parent_path.split("."), model) if parent_path else model
    setattr(parent, name, nn.ModuleList(blocks))
    try:
        yield
    finally:
        setattr(parent, name, layers)


def skipping(model: nn.Module, skipped: set[int], layers_path: str):
    """The model runs as if the `skipped` blocks were removed (without a KV cache), then is restored."""
    layers = decoder_layers(model, layers_path)
    return running(model, [layer for i, layer in enumerate(layers) if i not in skipped], layers_path)


class Replay(nn.Module):
    """Stands in for the blocks before a candidate: returns, call by call, the outputs they gave
    (one per calibration sequence, in order), so that a candidate's run computes its tail only.
    Attributes the model's layer loop reads (attention_type) come from the block it follows."""

    def __init__(self, block: nn.Module, outputs: list):
        super().__init__()
        self.__dict__["block"] = block  # not a submodule: its weights are not this module's
        self.outputs = iter(outputs)

    def forward(self, *args, **kwargs):
        return next(self.outputs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["block"], name)


class _Stop(Exception):
    pass


@torch.no_grad()
def block_outputs(model: nn.Module, calibration: list[torch.Tensor], blocks: list[nn.Module], layers_path: str) -> list:
    """What the last of `blocks` returns for each calibration sequence, the model running `blocks`
    as its decoder layers; the rest of the model (norm, output head) is not run."""
    outputs = []

    def stop(module, args, output):
        outputs.append(output)
        raise _Stop

    handle = blocks[-1].register_forward_hook(stop)
    try:
        with running(model, blocks, layers_path):
            for ids in calibration:
                try:
                    model(input_ids=ids.reshape(1, -1).to(model.device), use_cache=False)
                except _Stop:
                    pass
    finally:
        handle.remove()
    return outputs


def _hidden(value) -> torch.Tensor:
    return value[0] if isinstance(value, (tuple, list)) else value


def influence(h_in: torch.Tensor, h_out: torch.Tensor) -> tuple[float, int]:
    """(sum over tokens of 1 - cos(h_in, h_out), tokens): ShortGPT's block influence, unnormalised."""
    cos = nn.functional.cosine_similarity(h_in.reshape(-1, h_in.shape[-1]).float(),
                                          h_out.reshape(-1, h_out.shape[-1]).float(), dim=-1)
    return float((1 - cos).sum()), cos.numel()


@torch.no_grad()
def block_influence(model: nn.Module, calibration: list[torch.Tensor], layers_path: str) -> list[float]:
    """ShortGPT's score of every block: 1 - cos(input, output), averaged over calibration tokens."""
    layers = decoder_layers(model, layers_path)
    totals = [[0.0, 0] for _ in layers]

    def hook(index, module, args, kwargs, output):
        h_in = args[0] if args else kwargs["hidden_states"]
        value, tokens = influence(h_in, _hidden(output))
        totals[index][0] += value
        totals[index][1] += tokens

    handles = [layer.register_forward_hook(functools.partial(hook, i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        for ids in calibration:
            model(input_ids=ids.reshape(1, -1).to(model.device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return [value / tokens for value, tokens in totals]


@torch.no_grad()
def perplexity(model: nn.Module, calibration: list[torch.Tensor]) -> float:
    """exp of the mean next-token loss over every predicted calibration token."""
    total, tokens = 0.0, 0
    for ids in calibration:
        ids = ids.reshape(1, -1).to(model.device)
        logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
        total += float(nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
        tokens += ids.shape[1] - 1
    return math.exp(total / tokens)


def removal_perplexities(model, calibration, layers_path: str, removed: frozenset = frozenset()) -> dict[int, float]:
    """Calibration perplexity with each remaining block removed in addition to `removed`.

    The blocks before a candidate compute the same with or without it, so their outputs are kept
    from one pass (one block's outputs at a time, as SparseGPT keeps its layer inputs) and each
    candidate runs only the blocks after it: about half a model per candidate instead of a whole one.
    """
    layers = decoder_layers(model, layers_path)
    kept = [i for i in range(len(layers)) if i not in removed]
    scores, before = {}, None  # `before`: the outputs of the kept block preceding the candidate
    for position, index in enumerate(kept):
        def head():  # a Replay is read once: each pass over the calibration gets its own
            return [Replay(layers[kept[position - 1]], before)] if position else []

        with running(model, head() + [layers[i] for i in kept[position + 1:]], layers_path):
            scores[index] = perplexity(model, calibration)
        if position + 1 < len(kept):
            before = block_outputs(model, calibration, head() + [layers[index]], layers_path)
    return scores


def taylor_importance(model: nn.Module, calibration: list[torch.Tensor], layers_path: str) -> list[float]:
    """Shortened-LLaMA's Taylor+: sum over a block's weights of |dL/dw x w|, L the mean calibration loss."""
    layers = decoder_layers(model, layers_path)
    loss_gradients(model, calibration)
    scores = [float(sum((p.grad.float() * p.detach().float()).abs().sum() for p in layer.parameters()
                        if p.grad is not None)) for layer in layers]
    model.zero_grad(set_to_none=True)
    return scores


def choose_blocks(method: str, model, calibration, count: int, layers_path: str, log=print,
                  checkpoints=None) -> tuple[list[int], dict]:
    """The `count` blocks `method` removes, in the order chosen, and the scores it ranked them by.
    SLEB saves each round to `checkpoints` (the driver's) as it ends: a killed search resumes
    after its last finished round, with the same result."""
    if method == "sleb":
        removed, rounds = [], []
        for step in range(count):
            saved = checkpoints.load_step(f"sleb-round-{step:04d}") if checkpoints is not None else None
            if saved is not None and saved["removed_before"] == removed:
                scores = {int(k): v for k, v in saved["perplexity"].items()}
                log(f"sleb: removal {step + 1}/{count} resumed from its checkpoint")
            else:
                scores = removal_perplexities(model, calibration, layers_path, frozenset(removed))
                if checkpoints is not None:
                    checkpoints.save_step(f"sleb-round-{step:04d}", {"removed_before": list(removed),
                                                                      "perplexity": {str(k): v for k, v in scores.items()}})
            best = min(scores, key=lambda i: (scores[i], i))
            removed.append(best)
            rounds.append({str(k): v for k, v in scores.items()})
            log(f"sleb: removal {step + 1}/{count}: block {best} (calibration perplexity {scores[best]:.3f})")
        return removed, {"perplexity_per_round": rounds}
    if method == "shortgpt":
        scores = dict(enumerate(block_influence(model, calibration, layers_path)))
        key = "block_influence"
    elif method == "shortened_ppl":
        scores, key = removal_perplexities(model, calibration, layers_path), "perplexity_without_block"
    elif method == "shortened_taylor":
        scores, key = dict(enumerate(taylor_importance(model, calibration, layers_path))), "taylor_importance"
    else:
        raise ValueError(f"not a depth-pruning method: {method!r}")
    ranked = sorted(scores, key=lambda i: (scores[i], i))[:count]
    return ranked, {key: [scores[i] for i in sorted(scores)]}


def prune(model: nn.Module, calibration: list[torch.Tensor], spec, *, layers_path: str, device=None,
          log=print, checkpoints=None, **_options) -> dict:
    """Rank the blocks by `spec.method`, remove round(ratio x blocks) of them in place, and report
    which went, the scores, and the fraction of decoder parameters removed."""
    start = time.perf_counter()
    calibration = begin_pass(model, calibration, spec, device)
    layers = decoder_layers(model, layers_path)
    blocks = len(layers)
    count = block_count(blocks, spec.sparsity)
    chosen, scores = choose_blocks(spec.method, model, calibration, count, layers_path, log, checkpoints)
    fraction = removed_fraction(model, chosen, layers_path)
    before = sum(p.numel() for p in model.parameters())
    remove_blocks(model, chosen, layers_path)
    log(f"{spec.name}: removed blocks {sorted(chosen)} of {blocks} ({fraction:.1%} of decoder-block parameters)")
    return {"method": spec.name, "family": "depth", "sparsity_target": spec.sparsity, "pattern": None,
            "overall_sparsity": fraction, "removed_blocks": sorted(chosen), "removal_order": chosen,
            "blocks": {"before": blocks, "after": blocks - count},
            "parameters": {"before": before, "after": sum(p.numel() for p in model.parameters())},
            "scores": scores, **pass_fields(model, calibration, start)}
