"""Magnitude pruning, and the mask selections the other methods share.

Every selection prunes an exact count (the k lowest scores, ties broken by position through a
stable sort) rather than "everything <= a threshold", which over-prunes when scores tie.
"""

from __future__ import annotations

import torch


def lowest_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """True at the k lowest entries of the whole tensor."""
    return row_lowest_mask(scores.reshape(1, -1), k).view(scores.shape)


def row_lowest_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """True at the k lowest entries of every row; among equal scores, the first ones.

    The same mask as the first k of a stable argsort, from a selection (kthvalue) rather than a
    sort: what is below the k-th value, then as many of the ties at it as are still needed.
    """
    rows, cols = scores.shape
    if k <= 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    if k >= cols:
        return torch.ones_like(scores, dtype=torch.bool)
    kth = torch.kthvalue(scores, k, dim=1, keepdim=True).values
    below = scores < kth
    ties = scores == kth
    needed = k - below.sum(dim=1, keepdim=True)
    return below | (ties & (torch.cumsum(ties, dim=1) <= needed))


def check_nm(cols: int, n: int, m: int) -> None:
    """N:M groups are M consecutive columns of a row, so the row length must split into them."""
    if cols % m:
        raise ValueError(f"an {n}:{m} pattern needs a column count divisible by {m}, got {cols}")


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """True at the M-N lowest scores of every group of M consecutive columns of every row."""
    rows, cols = scores.shape
    check_nm(cols, n, m)
    groups = scores.reshape(rows, cols // m, m)
    lowest = torch.argsort(groups, dim=2, stable=True)[:, :, : m - n]
    return torch.zeros_like(groups, dtype=torch.bool).scatter_(2, lowest, True).reshape(rows, cols)


def satisfies_nm(weight: torch.Tensor, n: int, m: int) -> bool:
    """Whether every group of M consecutive weights of every row has at most N nonzeros."""
    rows, cols = weight.shape
    if cols % m:
        return False
    return bool(((weight != 0).reshape(rows, cols // m, m).sum(dim=2) <= n).all())


def prune(weight: torch.Tensor, stats, spec, **options) -> torch.Tensor:
    """Zero the lowest |W|: int(numel * s) over the whole matrix, or M-N of every M per row."""
    scores = weight.detach().abs().float()
    if spec.sparsity is None:
        mask = nm_mask(scores, spec.n, spec.m)
    else:
        mask = lowest_mask(scores, int(weight.numel() * spec.sparsity))
    return weight.detach().masked_fill(mask, 0)
