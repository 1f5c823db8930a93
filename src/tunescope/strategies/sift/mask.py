"""Choosing which k entries of a tensor SIFT trains: top-k |accumulated gradient| or k at random."""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor


def topk_indices(score: torch.Tensor, k: int) -> torch.Tensor:
    """Flat indices (int64, sorted ascending, shape [k]) of the k largest |score| entries.

    The mask of the paper: given the gradient G of a tensor summed over the selection batches,
    select the k entries with the largest |G_ij|.
    """
    if isinstance(score, DTensor):  # FSDP: the top-k of the full tensor, from its shards (the same on every process)
        from tunescope.diagnostics.sharded import sharded_topk_indices

        return sharded_topk_indices(score, k)
    flat = score.detach().reshape(-1)
    if not 0 < k <= flat.numel():
        raise ValueError(f"k must be in [1, {flat.numel()}], got {k}")
    idx = torch.topk(flat.abs().float(), k, sorted=False).indices
    return idx.sort().values.to(torch.int64)


def random_indices(numel: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """k distinct flat indices drawn uniformly at random (the ablation: same k, no gradient information)."""
    if not 0 < k <= numel:
        raise ValueError(f"k must be in [1, {numel}], got {k}")
    return torch.randperm(numel, generator=generator)[:k].sort().values.to(torch.int64)


def topk_share(score: torch.Tensor, indices: torch.Tensor) -> float:
    """Share of the squared norm of `score` carried by the entries at `indices`: sum_sel g^2 / sum_all g^2."""
    sq = score.detach().reshape(-1).double().pow(2)
    total = float(sq.sum())
    return float(sq[indices].sum()) / total if total > 0 else 0.0
