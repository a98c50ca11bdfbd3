"""Wanda (Sun et al. 2023, locuslab/wanda ``lib/prune.py``) for one weight matrix.

A weight matters as much as |W_ij| times the typical size of the input it multiplies, so the score
is |W| * sqrt(mean x_j^2) and the comparison is made within each output row (one row is one output
neuron, whose error is what the score estimates).
"""

from __future__ import annotations

import torch

from .magnitude import nm_mask, row_lowest_mask


def prune(weight: torch.Tensor, norms: torch.Tensor, spec, **options) -> torch.Tensor:
    """Zero the lowest |W| * sqrt(norms): int(cols * s) per row, or M-N of every M per row.

    ``norms`` is the per-input-channel statistic (1/T) sum_tokens x^2 of the layer's input.
    """
    rows, cols = weight.shape
    if norms.shape != (cols,):
        raise ValueError(f"wanda: input statistic of shape {tuple(norms.shape)} for a weight of {cols} columns")
    scores = weight.detach().float().abs() * torch.sqrt(norms.float().to(weight.device)).reshape(1, -1)
    if spec.sparsity is None:
        mask = nm_mask(scores, spec.n, spec.m)
    else:
        mask = row_lowest_mask(scores, int(cols * spec.sparsity))
    return weight.detach().masked_fill(mask, 0)
