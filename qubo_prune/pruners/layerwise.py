"""iCBS on one linear layer (objective 2): every row gets a block per iteration, all solved at once.

Blocks are built for many rows at a time (:func:`qubo_prune.objectives.reconstruction.build_blocks`),
solved through the shared step (:func:`qubo_prune.core.step.step`, one batched call when the
backend batches) and applied with :func:`qubo_prune.core.masks.apply_swap`, so every count of
the pattern is kept and no row's error rises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from qubo_prune.core.masks import apply_swap
from qubo_prune.core.patterns import Pattern
from qubo_prune.core.scores import gram_input_norms, score
from qubo_prune.core.step import BlockSolver, step
from qubo_prune.objectives.reconstruction import build_blocks, refit_rows
from qubo_prune.pruners.selection import select_row_blocks

__all__ = ["ICBSStats", "icbs_layer"]


@dataclass
class ICBSStats:
    """What the iCBS iterations of one layer did, in squared output error units."""

    blocks: int = 0
    accepted: int = 0
    repaired: int = 0
    swapped_weights: int = 0
    predicted_gain: float = 0.0
    per_iteration_gain: list[float] = field(default_factory=list)


@dataclass
class _Layer:
    """The state one iteration works on: mask, current weights, and what a kept weight becomes."""

    W0: torch.Tensor
    G: torch.Tensor
    mask: torch.Tensor
    weights: torch.Tensor
    values: torch.Tensor


def icbs_layer(
    W0: torch.Tensor,
    G: torch.Tensor,
    mask: torch.Tensor,
    pattern: Pattern,
    solver: BlockSolver,
    *,
    block_size: int = 64,
    iterations: int = 4,
    rows_per_batch: int = 512,
    seed: int = 0,
    tensor: str = "",
    refit: bool = False,
    start_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, ICBSStats]:
    """``(weights, mask, stats)``: ``mask`` (True = pruned) improved; every count of the pattern
    is kept. The weights are ``W0`` masked, or with ``refit`` the refit of the final mask.

    With ``refit`` the search scores masks by their error after the least-squares refit: each
    iteration starts from the refit weights, kept weights keep their refit values and a pruned
    one is proposed at its best single-weight value ``(G e)_j / G_jj``. A step's QUBO energy
    bounds the error after the next refit, which is kept per row only where it is lower, so
    the refit error never rises either, nor rises above that of ``start_weights`` (the start
    mask's own weights, e.g. SparseGPT's; default ``W0`` masked). Without ``refit`` only the
    mask moves, so the search starts from ``W0`` masked whatever ``start_weights`` are.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    rng = np.random.default_rng(seed)
    W0 = W0.contiguous()
    mask = mask.clone(memory_format=torch.contiguous_format)  # edited in place via view(-1)
    layer = _Layer(W0, G, mask, W0 * ~mask, W0)
    weights = start_weights
    stats = ICBSStats()
    for it in range(iterations):
        if refit:
            weights = refit_rows(W0, mask, G, current=weights).double().contiguous()
            diag = G.diagonal().clamp(min=0)
            proposal = ((W0.double() - weights) @ G) / torch.where(diag > 0, diag, 1.0)
            layer.weights, layer.values = weights, torch.where(mask, proposal, weights)
        scores = score("wanda", layer.values, input_norm=gram_input_norms(G))
        idx, groups, k = select_row_blocks(scores, mask, pattern, block_size, rng, explore=it > 0)
        gain = 0.0
        if idx.shape[1] >= 2 and any(v > 0 for v in k):
            gain = _iteration(layer, idx, groups, k, solver, rows_per_batch, tensor, stats)
        stats.predicted_gain += gain
        stats.per_iteration_gain.append(gain)
    if not refit:
        return layer.weights, mask, stats
    return refit_rows(W0, mask, G, current=weights), mask, stats


def _iteration(
    layer: _Layer,
    idx: np.ndarray,
    groups: tuple[np.ndarray, ...],
    k: tuple[int, ...],
    solver: BlockSolver,
    rows_per_batch: int,
    tensor: str,
    stats: ICBSStats,
) -> float:
    """One block per row, solved ``rows_per_batch`` rows at a time; returns the predicted gain."""
    gain = 0.0
    flat_mask, flat_w, flat_v = (t.view(-1) for t in (layer.mask, layer.weights, layer.values))
    for start in range(0, layer.W0.shape[0], rows_per_batch):
        rows = np.arange(start, min(start + rows_per_batch, layer.W0.shape[0]))
        blocks = build_blocks(
            layer.W0,
            layer.G,
            layer.mask,
            rows,
            idx[rows],
            groups,
            k,
            tensor,
            layer.weights,
            layer.values,
        )
        for move in step(blocks, solver):
            stats.blocks += 1
            stats.repaired += int(move.decision.repaired)
            if not move.decision.accepted:
                continue
            apply_swap(flat_mask, flat_w, flat_v, move.to_prune, move.to_restore)
            stats.accepted += 1
            stats.swapped_weights += 2 * len(move.to_prune)
            gain += move.decision.improvement
    return gain
