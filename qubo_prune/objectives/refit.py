"""The least-squares refit of a pruned layer: every row's kept weights at once, no per-row solve.

Row ``r`` with kept set ``S`` minimises its output error ``(w0 - w)^T G (w0 - w)`` over weights
zero outside ``S``: the masked system ``G_SS w_S = (G w0)_S``. Solving it row by row costs one
factorisation per row, thousands of times one factorisation of the layer at 7B shapes. Here
all rows run preconditioned conjugate gradients together: each iteration is two products of
the ``(rows, in)`` matrix with ``G`` and with one shared preconditioner, the damped inverse
Hessian (:meth:`~qubo_prune.objectives.reconstruction.GramAccumulator.inverse_hessian`, the
matrix SparseGPT factorises, computed once per Gram).

Conjugate gradients on ``G_SS`` lowers the row error at every iteration (it minimises it over
a growing Krylov space), so a refit warm-started from any weights never makes a row worse;
rows where rounding would say otherwise keep their start. Undamped, the solve does not shrink
the weights as a damped direct solve does; the damping only shapes the preconditioner.
The caller keeps the residual ``R = (W0 - W) G``, which the iterations update for free and the
block objective (:func:`~qubo_prune.objectives.reconstruction.build_blocks`) reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RefitState", "refit", "residual"]


@dataclass
class RefitState:
    """Weights of a layer (zero where pruned), their residual ``(W0 - W) G`` and row errors."""

    weights: torch.Tensor
    residual: torch.Tensor
    errors: torch.Tensor


def residual(W0: torch.Tensor, weights: torch.Tensor, G: torch.Tensor) -> RefitState:
    """The state of ``weights``: one product with ``G``, in ``weights``' precision."""
    E = W0.to(weights.dtype) - weights
    R = E @ G.to(weights.dtype)
    return RefitState(weights, R, (E * R).sum(dim=1))


def refit(
    W0: torch.Tensor,
    mask: torch.Tensor,
    G: torch.Tensor,
    preconditioner: torch.Tensor,
    start: RefitState,
    iterations: int,
) -> RefitState:
    """``iterations`` of batched preconditioned CG from ``start`` (weights zero where pruned).

    All arithmetic is in ``start.weights``' precision on its device. Each row stops where its
    search direction vanishes (converged); a row whose error would end above its start's keeps
    the start. Returns the new state; ``start`` is not modified.
    """
    dtype = start.weights.dtype
    keep = (~mask).to(dtype)
    W0 = W0.to(dtype)
    G = G.to(dtype)
    K = preconditioner.to(dtype)
    X, R = start.weights.clone(), start.residual.clone()
    r = R * keep
    z = (r @ K) * keep
    p = z
    rz = (r * z).sum(dim=1)
    for it in range(iterations):
        Ap = p @ G
        pAp = (p * Ap).sum(dim=1)
        alpha = torch.where(pAp > 0, rz / torch.where(pAp > 0, pAp, 1.0), 0.0)[:, None]
        X.add_(alpha * p)
        R.sub_(alpha * Ap)
        if it + 1 == iterations:
            break
        r = R * keep
        z = (r @ K) * keep
        rz_next = (r * z).sum(dim=1)
        beta = torch.where(rz > 0, rz_next / torch.where(rz > 0, rz, 1.0), 0.0)[:, None]
        p = z + beta * p
        rz = rz_next
    errors = ((W0 - X) * R).sum(dim=1)
    worse = ~(errors <= start.errors)
    X[worse], R[worse] = start.weights[worse], start.residual[worse]
    errors[worse] = start.errors[worse]
    return RefitState(X, R, errors)
