"""Weight scores and the initial masks they give (high score = worth keeping).

The one place where magnitude, Wanda, gradient and random scores are computed, for the
model-loss loop and the layer-wise one alike. Masks keep exactly ``round(density * numel)``
weights of every tensor. Per row, the rows share that count as evenly as possible (largest
remainder), so the tensor's density is still exact.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "GRANULARITIES",
    "SCORES",
    "gram_input_norms",
    "initial_mask",
    "input_norms",
    "kept_count",
    "kth_smallest",
    "score",
    "validate_density",
]

SCORES = ("magnitude", "wanda", "gradient", "random")
GRANULARITIES = ("tensor", "row")


def validate_density(density: float) -> float:
    density = float(density)
    if not 0.0 < density < 1.0:
        raise ValueError(f"density must lie strictly between 0 and 1, got {density}")
    return density


def kept_count(numel: int, density: float) -> int:
    """How many weights a tensor keeps at ``density``: the same rule everywhere."""
    return int(round(validate_density(density) * numel))


def score(
    kind: str,
    weight: torch.Tensor,
    *,
    input_norm: torch.Tensor | None = None,
    grad: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``|w|``, Wanda ``|w| * ||X_col||_2``, gradient ``|w * g|`` or uniform random scores."""
    w = weight.detach()
    if kind == "magnitude":
        return w.abs()
    if kind == "wanda":
        if input_norm is None:
            raise ValueError("Wanda scores need the input norms of the layer (calibration data)")
        dtype = torch.promote_types(w.dtype, input_norm.dtype)
        return w.abs().to(dtype) * input_norm.reshape(1, -1).to(dtype)
    if kind == "gradient":
        if grad is None:
            raise ValueError("gradient scores need the loss gradient")
        return (w * grad.detach()).abs()
    if kind == "random":
        return torch.rand(w.shape, generator=generator, dtype=torch.float64).to(w.dtype)
    raise ValueError(f"unknown score {kind!r}; choose one of {', '.join(SCORES)}")


def gram_input_norms(G: torch.Tensor) -> torch.Tensor:
    """``||X_col||_2`` of a layer's inputs from their Gram matrix ``G = U U^T`` (its diagonal)."""
    return G.diagonal().clamp(min=0).sqrt()


def input_norms(
    model: nn.Module, X: torch.Tensor, names: list[str], batch_size: int = 1024
) -> dict[str, torch.Tensor]:
    """``||X_col||_2`` of the inputs reaching each ``nn.Linear`` weight ``names`` (for Wanda)."""
    modules = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for name in names:
        module = modules.get(name.rpartition(".")[0])
        if not isinstance(module, nn.Linear) or not name.endswith("weight"):
            raise ValueError(f"Wanda scores need an nn.Linear weight; {name!r} is not one")

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: Any, key: str = name):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
            sums[key] = sums.get(key, 0) + (x**2).sum(0)

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                model(X[start : start + batch_size])
    finally:
        for h in hooks:
            h.remove()
    return {k: v.sqrt().float() for k, v in sums.items()}


def initial_mask(scores: torch.Tensor, density: float, granularity: str = "tensor") -> torch.Tensor:
    """Bool mask (True = pruned) keeping the highest scores, exactly ``kept_count`` of them.

    Ties are pruned in index order, as the Wanda and SparseGPT reference code's stable ascending
    sort does; quantised weights tie often, so this decides which magnitude mask is reproduced.
    """
    keep_total = kept_count(scores.numel(), density)
    if granularity == "tensor":
        return _lowest(scores.reshape(-1), scores.numel() - keep_total).view_as(scores)
    if granularity != "row":
        raise ValueError(f"unknown granularity {granularity!r}; choose one of {GRANULARITIES}")
    rows = scores.reshape(scores.shape[0], -1)
    per_row = _share(keep_total, rows.shape[0], rows.shape[1]).to(scores.device)
    order = torch.argsort(rows, dim=1, stable=True)
    drop = (
        torch.arange(rows.shape[1], device=scores.device)[None, :]
        < (rows.shape[1] - per_row)[:, None]
    )
    mask = torch.zeros_like(rows, dtype=torch.bool)
    mask.scatter_(1, order, drop)
    return mask.view_as(scores)


def _lowest(flat: torch.Tensor, count: int) -> torch.Tensor:
    """Bool mask of the ``count`` lowest of ``flat``, ties in index order: what the first
    ``count`` of a stable ascending sort give, found by selection (ADMM chooses a mask every
    iteration, and sorting a matrix of SmolLM2's MLP shape took 100 ms of its 130 ms iteration)."""
    pruned = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if count <= 0:
        return pruned
    threshold = kth_smallest(flat, count)
    below = flat < threshold
    tied = flat == threshold
    room = count - int(below.sum())  # the ties that still fit, first ones first
    if room == int(tied.sum()):  # all of them (the usual case: one entry at the threshold)
        return below | tied
    return below | (tied & (torch.cumsum(tied, dim=0) <= room))


def kth_smallest(flat: torch.Tensor, k: int, sample: int = 4096) -> torch.Tensor:
    """``torch.kthvalue(flat, k).values``, searched for mostly in a narrow bracket around it.

    Why: ALPS chooses a per-matrix mask at every iteration, and a full ``kthvalue`` over a
    matrix of SmolLM2's MLP shape was 86% of its time. The ranks of ``sample`` entries (a
    fixed pseudo-random draw) bracket the k-th value, one comparison counts the entries below
    the bracket, and only the bracket is searched: the same value, exactly, or a full search
    where the bracket misses it.
    """
    n = flat.numel()
    if n < 16 * sample:
        return torch.kthvalue(flat, k).values
    draw = torch.Generator().manual_seed(n)
    picked = flat[torch.randint(n, (sample,), generator=draw).to(flat.device)]
    centre, margin = k / n * sample, 4.0 * sample**0.5 + 8
    lo = torch.kthvalue(picked, max(1, int(centre - margin))).values
    hi = torch.kthvalue(picked, min(sample, int(centre + margin) + 1)).values
    below = int((flat < lo).sum())
    bracket = flat[(flat >= lo) & (flat <= hi)]
    if below < k <= below + bracket.numel():
        return torch.kthvalue(bracket, k - below).values
    return torch.kthvalue(flat, k).values


def _share(total: int, rows: int, cols: int) -> torch.Tensor:
    """Split ``total`` kept weights over ``rows`` rows as evenly as possible."""
    base, extra = divmod(total, rows)
    counts = torch.full((rows,), base, dtype=torch.long)
    counts[:extra] += 1
    return counts.clamp(max=cols)
