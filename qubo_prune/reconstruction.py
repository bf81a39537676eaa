"""Objective 2 of the math note: a linear layer's output reconstruction error, solved by iCBS.

For ``y = W u`` with calibration inputs ``U`` the squared output error of row ``r`` is
``e^T G e`` with ``G = U U^T`` (float64, shared by all rows) and ``e = p_r * w0_r`` the removed
weights. A block ``B`` of row ``r`` (``e_out``: removed weights outside it) gives the exact QUBO

    E(x) = x^T [D G_BB D] x + sum_i x_i 2 w0_i (G e_out)_i + e_out^T G e_out

so ``E`` is the row's whole squared error after the step. With a refit the current weights
``w`` differ from ``w0`` and a weight kept at ``x_i = 0`` takes a value ``v_i`` (its refit value,
or a proposal for a pruned one): with ``D = diag(v_B)`` and the residual ``c`` (``w0 - w``
outside the block, ``w0 - v`` inside) the same algebra gives ``E(x) = (c + D x)^T G (c + D x)``.
Every row gets one block per iteration; blocks are built for many rows at once as tensors,
solved by ``Backend.solve_many`` (one batched call when the backend batches) and decoded with
the never-worse rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from qubo_prune.block import Block
from qubo_prune.decode import decide
from qubo_prune.patterns import Pattern
from qubo_prune.registry import Backend

__all__ = [
    "GramAccumulator",
    "ICBSStats",
    "build_blocks",
    "icbs_layer",
    "layer_error",
    "refit_rows",
    "row_errors",
    "select_blocks",
]


class GramAccumulator:
    """``G = sum_t u_t u_t^T`` over every calibration token, on the inputs' device.

    Each window's product is computed in the inputs' precision, at least float32 (a few hundred
    terms; half precision would overflow), and accumulated over windows in float64, where tens
    of thousands of terms would lose digits.
    """

    def __init__(self, width: int, device: torch.device | str = "cpu"):
        self.G = torch.zeros(width, width, dtype=torch.float64, device=device)
        self.tokens = 0

    def add(self, inputs: torch.Tensor) -> None:
        U = inputs.detach().reshape(-1, self.G.shape[0])
        if U.element_size() < 4:
            U = U.float()
        self.G += (U.T @ U).double()
        self.tokens += U.shape[0]


def row_errors(W0: torch.Tensor, W: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """``||(w0_r - w_r) U||^2`` of every row."""
    E = (W0 - W).double()
    return ((E @ G) * E).sum(dim=1)


def layer_error(W0: torch.Tensor, W: torch.Tensor, G: torch.Tensor) -> float:
    """Relative reconstruction error ``||W0 U - W U||^2 / ||W0 U||^2``."""
    W0d = W0.double()
    dense = float(((W0d @ G) * W0d).sum())
    return float(row_errors(W0, W, G).sum()) / dense if dense > 0 else 0.0


@dataclass
class ICBSStats:
    """What the iCBS iterations of one layer did, in squared output error units."""

    blocks: int = 0
    accepted: int = 0
    repaired: int = 0
    swapped_weights: int = 0
    predicted_gain: float = 0.0
    per_iteration_gain: list[float] = field(default_factory=list)


def select_blocks(
    scores: torch.Tensor,
    mask: torch.Tensor,
    pattern: Pattern,
    block_size: int,
    rng: np.random.Generator,
    explore: bool,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[int, ...]]:
    """Per row the most doubtful weights: highest-scoring pruned and lowest-scoring kept.

    Returns ``(idx (rows, b), groups, k)``: column indices per row plus the cardinality groups
    (block positions) shared by every row's block; ``k`` is the number pruned in each group.
    ``explore`` draws the block at random among twice as many doubtful candidates, so later
    iterations do not keep asking the same question.
    """
    s = scores.double().numpy()
    p = mask.numpy()
    rows, cols = s.shape
    if pattern.kind == "nm":
        m = pattern.m
        gs = s.reshape(rows, cols // m, m)
        gp = p.reshape(rows, cols // m, m)
        doubt = np.where(gp, gs, -np.inf).max(axis=2) - np.where(gp, np.inf, gs).min(axis=2)
        chosen = _most(doubt, max(1, min(block_size // m, cols // m)), rng, explore)
        idx = (chosen[:, :, None] * m + np.arange(m)).reshape(rows, -1)
        n_groups = chosen.shape[1]
        groups = tuple(np.arange(j * m, (j + 1) * m) for j in range(n_groups))
        return idx, groups, (pattern.pruned_per_group,) * n_groups
    n_pruned = int(p.sum(axis=1).min())
    n_kept = int((~p).sum(axis=1).min())
    k = min(block_size // 2, n_pruned)
    rest = min(block_size - k, n_kept)
    pruned_idx = _most(np.where(p, s, -np.inf), k, rng, explore)  # highest-scoring pruned
    kept_idx = _most(np.where(p, -np.inf, -s), rest, rng, explore)  # lowest-scoring kept
    idx = np.sort(np.concatenate([pruned_idx, kept_idx], axis=1), axis=1)
    return idx, (np.arange(idx.shape[1]),), (k,)


def _most(key: np.ndarray, count: int, rng: np.random.Generator, explore: bool) -> np.ndarray:
    """Column indices of the ``count`` largest keys per row (random among the top ``2 count``).

    ``-inf`` marks columns that are not candidates; every row has at least ``count`` others, but
    a row (per-layer patterns) may have fewer than ``2 count``, so the draw takes those first.
    """
    if count <= 0:
        return np.zeros((key.shape[0], 0), dtype=np.int64)
    pool = min(2 * count if explore else count, key.shape[1])
    top = np.argsort(-key, axis=1, kind="stable")[:, :pool]
    if pool > count:
        priority = rng.random(top.shape) + np.isneginf(np.take_along_axis(key, top, axis=1))
        pick = np.argsort(priority, axis=1)[:, :count]
        top = np.take_along_axis(top, pick, axis=1)
    return top


def build_blocks(
    W0: torch.Tensor,
    G: torch.Tensor,
    mask: torch.Tensor,
    rows: np.ndarray,
    idx: np.ndarray,
    groups: tuple[np.ndarray, ...],
    k: tuple[int, ...],
    tensor: str = "",
    weights: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
) -> list[Block]:
    """One Block per row of ``rows`` (``idx``: its columns), all built as batched tensors.

    ``weights``: the current weights (default ``W0`` with the pruned ones zeroed); ``values``:
    what each block weight becomes when kept (default ``W0``; a refit passes its kept weights
    and a proposal for the pruned ones). The energy is the row's squared output error against
    ``W0`` after the step, so the current state's energy is the current error.
    """
    W0d = W0.double()[rows]
    W = (W0 * ~mask if weights is None else weights).double()[rows]
    V = (W0 if values is None else values).double()[rows]
    E = W0d - W  # residual of every weight
    GE = E @ G  # (G e)_j per row
    I = torch.as_tensor(idx)
    Gbb = G[I[:, :, None], I[:, None, :]]  # (R, b, b)
    D = torch.gather(V, 1, I)
    delta = D - torch.gather(W, 1, I)  # block residuals move from E_B to W0_B - V_B
    g_out = torch.gather(GE, 1, I) - torch.einsum("rij,rj->ri", Gbb, delta)
    Q = D[:, :, None] * Gbb * D[:, None, :]
    Q.diagonal(dim1=1, dim2=2).add_(2.0 * D * g_out)
    const = (E * GE).sum(dim=1) - 2.0 * (delta * torch.gather(GE, 1, I)).sum(dim=1)
    const += torch.einsum("ri,rij,rj->r", delta, Gbb, delta)
    current = torch.gather(mask[rows], 1, I).numpy().astype(np.int8)
    Qn, cn = Q.numpy(), const.numpy()
    cols = W0.shape[1]
    return [
        Block(
            Q=Qn[j],
            constant=float(cn[j]),
            current=current[j],
            groups=groups,
            k=k,
            tensor=tensor,
            coords=int(r) * cols + idx[j],
        )
        for j, r in enumerate(rows)
    ]


def icbs_layer(
    W0: torch.Tensor,
    G: torch.Tensor,
    mask: torch.Tensor,
    pattern: Pattern,
    backend: Backend,
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
    mask's own weights, e.g. SparseGPT's; default ``W0`` masked).
    """
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    rng = np.random.default_rng(seed)
    mask = mask.clone(memory_format=torch.contiguous_format)  # edited in place via view(-1)
    diag = G.diagonal().clamp(min=0)
    weights, values = start_weights, None
    stats = ICBSStats()
    for it in range(iterations):
        if refit:
            weights = refit_rows(W0, mask, G, current=weights).double().contiguous()
            proposal = ((W0.double() - weights) @ G) / torch.where(diag > 0, diag, 1.0)
            values = torch.where(mask, proposal, weights)
        scores = (W0 if values is None else values).abs().double() * diag.sqrt()  # Wanda's rule
        idx_all, groups, k = select_blocks(scores, mask, pattern, block_size, rng, explore=it > 0)
        gain = 0.0
        if idx_all.shape[1] < 2 or all(v == 0 for v in k):
            stats.per_iteration_gain.append(0.0)
            continue
        flat = mask.view(-1)
        flat_w = weights.view(-1) if refit else None
        for start in range(0, W0.shape[0], rows_per_batch):
            rows = np.arange(start, min(start + rows_per_batch, W0.shape[0]))
            blocks = build_blocks(
                W0, G, mask, rows, idx_all[rows], groups, k, tensor, weights, values
            )
            for block, sampleset in zip(blocks, backend.solve_many(blocks)):
                decision = decide(block, sampleset)
                stats.blocks += 1
                stats.repaired += int(decision.repaired)
                if not decision.accepted:
                    continue
                to_prune, to_restore = decision.swap(block)
                prune_at = torch.as_tensor(block.coords[to_prune])
                restore_at = torch.as_tensor(block.coords[to_restore])
                flat[prune_at] = True
                flat[restore_at] = False
                if flat_w is not None:
                    flat_w[prune_at] = 0.0
                    flat_w[restore_at] = values.view(-1)[restore_at]
                stats.accepted += 1
                stats.swapped_weights += 2 * len(to_prune)
                gain += decision.improvement
        stats.predicted_gain += gain
        stats.per_iteration_gain.append(gain)
    if not refit:
        return W0 * ~mask, mask, stats
    return refit_rows(W0, mask, G, current=weights), mask, stats


def refit_rows(
    W0: torch.Tensor,
    mask: torch.Tensor,
    G: torch.Tensor,
    damp: float = 0.01,
    chunk: int = 16,
    current: torch.Tensor | None = None,
) -> torch.Tensor:
    """Least-squares kept weights: per row ``w_S = (G_SS + lam I)^-1 (G w0)_S``, pruned stay 0.

    ``lam = damp * mean(diag G)`` keeps the solve stable where calibration inputs are
    (nearly) collinear; because it also shrinks the solution, a row whose refit error would
    exceed that of ``current`` (default: ``W0`` masked) keeps ``current``. Rows with equal
    kept counts are solved together, ``chunk`` at a time: each holds a ``kept x kept`` system
    (benchmarks/refit_memory.py: on a 1536-wide layer 16 rows take a sixth of 64's memory).
    """
    W0d = W0.double()
    Gd = G + damp * G.diagonal().mean() * torch.eye(G.shape[0], dtype=G.dtype)
    target = W0d @ G  # (G w0)_j per row
    out = torch.zeros_like(W0d)
    kept = (~mask).sum(dim=1)
    order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # kept columns first
    for count in torch.unique(kept).tolist():
        if count == 0:
            continue
        rows = torch.nonzero(kept == count).flatten()
        for c in range(0, len(rows), chunk):
            r = rows[c : c + chunk]
            S = order[r, :count]
            A = Gd[S[:, :, None], S[:, None, :]]
            b = torch.gather(target[r], 1, S)
            out[r[:, None], S] = torch.cholesky_solve(b[..., None], torch.linalg.cholesky(A))[
                ..., 0
            ]
    base = W0d * ~mask if current is None else current.double()
    worse = row_errors(W0d, out, G) > row_errors(W0d, base, G)
    out[worse] = base[worse]
    return out.to(W0.dtype)
