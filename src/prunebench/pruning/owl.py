"""OWL, outlier-weighted layer-wise sparsity (Yin et al. 2024, luuyin/OWL ``lib/prune.py``,
``prune_wanda_outlier``): a layer with more outliers keeps more of its weights.

A layer's outlier ratio is the share of its Wanda scores |W| * sqrt(mean x^2), over all its linear
layers at once, above M times their mean, on the dense model's inputs. The ratios, min-max scaled
to [0, 2 lambda] and shifted to mean 1 - s, are the fractions each layer keeps: the layers'
sparsities average the target s and differ by at most 2 lambda. Wanda or SparseGPT then prunes each
layer at its own sparsity (the driver's layer allocation, pruning.methods.LayerAllocation).
"""

from __future__ import annotations

import torch


def layer_score(linears: dict[str, tuple[torch.Tensor, torch.Tensor]], *, owl_m: float, **options) -> float:
    """The layer's outlier ratio in %: of all its Wanda scores, those above owl_m times their mean.
    ``linears`` maps each linear layer to (weight, its input's per-channel mean square)."""
    scores = torch.cat([(weight.detach().float().abs() * torch.sqrt(norms.float()).reshape(1, -1)).flatten()
                        for weight, norms in linears.values()])
    return float((scores > scores.mean() * owl_m).sum()) / scores.numel() * 100


def sparsities(scores: list[float], target: float, *, owl_lambda: float, **options) -> list[float]:
    """Each layer's sparsity from the layers' outlier ratios, in the reference's order of operations;
    equal ratios leave every layer at the target."""
    low, high = min(scores), max(scores)
    if high == low:
        return [target] * len(scores)
    kept = [(score - low) * (1 / (high - low) * owl_lambda * 2) for score in scores]
    mean = sum(kept) / len(kept)
    return [1 - (k - mean + (1 - target)) for k in kept]
