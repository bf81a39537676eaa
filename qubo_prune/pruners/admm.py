"""The layer problem by ADMM: Boža 2024's gradual mask selection, and ALPS's rising penalty.

:func:`admm` is the ADMM weight update with gradual mask selection (Boža 2024, arXiv
2401.02938), written from the paper's algorithm. The layer problem ``min ||(W0 - W) U||^2`` over weights
``W`` that keep a sparsity pattern is split as ``W = Z`` with ``Z`` sparse and solved by ADMM:

    W <- (W0 G' + rho (Z - V)) (G' + rho I)^-1      (least squares pulled toward Z - V)
    Z <- (W + V) with the mask applied               (projection on the sparse set)
    V <- V + W - Z                                   (scaled dual)

in preconditioned coordinates: columns scaled by the inputs' norms ``n_j = sqrt(G_jj)``, so
``|W|`` there is Wanda's score and ``G`` has a unit diagonal. ``G'`` is that Gram damped by
``damping`` of its mean diagonal (0.1, ten times SparseGPT's 0.01); the damping, present in
the target ``W0 G'`` too, pulls the weights toward the dense ones. ``(G' + rho I)`` is
factorised once. In the first ``prune_iterations`` of ``iterations`` the mask is chosen again
from ``|W + V|`` at a sparsity that rises on the cubic schedule ``s (1 - (1 - t/T)^3)`` to the
target (gradual pruning); the later iterations keep the final mask. The result is ``Z``: pruned
weights exactly 0, every count of the pattern exact.

Unstructured masks are chosen per matrix, as the paper does (like SparseGPT, ``unstructured``
then guarantees the layer's count, not each row's); N:M masks per group of ``M`` inputs, the
``N`` largest of each group always kept while the others are pruned gradually.

:func:`alps` (Meng et al. 2024, arXiv 2406.07831) solves the same split with the pattern's exact
mask at every iteration and a penalty that grows as the mask settles: on four SmolLM2 layers
(docs/benchmarks.md) its masks, refit, have 11% less output error than ADMM's at 2:4 and 8%
less at 50%. Its defaults (30 iterations, penalty 0.1, damping 0.03) were chosen there.
"""

from __future__ import annotations

import torch

from qubo_prune.core.patterns import Pattern, pattern_mask
from qubo_prune.core.scores import initial_mask
from qubo_prune.objectives.reconstruction import GramAccumulator

__all__ = ["admm", "admm_layer", "alps", "alps_layer"]


def admm_layer(
    W0: torch.Tensor, acc: GramAccumulator, pattern: Pattern, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """ADMM's mask and updated weights for one layer (computed in ``dtype`` on the Gram's
    device), in the dense weight's dtype."""
    W, mask = admm(W0, acc.G, pattern, dtype=dtype)
    return W.to(W0.dtype), mask


def alps_layer(
    W0: torch.Tensor, acc: GramAccumulator, pattern: Pattern, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`alps`'s mask and weights for one layer, as :func:`admm_layer` returns ADMM's."""
    W, mask = alps(W0, acc.G, pattern, dtype=dtype)
    return W.to(W0.dtype), mask


def admm(
    W0: torch.Tensor,
    G: torch.Tensor,
    pattern: Pattern,
    iterations: int = 20,
    prune_iterations: int = 15,
    damping: float = 0.1,
    rho: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights, mask)`` for weight ``W0`` (out x in) and Gram ``G = U U^T``, computed in
    ``dtype`` on ``G``'s device (the preconditioned, damped Gram is well conditioned).

    ``rho`` (the ADMM penalty) and ``damping`` are multiples of the preconditioned Gram's mean
    diagonal (1 when every input was seen). Inputs never seen (zero diagonal) score lowest, so
    they are pruned first, as Wanda would.
    """
    if not 0 < prune_iterations <= iterations:
        raise ValueError(
            f"prune_iterations must lie in 1..iterations ({iterations}), got {prune_iterations}"
        )
    W, Gn, norm, scale = _preconditioned(W0, G, pattern, damping, dtype)
    target = W @ Gn
    eye = torch.eye(Gn.shape[0], dtype=dtype, device=G.device)
    factor = torch.linalg.cholesky(Gn + rho * scale * eye)
    penalty = rho * scale
    V = torch.zeros_like(W)
    mask = torch.zeros(W.shape, dtype=torch.bool, device=G.device)
    for t in range(iterations):
        if t < prune_iterations:
            progress = (t + 1) / prune_iterations
            mask = _gradual_mask((W + V).abs(), pattern, 1.0 - (1.0 - progress) ** 3)
        Z = (W + V) * ~mask
        V += W - Z
        W = torch.cholesky_solve((target + penalty * (Z - V)).T, factor).T
    Z = (W + V) * ~mask
    return Z / norm[None, :], mask


def alps(
    W0: torch.Tensor,
    G: torch.Tensor,
    pattern: Pattern,
    iterations: int = 30,
    damping: float = 0.03,
    rho: float = 0.1,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights, mask)`` by ADMM with ALPS's rising penalty (Meng et al. 2024, arXiv
    2406.07831), in the same preconditioned coordinates and damping as :func:`admm`.

    The mask is the pattern's exact one from the first iteration, chosen again from
    ``|W + V|`` at every iteration; every 3 iterations the penalty grows by 1.3, 1.2 or 1.1
    as more than 10%, more than 0.5% or fewer of the kept weights moved in that time, so
    the mask settles while the weights still adapt to it (the Cholesky factor of
    ``G' + rho I`` is recomputed at each change).
    """
    W, Gn, norm, scale = _preconditioned(W0, G, pattern, damping, dtype)
    final = _final_pattern(pattern)
    eye = torch.eye(Gn.shape[0], dtype=dtype, device=G.device)
    target = W @ Gn
    penalty, factor = rho * scale, None
    mask = pattern_mask(W.abs(), final)
    kept = int((~mask).sum())
    Z, V = W * ~mask, torch.zeros_like(W)
    moved = torch.zeros((), dtype=torch.long, device=G.device)  # read every 3rd iteration only
    for t in range(iterations):
        if factor is None:
            factor = torch.linalg.cholesky(Gn + penalty * eye)
        W = torch.cholesky_solve((target + penalty * (Z - V)).T, factor).T
        new = pattern_mask((W + V).abs(), final)
        moved += (new & ~mask).sum()
        mask = new
        Z = (W + V) * ~mask
        V += W - Z
        if t % 3 == 2:
            count = int(moved)
            growth = 1.3 if count >= 0.1 * kept else 1.2 if count >= 0.005 * kept else 1.1
            penalty, factor = penalty * growth, None
            moved.zero_()
            V /= growth  # the scaled dual is the unscaled one over the penalty
    return Z / norm[None, :], mask


def _preconditioned(
    W0: torch.Tensor, G: torch.Tensor, pattern: Pattern, damping: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``(W, G', n, scale)``: the weight and damped Gram in coordinates scaled by the inputs'
    norms ``n``, and the preconditioned Gram's mean diagonal (1 when every input was seen)."""
    cols = W0.shape[1]
    if pattern.kind == "nm" and cols % pattern.m:
        raise ValueError(
            f"{pattern} needs the input width ({cols}) to be a multiple of {pattern.m}"
        )
    Gd = G.to(dtype)
    norm = Gd.diagonal().clamp(min=0).sqrt()
    norm = norm.clamp(min=1e-8 * float(norm.max()) if bool((norm > 0).any()) else 1.0)
    Gn = Gd / norm[:, None] / norm[None, :]
    scale = float(Gn.diagonal().mean()) or 1.0  # no input seen at all: plain magnitude
    Gn.diagonal().add_(damping * scale)
    return W0.to(G.device, dtype) * norm[None, :], Gn, norm, scale


def _final_pattern(pattern: Pattern) -> Pattern:
    """The pattern of the final mask: unstructured masks are chosen per matrix."""
    return pattern if pattern.kind == "nm" else Pattern("layer", pattern.sparsity)


def _gradual_mask(scores: torch.Tensor, pattern: Pattern, fraction: float) -> torch.Tensor:
    """Prune ``fraction`` of the pattern's pruned weights: the lowest scores, per matrix, or
    among the weights outside each N:M group's ``N`` largest. ``fraction = 1``: the pattern's
    exact mask."""
    if fraction >= 1.0:
        return pattern_mask(scores, _final_pattern(pattern))
    if pattern.kind == "nm":
        protected = ~pattern_mask(scores, pattern)
        scores = scores.masked_fill(protected, float("inf"))
    return initial_mask(scores, 1.0 - pattern.sparsity * fraction, "tensor")
