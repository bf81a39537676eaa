"""Objective 2 of the math note: a linear layer's output reconstruction error, solved by iCBS.

For ``y = W u`` with calibration inputs ``U`` the squared output error of row ``r`` is
``e^T G e`` with ``G = U U^T`` (float64, shared by all rows) and ``e = p_r * w0_r`` the removed
weights. A block ``B`` of row ``r`` (``e_out``: removed weights outside it) gives the exact QUBO

    E(x) = x^T [D G_BB D] x + sum_i x_i 2 w0_i (G e_out)_i + e_out^T G e_out

so ``E`` is the row's whole squared error after the step. With a refit the current weights
``w`` differ from ``w0`` and a weight kept at ``x_i = 0`` takes a value ``v_i`` (its refit value,
or a proposal for a pruned one): with ``D = diag(v_B)`` and the residual ``c`` (``w0 - w``
outside the block, ``w0 - v`` inside) the same algebra gives ``E(x) = (c + D x)^T G (c + D x)``.
Blocks are built for many rows at once as tensors. This module holds the objective only: the
loop that solves the blocks is :mod:`qubo_prune.pruners.layerwise`.
"""

from __future__ import annotations

import numpy as np
import torch

from qubo_prune.core.block import Block

__all__ = [
    "GramAccumulator",
    "build_blocks",
    "layer_error",
    "refit_rows",
    "row_errors",
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
