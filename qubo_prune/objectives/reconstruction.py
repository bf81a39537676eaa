"""Objective 2 of the math note: a linear layer's output reconstruction error, solved by iCBS.

For ``y = W u`` with calibration inputs ``U`` the squared output error of row ``r`` is
``e^T G e`` with ``G = U U^T`` (float64, shared by all rows) and ``e = p_r * w0_r`` the removed
weights. A block ``B`` of row ``r`` (``e_out``: removed weights outside it) gives the exact QUBO

    E(x) = x^T [D G_BB D] x + sum_i x_i 2 w0_i (G e_out)_i + e_out^T G e_out

so ``E`` is the row's whole squared error after the step. With a refit the current weights
``w`` differ from ``w0`` and a weight kept at ``x_i = 0`` takes a value ``v_i`` (its refit value,
or a proposal for a pruned one): with ``D = diag(v_B)`` and the residual ``c`` (``w0 - w``
outside the block, ``w0 - v`` inside) the same algebra gives ``E(x) = (c + D x)^T G (c + D x)``.
The blocks of many rows are built at once as a :class:`~qubo_prune.core.batch.BlockBatch`, in
float64 on the Gram's device, from the residual ``R = (W0 - W) G`` the caller keeps. This
module holds the objective only: the loop that solves the blocks is
:mod:`qubo_prune.pruners.layerwise`, the refit :mod:`qubo_prune.objectives.refit`.
"""

from __future__ import annotations

import numpy as np
import torch

from qubo_prune.core.batch import BlockBatch
from qubo_prune.objectives.refit import RefitState

__all__ = ["GramAccumulator", "build_blocks", "layer_error", "row_errors"]


class GramAccumulator:
    """``G = sum_t u_t u_t^T`` over every calibration token, on the inputs' device.

    Each window's product is computed in the inputs' precision, at least float32 (a few hundred
    terms; half precision would overflow), and accumulated over windows in float64, where tens
    of thousands of terms would lose digits. Matrices derived from ``G`` (its copy in a lower
    precision, SparseGPT's inverse Hessian) are computed once and shared by the linears fed
    the same inputs, which share the accumulator.
    """

    def __init__(
        self, width: int, device: torch.device | str = "cpu", held_out: bool = False
    ) -> None:
        self.G = torch.zeros(width, width, dtype=torch.float64, device=device)
        self.tokens = 0
        self._derived: dict[tuple, torch.Tensor] = {}
        # the windows held back from fitting, counted in G as well (see objectives.regularisation)
        self.held = GramAccumulator(width, device) if held_out else None

    def add(self, inputs: torch.Tensor, held_out: bool = False) -> None:
        """Add one window's inputs; a ``held_out`` window also goes to :attr:`held`."""
        if held_out and self.held is None:
            raise ValueError("this accumulator keeps no held-out Gram")
        U = inputs.detach().reshape(-1, self.G.shape[0])
        if U.element_size() < 4:
            U = U.float()
        product = (U.T @ U).to(self.G.device)
        for acc in (self, self.held) if held_out else (self,):
            acc.G.add_(product)  # float64 accumulation, no float64 copy
            acc.tokens += U.shape[0]
            acc._derived.clear()

    def pooled(self, other: GramAccumulator) -> GramAccumulator:
        """The accumulator of both input sets: Grams, token counts and held-out parts summed
        (a held-out part only if both keep one), on ``self``'s device."""
        out = GramAccumulator(self.G.shape[0], self.G.device)
        out.G = self.G + other.G.to(self.G.device)
        out.tokens = self.tokens + other.tokens
        if self.held is not None and other.held is not None:
            out.held = self.held.pooled(other.held)
        return out

    def to(self, device: torch.device | str) -> GramAccumulator:
        """Move the Gram (and drop derived matrices) to ``device``; returns ``self``."""
        self.G = self.G.to(device)
        self._derived.clear()
        if self.held is not None:
            self.held.to(device)
        return self

    def gram(self, dtype: torch.dtype) -> torch.Tensor:
        """``G`` in ``dtype`` (cached): the precision of the layer-sized products."""
        if dtype == self.G.dtype:
            return self.G
        key = ("gram", dtype)
        if key not in self._derived:
            self._derived[key] = self.G.to(dtype)
        return self._derived[key]

    def inverse_hessian(self, dtype: torch.dtype, percdamp: float = 0.01) -> torch.Tensor:
        """``(H + lam I)^-1`` of ``H = 2 G / tokens``, computed once per dtype (cached).

        As SparseGPT (Frantar & Alistarh 2023) builds it: inputs never seen in calibration
        (zero diagonal) get a unit diagonal so the factorisation exists, and ``lam`` is
        ``percdamp`` of the mean diagonal.
        """
        key = ("inverse", dtype, float(percdamp))
        if key not in self._derived:
            if self.tokens < 1:
                raise ValueError("the layer has no calibration inputs (tokens = 0)")
            H = (2.0 / self.tokens) * self.G.to(dtype)
            dead = H.diagonal() == 0
            H[dead, dead] = 1.0
            H.diagonal().add_(percdamp * H.diagonal().mean())
            self._derived[key] = torch.cholesky_inverse(torch.linalg.cholesky(H))
        return self._derived[key]


def row_errors(W0: torch.Tensor, W: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """``||(w0_r - w_r) U||^2`` of every row, in ``G``'s precision on its device."""
    E = (W0.to(G.device) - W.to(G.device)).to(G.dtype)
    return ((E @ G) * E).sum(dim=1)


def layer_error(W0: torch.Tensor, W: torch.Tensor, G: torch.Tensor) -> float:
    """Relative reconstruction error ``||W0 U - W U||^2 / ||W0 U||^2``."""
    W0d = W0.to(G.device, G.dtype)
    dense = float(((W0d @ G) * W0d).sum())
    return float(row_errors(W0, W, G).sum()) / dense if dense > 0 else 0.0


def build_blocks(
    W0: torch.Tensor,
    G: torch.Tensor,
    mask: torch.Tensor,
    rows: slice | torch.Tensor,
    idx: torch.Tensor,
    groups: tuple[np.ndarray, ...],
    k: tuple[int, ...],
    tensor: str = "",
    values: torch.Tensor | None = None,
    state: RefitState | None = None,
) -> BlockBatch:
    """The blocks of rows ``rows`` (``idx`` (R, b): each one's columns) as one batch.

    ``state``: the layer's current weights with their residual ``(W0 - W) G`` and row errors,
    as the caller keeps them (default: ``W0`` with the pruned weights zeroed, computed here);
    ``values``: what each block weight becomes when kept (default ``W0``; a refit passes its
    kept weights and a proposal for the pruned ones). The energy is the row's squared output
    error against ``W0`` after the step, so the current state's energy is the current error.
    Only the blocks' columns are read from the layer-sized tensors. The blocks are float64 on
    ``G``'s device whatever the precision of the inputs (whose rounding they carry).
    """
    dev, f64 = G.device, torch.float64
    if not isinstance(rows, slice):
        rows = torch.as_tensor(rows, device=dev)
    I = torch.as_tensor(idx, device=dev)
    if state is None:
        E = (W0 * mask)[rows].to(dev)  # the pruned weights are the residual
        state = RefitState((W0 * ~mask)[rows].to(dev), E.to(G.dtype) @ G, torch.zeros(0))
        state.errors = (E.to(G.dtype) * state.residual).sum(dim=1)
        W, R, errors = state.weights, state.residual, state.errors
    else:
        W, R, errors = state.weights[rows], state.residual[rows], state.errors[rows]
    V = (W0 if values is None else values)[rows].to(dev)
    Gbb = G[I[:, :, None], I[:, None, :]].to(f64)  # (R, b, b)
    Gbb = (Gbb + Gbb.mT) / 2.0  # exactly symmetric (a product U^T U need not be to the bit)
    D = torch.gather(V, 1, I).to(f64)
    delta = D - torch.gather(W, 1, I).to(f64)  # block residuals move from E_B to W0_B - V_B
    GE_B = torch.gather(R, 1, I).to(f64)  # (G e)_j at the block's columns
    g_out = GE_B - torch.einsum("rij,rj->ri", Gbb, delta)
    Q = Gbb * (D[:, :, None] * D[:, None, :])  # exactly symmetric, as Gbb is
    Q.diagonal(dim1=1, dim2=2).add_(2.0 * D * g_out)
    const = errors.to(f64) - 2.0 * (delta * GE_B).sum(dim=1)
    const += torch.einsum("ri,rij,rj->r", delta, Gbb, delta)
    current = torch.gather(mask[rows].to(dev), 1, I)
    index = torch.arange(W0.shape[0], device=dev)[rows]
    return BlockBatch(Q, const, current, groups, k, index[:, None] * W0.shape[1] + I, tensor)
