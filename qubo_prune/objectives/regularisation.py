"""The refit's pull toward the dense weights, chosen per layer on held-out calibration windows.

Why: a least-squares refit fitted to the calibration text gives back on other text what it won
in domain (docs/benchmarks.md). Adding ``lam ||w - w0||^2`` to a row's output error is the same
objective with ``G + lam I`` in place of ``G`` (for a fixed mask the pruned weights' part is a
constant), so a damped Gram serves the blocks, the search and the refit unchanged. ``lam`` is
``damping`` times the mean of ``diag(G)``, so a damping means the same on every layer: 0 is the
plain refit, large values keep the kept weights at their dense values (masks only).

:func:`choose_damping` refits the start mask on the windows kept for fitting with each candidate
and keeps the one with the least output error on the held-out windows; no window both fits and
chooses. The pruning itself then uses every window's Gram at the chosen damping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qubo_prune.objectives.reconstruction import GramAccumulator, layer_error
from qubo_prune.objectives.refit import refit, residual

__all__ = ["DAMPINGS", "DampingChoice", "choose_damping", "damped", "fit_part"]

DAMPINGS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class DampingChoice:
    """The damping kept for a layer and the held-out relative error of every candidate."""

    damping: float
    held_out_errors: dict[float, float]


def damped(acc: GramAccumulator, damping: float) -> GramAccumulator:
    """``acc`` with ``damping`` x mean(diag G) added to the diagonal (``acc`` itself at 0)."""
    if damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    if damping == 0:
        return acc
    out = GramAccumulator(acc.G.shape[0], acc.G.device)
    out.G = acc.G.clone()
    out.G.diagonal().add_(damping * float(acc.G.diagonal().mean()))
    out.tokens = acc.tokens
    return out


def fit_part(acc: GramAccumulator) -> GramAccumulator:
    """The Gram of the windows not held out: ``G - G_held``."""
    if acc.held is None or acc.held.tokens < 1:
        raise ValueError("no held-out windows were accumulated for this layer")
    if acc.held.tokens >= acc.tokens:
        raise ValueError("every calibration window was held out: none is left to fit")
    out = GramAccumulator(acc.G.shape[0], acc.G.device)
    out.G = acc.G - acc.held.G
    out.tokens = acc.tokens - acc.held.tokens
    return out


def choose_damping(
    W0: torch.Tensor,
    mask: torch.Tensor,
    start: torch.Tensor,
    acc: GramAccumulator,
    iterations: int,
    dtype: torch.dtype = torch.float32,
    candidates: tuple[float, ...] = DAMPINGS,
) -> DampingChoice:
    """The candidate whose refit of ``mask`` (from ``start``, ``iterations`` conjugate-gradient
    steps on the fit windows) has the least output error on the held-out windows.

    The candidates are walked from light to heavy and the walk stops at the first one worse
    than the best so far: the held-out error falls while the pull removes overfitting and
    rises once it removes fit, so heavier ones would only be further from the minimum (and
    each costs a refit). ``held_out_errors`` holds the candidates tried, as relative errors
    ``||(W0 - W) U||^2 / ||W0 U||^2`` on the held-out inputs computed in ``dtype``
    (neighbouring candidates differ by tenths of a percent, far above its rounding).
    """
    fit = fit_part(acc)
    W0c = W0.to(acc.G.device, dtype)
    mask = mask.to(acc.G.device)
    begin = start.to(acc.G.device, dtype) * ~mask
    held = acc.held.gram(dtype)
    errors: dict[float, float] = {}
    for damping in sorted(candidates):
        G = damped(fit, damping).gram(dtype)
        state = refit(W0c, mask, G, residual(W0c, begin, G), iterations)
        errors[float(damping)] = layer_error(W0c, state.weights, held)
        if errors[float(damping)] > min(errors.values()):
            break
    return DampingChoice(min(errors, key=errors.get), errors)
