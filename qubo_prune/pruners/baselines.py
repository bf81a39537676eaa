"""The layer-wise baselines iCBS is compared with and starts from: magnitude, Wanda, SparseGPT.

Each rule takes a layer's dense weight ``(out, in)``, its calibration Gram accumulator, a
pattern and the precision of its products, and returns ``(weights, mask)`` (True = pruned) with
exactly the pattern's counts, on the Gram's device.

SparseGPT (Frantar & Alistarh 2023) is written from the paper's algorithm. Hessian
``H = 2/N X X^T`` of the layer-wise squared error, dampened by 1% of its mean diagonal; the
upper Cholesky factor of ``H^-1`` gives, column by column, the optimal (OBS) update of the
not-yet-processed weights when one column's pruned weights are removed. Columns are processed in
blocks of 128; the mask of each block is chosen adaptively from ``w^2 / [H^-1]_jj^2`` when the
block is reached (unstructured), or per group of ``M`` columns (N:M). Like the reference code it
runs in float32 by default; ``H^-1`` is the accumulator's, shared by linears fed the same inputs.
"""

from __future__ import annotations

import torch

from qubo_prune.core.patterns import Pattern, pattern_mask
from qubo_prune.core.scores import gram_input_norms, kept_count, score
from qubo_prune.objectives.reconstruction import GramAccumulator

__all__ = ["BASELINES", "magnitude_layer", "sparsegpt", "sparsegpt_layer", "wanda_layer"]


def magnitude_layer(
    W0: torch.Tensor, acc: GramAccumulator, pattern: Pattern, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune the smallest ``|w|`` of every count of the pattern."""
    W0 = W0.to(acc.G.device)
    mask = pattern_mask(score("magnitude", W0), pattern)
    return W0 * ~mask, mask


def wanda_layer(
    W0: torch.Tensor, acc: GramAccumulator, pattern: Pattern, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune the smallest ``|w| * ||X_col||`` (Wanda, Sun et al. 2023) of every count."""
    W0 = W0.to(acc.G.device)
    mask = pattern_mask(score("wanda", W0, input_norm=gram_input_norms(acc.G)), pattern)
    return W0 * ~mask, mask


def sparsegpt_layer(
    W0: torch.Tensor, acc: GramAccumulator, pattern: Pattern, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT's mask and updated weights (computed in ``dtype``), in the dense weight's dtype."""
    if acc.tokens < 1:
        raise ValueError("SparseGPT needs calibration inputs (tokens >= 1)")
    W, mask = sparsegpt(W0.to(acc.G.device), acc.inverse_hessian(dtype), pattern)
    return W.to(W0.dtype), mask


def sparsegpt(
    W: torch.Tensor,
    inverse_hessian: torch.Tensor,
    pattern: Pattern,
    blocksize: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(new weights, mask)`` for weight ``W`` (out x in) from the damped ``H^-1``.

    Computed in ``inverse_hessian``'s precision on its device (see
    :meth:`~qubo_prune.objectives.reconstruction.GramAccumulator.inverse_hessian`).
    """
    W = W.detach().to(inverse_hessian.device, inverse_hessian.dtype, copy=True)
    rows, cols = W.shape
    if pattern.kind == "nm" and cols % pattern.m:
        raise ValueError(
            f"{pattern} needs the input width ({cols}) to be a multiple of {pattern.m}"
        )
    Hinv = torch.linalg.cholesky(inverse_hessian, upper=True)
    mask = torch.zeros(rows, cols, dtype=torch.bool, device=W.device)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Hinv1 = Hinv[i1:i2, i1:i2]
        d = Hinv1.diagonal()
        Err1 = torch.zeros_like(W1)
        mask1 = torch.zeros_like(W1, dtype=torch.bool)
        if pattern.kind != "nm":
            saliency = (W1**2 / d[None, :] ** 2).flatten()
            # counts of blocks add up to the layer's exact count (kept_count's rounding)
            pruned = _pruned_upto(rows * i2, pattern) - _pruned_upto(rows * i1, pattern)
            mask1.view(-1)[torch.argsort(saliency, stable=True)[:pruned]] = True
        for i in range(i2 - i1):
            if pattern.kind == "nm" and i % pattern.m == 0:
                part = W1[:, i : i + pattern.m] ** 2 / d[i : i + pattern.m][None, :] ** 2
                low = torch.topk(part, pattern.pruned_per_group, dim=1, largest=False).indices
                mask1.scatter_(1, i + low, True)
            w = W1[:, i]
            q = torch.where(mask1[:, i], torch.zeros_like(w), w)
            err = (w - q) / d[i]
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            W1[:, i] = q
            Err1[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
        mask[:, i1:i2] = mask1
    W[mask] = 0.0
    return W, mask


def _pruned_upto(numel: int, pattern: Pattern) -> int:
    """Weights an exact per-layer mask prunes among the first ``numel`` (whole columns)."""
    return numel - kept_count(numel, 1.0 - pattern.sparsity) if numel else 0


BASELINES = {"magnitude": magnitude_layer, "wanda": wanda_layer, "sparsegpt": sparsegpt_layer}
