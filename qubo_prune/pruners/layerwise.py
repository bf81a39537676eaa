"""iCBS on one linear layer (objective 2): every row gets a block per iteration, all solved at once.

The whole loop is a tensor program on the Gram's device: the blocks of many rows are built as
one :class:`~qubo_prune.core.batch.BlockBatch`
(:func:`qubo_prune.objectives.reconstruction.build_blocks`), solved through the shared step
(:func:`qubo_prune.core.step.step_batch`: as tensors by a backend that takes them, block by
block as BQMs by any other) and applied with :func:`qubo_prune.core.masks.apply_swap`, so every
count of the pattern is kept and no row's error rises. Under the per-matrix ``layer`` pattern
the rows' counts also move, by transfers between rows (:mod:`qubo_prune.pruners.transfers`)
that never raise the layer's error. The residual ``(W0 - W) G`` is kept across the loop: a
swap changes it by a sparse product, the refit updates it as it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from qubo_prune.core.batch import BlockBatch
from qubo_prune.core.decode import BatchDecision
from qubo_prune.core.masks import apply_swap
from qubo_prune.core.patterns import Pattern
from qubo_prune.core.scores import gram_input_norms, score
from qubo_prune.core.step import BlockSolver, step_batch
from qubo_prune.objectives.reconstruction import GramAccumulator, build_blocks
from qubo_prune.objectives.refit import RefitState, refit, residual
from qubo_prune.pruners.selection import select_row_blocks
from qubo_prune.pruners.transfers import row_transfers

__all__ = ["ICBSStats", "RefitSchedule", "icbs_layer", "refit_layer"]

# Rounds of count transfers between rows after each iteration's blocks (``layer`` pattern);
# each round moves at most one weight into and one out of each row.
TRANSFER_ROUNDS = 8


@dataclass(frozen=True)
class RefitSchedule:
    """Conjugate-gradient iterations of the refit: before each iCBS iteration and at the end.

    The search between refits lowers the error too, so a few iterations per round suffice;
    the final refit converges further (measured in docs/benchmarks.md).
    """

    per_iteration: int = 2
    final: int = 6


@dataclass
class ICBSStats:
    """What the iCBS iterations of one layer did, in squared output error units."""

    blocks: int = 0
    accepted: int = 0
    repaired: int = 0
    swapped_weights: int = 0
    transferred: int = 0
    predicted_gain: float = 0.0
    per_iteration_gain: list[float] = field(default_factory=list)


def refit_layer(
    W0: torch.Tensor,
    mask: torch.Tensor,
    acc: GramAccumulator,
    start: torch.Tensor,
    iterations: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The refit of ``mask`` warm-started from ``start`` (no row's error above ``start``'s)."""
    G = acc.gram(dtype)
    W0c = W0.to(G.device, dtype)
    mask = mask.to(G.device)
    state = residual(W0c, start.to(G.device, dtype) * ~mask, G)
    state = refit(W0c, mask, G, state, iterations)
    return state.weights.to(W0.dtype)


def icbs_layer(
    W0: torch.Tensor,
    acc: GramAccumulator,
    mask: torch.Tensor,
    pattern: Pattern,
    solver: BlockSolver | None,
    *,
    block_size: int = 64,
    iterations: int = 4,
    rows_per_batch: int = 4096,
    seed: int = 0,
    tensor: str = "",
    refit_schedule: RefitSchedule | None = None,
    start_weights: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, ICBSStats]:
    """``(weights, mask, stats)``: ``mask`` (True = pruned) improved; every count of the pattern
    is kept. The weights are ``W0`` masked, or with a ``refit_schedule`` the refit of the
    final mask. Everything runs on ``acc.G``'s device; ``dtype`` is the precision of the
    layer-sized products (residual, refit), the blocks are float64.

    With a refit the search scores masks by their error after the least-squares refit: each
    iteration starts from the refit weights, kept weights keep their refit values and a pruned
    one is proposed at its best single-weight value ``(G e)_j / G_jj``. Swaps and refits both
    lower every row's error (transfers, the layer's), so the error never rises above that of
    ``start_weights`` (the
    start mask's own weights, e.g. SparseGPT's; default ``W0`` masked). Without a refit only
    the mask moves, so the search starts from ``W0`` masked whatever ``start_weights`` are.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    device = acc.G.device
    W0c = W0.to(device, dtype).contiguous()
    mask = mask.to(device).clone(memory_format=torch.contiguous_format)  # edited via view(-1)
    start = W0c * ~mask if start_weights is None or refit_schedule is None else start_weights
    Gc = acc.gram(dtype)
    layer = _Layer(W0c, acc.G, Gc, mask, residual(W0c, start.to(device, dtype) * ~mask, Gc), W0c)
    generator = torch.Generator(device=device).manual_seed(seed)
    norms = gram_input_norms(acc.G)
    stats = ICBSStats()
    for it in range(iterations):
        if refit_schedule is not None:
            layer.refit(refit_schedule.per_iteration)
        scores = score("wanda", layer.values, input_norm=norms)
        idx, groups, k = select_row_blocks(scores, mask, pattern, block_size, generator, it > 0)
        gain = 0.0
        if idx.shape[1] >= 2 and any(v > 0 for v in k):
            for first in range(0, W0c.shape[0], rows_per_batch):
                rows = slice(first, min(first + rows_per_batch, W0c.shape[0]))
                batch = layer.blocks(rows, idx[rows], groups, k, tensor)
                gain += layer.apply(batch, step_batch(batch, solver), rows, stats)
        if pattern.kind == "layer":
            gain += layer.transfer(TRANSFER_ROUNDS, stats)
        stats.predicted_gain += gain
        stats.per_iteration_gain.append(gain)
    if refit_schedule is not None:
        layer.refit(refit_schedule.final)
    return layer.state.weights.to(W0.dtype), mask, stats


@dataclass
class _Layer:
    """One layer's search state on its device: the dense weights, the Gram (float64 for the
    blocks, ``Gc`` in the products' precision), the mask, the current weights with their
    residual, and what each weight becomes when kept (``values``)."""

    W0: torch.Tensor
    G: torch.Tensor
    Gc: torch.Tensor
    mask: torch.Tensor
    state: RefitState
    values: torch.Tensor

    def refit(self, iterations: int) -> None:
        """Refit the kept weights; offer each pruned one at its best single-weight value."""
        self.state = refit(self.W0, self.mask, self.Gc, self.state, iterations)
        diag = self.Gc.diagonal()
        proposal = self.state.residual / torch.where(diag > 0, diag, 1.0)
        self.values = torch.where(self.mask, proposal, self.state.weights)

    def blocks(
        self,
        rows: slice,
        idx: torch.Tensor,
        groups: tuple[np.ndarray, ...],
        k: tuple[int, ...],
        tensor: str,
    ) -> BlockBatch:
        return build_blocks(
            self.W0, self.G, self.mask, rows, idx, groups, k, tensor, self.values, self.state
        )

    def apply(
        self, batch: BlockBatch, decision: BatchDecision, rows: slice, stats: ICBSStats
    ) -> float:
        """Apply a batch's accepted swaps (its rows: ``rows``); returns the predicted gain."""
        to_prune, to_restore = decision.swap(batch)
        stats.blocks += len(batch)
        stats.repaired += int(decision.repaired.sum())
        stats.accepted += int(decision.accepted.sum())
        stats.swapped_weights += 2 * len(to_prune)
        if len(to_prune):
            self._move(to_prune, to_restore, rows)
        return float(decision.improvement.sum())

    def transfer(self, rounds: int, stats: ICBSStats) -> float:
        """Up to ``rounds`` rounds of count transfers between rows (per-matrix patterns);
        returns the predicted gain."""
        gain, diag = 0.0, self.Gc.diagonal()
        for _ in range(rounds):
            to_prune, to_restore, round_gain = row_transfers(
                self.state.weights, self.state.residual, self.values, self.mask, diag
            )
            if not len(to_prune):
                break
            self._move(to_prune, to_restore, slice(0, self.W0.shape[0]))
            stats.transferred += len(to_prune)
            gain += round_gain
        return gain

    def _move(self, to_prune: torch.Tensor, to_restore: torch.Tensor, rows: slice) -> None:
        """Prune and restore flat coordinates of rows ``rows``; update the residual and errors
        of those rows by one sparse product with ``G``."""
        flat_w = self.state.weights.view(-1)
        coords = torch.cat([to_prune, to_restore])
        before = flat_w[coords].clone()
        apply_swap(self.mask.view(-1), flat_w, self.values.reshape(-1), to_prune, to_restore)
        cols = self.W0.shape[1]
        local = torch.stack([coords // cols - rows.start, coords % cols])
        change = torch.sparse_coo_tensor(
            local, flat_w[coords] - before, (rows.stop - rows.start, cols), check_invariants=False
        )
        residual_rows = self.state.residual[rows]
        residual_rows -= torch.sparse.mm(change, self.Gc)  # the residual moves by -change G
        E = self.W0[rows] - self.state.weights[rows]
        self.state.errors[rows] = (E * residual_rows).sum(dim=1)
