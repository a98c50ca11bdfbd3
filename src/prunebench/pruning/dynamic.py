"""Dynamic pruning: trained routers decide, token by token, which blocks run; the weights stay.

Three routings, as the study compares them (the routers as in its inference wrappers, with the
differences listed below):
- MoD (Mixture-of-Depths, Raposo et al. 2024): in every layer but the first and the last, a linear
  router for the attention and one for the MLP, one weight per token. In training the top-k tokens
  of each sequence pass (k = capacity x its tokens, capacity = 1 - sparsity).
- D-LLM (Jiang et al. 2024): per block a two-way router (execute, skip); a token runs or skips the
  whole block.
- SkipGPT (Zhao et al. 2025): two such routers per block, one for the attention, one for the MLP.
The two-way routers sample with hard Gumbel-softmax in training (straight-through gradient) and
take the argmax at inference. Every router reads its sub-block's own normalised input (the
block's RMSNorm output), which keeps the logits in range whatever the scale of the residual stream.

A token that skips a sub-block is not computed there: no projections, no attention query, no MLP.
The KV cache keeps one slot per position in every layer; a token that skips a layer's attention
leaves a marked slot there (zero value; a key whose first element is NaN, zeroed before attention),
and no later token attends to it. The mark lives in the cache's own tensors, so a cache whose rows
are selected, trimmed, reordered or joined (prunebench's continuous batching) keeps it. Training computes every token (the straight-through gradient needs the
skipped ones' outputs) under the same attention mask, so a trained router sees at training what it
gets at inference. Differences from the study's wrappers, each for a reason stated: MoD's router
weight scales a passing token's output by 1 + w - stopgrad(w) (value 1, gradient that of w), so a
block that runs computes exactly what the dense block computes and capacity 1 is the dense model;
MoD decides at inference by a threshold per router (the weight the calibration tokens' top-k
selection cut at), because top-k over a sequence would let later tokens decide for earlier ones
and could not run token by token; the wrappers compute every token and attend skipped ones.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from ..architectures.layout import decoder_layers
from ..architectures.routed import ROUTINGS, attach_routers, routed_modules, routing_counts
from .passes import begin_pass, pass_fields, require_llama_layers


def train_routers(model: nn.Module, calibration: list[torch.Tensor], kind: str, sparsity: float, *,
                  steps: int, batch_size: int, learning_rate: float, lora_learning_rate: float,
                  penalty: float, lora_rank: int, lora_alpha: int, seed: int, checkpoint_every: int,
                  layers_path: str = "model.layers", checkpoints=None, log=print, progress: bool = True,
                  step_seconds: list | None = None) -> dict:
    """Train the routers, and LoRA on the routing's targets, with LM loss + penalty x |(1 - sparsity) -
    mean execution probability| (the Gumbel routings; MoD's top-k fixes its capacity), the base
    frozen; the adapter is merged into the weights afterwards (prunebench.training).

    The Gumbel noise of a step is seeded by the step, and the state is saved every
    `checkpoint_every` steps to the driver's `checkpoints` (keyed by model, calibration and
    options), so a killed run resumes and ends with the weights an unkilled one would.
    """
    from ..training import LoraRun, train_lora

    routing = ROUTINGS[kind]
    layers = routed_modules(model, layers_path)
    noise = torch.Generator()
    for layer in layers:
        layer.route_noise = noise

    def before_step(step: int) -> None:
        noise.manual_seed(seed * 1000003 + step)
        for layer in layers:
            layer.route_probabilities, layer.route_counts = [], {}

    def penalty_term(mask: torch.Tensor):
        term = None
        if routing.gumbel:
            unit_tokens = int(mask.sum()) * sum(len(layer.route_units) for layer in layers)
            rate = torch.stack([p for layer in layers for p in layer.route_probabilities]).sum() / unit_tokens
            term = penalty * ((1.0 - sparsity) - rate).abs()
        return term, {"skipped": routing_counts(model, layers_path)["skipped_fraction"]}

    run = LoraRun(targets=routing.lora_targets, steps=steps, batch_size=batch_size, learning_rate=lora_learning_rate,
                  rank=lora_rank, alpha=lora_alpha, seed=seed, checkpoint_every=checkpoint_every,
                  extra=[p for layer in layers for p in layer.routers.parameters()], extra_learning_rate=learning_rate)
    directory = getattr(checkpoints, "directory", None)
    history = train_lora(model, calibration, run, checkpoint=directory / "routers.pt" if directory else None,
                         before_step=before_step, extra_loss=penalty_term, name=f"{kind} routers", log=log,
                         progress=progress, step_seconds=step_seconds)
    for layer in layers:
        layer.route_noise = None
    return history


def set_thresholds(model: nn.Module, calibration: list[torch.Tensor], layers_path: str = "model.layers") -> dict:
    """MoD's inference cut-offs: per router, the weight below which the calibration tokens' top-k
    selection (training routing) left a token out, so that a token-by-token decision keeps the capacity."""
    layers = routed_modules(model, layers_path)
    for layer in layers:
        layer.route_seen = {unit: [] for unit in layer.route_units}
    model.train()
    with torch.no_grad():
        for ids in calibration:
            model(input_ids=ids.reshape(1, -1).to(next(model.parameters()).device), use_cache=False)
    model.eval()
    thresholds = {}
    for index, layer in enumerate(decoder_layers(model, layers_path)):
        if not hasattr(layer, "routers"):
            continue
        cut = {}
        for unit, seen in layer.route_seen.items():
            weights = torch.cat(seen).sort(descending=True).values
            k = round(layer.route_capacity * len(weights))
            cut[unit] = float(weights[k]) if k < len(weights) else -math.inf
        layer.route_thresholds, layer.route_seen, layer.route_counts = cut, None, {}
        thresholds[str(index)] = cut
    return thresholds


def check(model: nn.Module, spec, layers_path: str) -> None:
    """Refuse a model whose layers the routers cannot wrap (Llama-family layers; the model may sit
    on the meta device)."""
    require_llama_layers(model, layers_path, spec)


def prune(model: nn.Module, calibration: list[torch.Tensor], spec, *, layers_path: str, device=None,
          log=print, checkpoints=None, **options) -> dict:
    """Train a routing at `spec.sparsity` on the calibration sequences; the model is left as
    prunebench's `prunebench_routed` architecture (the base weights with the LoRA merged, and the
    routers), ready to save. Options are the schema's router_* pruning options."""
    from ..architectures import RoutedConfig
    from ..config import pruning_defaults

    start = time.perf_counter()
    settings = {**{k: v for k, v in pruning_defaults().items() if k.startswith("router_")}, **options}
    calibration = begin_pass(model, calibration, spec, device)
    before = sum(p.numel() for p in model.parameters())
    temperature = settings["router_temperature"]
    layers = attach_routers(model, spec.method, spec.sparsity, layers_path=layers_path,
                            temperature=temperature, seed=settings["router_seed"])
    training = train_routers(model, calibration, spec.method, spec.sparsity, steps=settings["router_steps"],
                             batch_size=settings["router_batch_size"],
                             learning_rate=settings["router_learning_rate"],
                             lora_learning_rate=settings["router_lora_learning_rate"],
                             penalty=settings["router_penalty"], lora_rank=settings["router_lora_rank"],
                             lora_alpha=settings["router_lora_alpha"], seed=settings["router_seed"],
                             checkpoint_every=settings["router_checkpoint_every"], layers_path=layers_path,
                             checkpoints=checkpoints, log=log)
    thresholds = set_thresholds(model, calibration, layers_path) if not ROUTINGS[spec.method].gumbel else {}
    with torch.no_grad():
        routing_counts(model, layers_path)
        for ids in calibration:
            model(input_ids=ids.reshape(1, -1).to(next(model.parameters()).device), use_cache=False)
    achieved = routing_counts(model, layers_path)
    model.config = RoutedConfig.from_base(model.config, routing={
        "kind": spec.method, "sparsity": spec.sparsity, "layers": layers, "temperature": temperature,
        "thresholds": thresholds})
    routers = sum(p.numel() for layer in routed_modules(model, layers_path) for p in layer.routers.parameters())
    log(f"{spec.name}: {achieved['skipped_fraction']:.1%} of routed block-tokens skipped on the calibration "
        f"tokens ({len(layers)} routed layers, {routers} router parameters)")
    return {"method": spec.name, "family": "dynamic", "sparsity_target": spec.sparsity, "pattern": None,
            "overall_sparsity": achieved["skipped_fraction"], "routing": {"kind": spec.method, "layers": layers,
                                                                          "thresholds": thresholds},
            "skipped_by_layer": achieved["by_layer"], "training": training,
            "parameters": {"before": before, "after": before + routers, "routers": routers},
            **pass_fields(model, calibration, start)}
