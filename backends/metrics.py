"""How a solver's answer to a block is scored, defined once for ``compare`` and the benchmarks.

``gap`` is the relative energy gap ``(E - E*) / |E*|`` to the best known energy ``E*`` (the
exact optimum when enumeration could take the block), the standard figure of solver
benchmarking, in the objective's own units on both sides. ``missed_improvement`` is the share
of the best step's gain an answer misses, ``(E - E*) / (E_current - E*)``: on loss-change blocks
(objective 1, where the current mask has energy 0) the two are equal; on reconstruction blocks
(objective 2, where ``E`` is the whole squared error of a row) it is the stricter one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gap", "missed_improvement", "success_probability", "time_to_solution"]

_TINY = 1e-300


def gap(energy: np.ndarray | float, best: np.ndarray | float) -> np.ndarray | float:
    """``(E - E*) / |E*|``; 0 where ``E == E*``, even when ``E* == 0``."""
    e, b = np.asarray(energy, dtype=float), np.asarray(best, dtype=float)
    out = np.where(e == b, 0.0, (e - b) / np.maximum(np.abs(b), _TINY))
    return float(out) if out.ndim == 0 else out


def missed_improvement(
    energy: np.ndarray | float, best: np.ndarray | float, current: np.ndarray | float
) -> np.ndarray | float:
    """``(E - E*) / (E_current - E*)``: 0 at the best, 1 for no gain; NaN when no gain exists."""
    e, b, c = (np.asarray(v, dtype=float) for v in (energy, best, current))
    scale = c - b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(e == b, 0.0, np.where(scale > 0, (e - b) / scale, np.nan))
    return float(out) if out.ndim == 0 else out


def success_probability(
    energies: np.ndarray, feasible: np.ndarray, occurrences: np.ndarray, best: float
) -> float:
    """Share of the reads (each sample weighted by its occurrences) that are feasible and
    within a relative ``1e-7`` of the best known energy."""
    tol = 1e-7 * max(1.0, abs(best))
    hits = np.asarray(feasible, dtype=bool) & (np.asarray(energies) <= best + tol)
    weights = np.asarray(occurrences, dtype=float)
    return float(weights[hits].sum() / weights.sum()) if weights.sum() > 0 else 0.0


def time_to_solution(seconds_per_read: float, p: float, confidence: float = 0.99) -> float:
    """Expected time to see the best known answer at least once with ``confidence``:
    ``t_read * ln(1 - confidence) / ln(1 - p)`` (one read when ``p = 1``, infinite at 0)."""
    if p >= 1.0:
        return float(seconds_per_read)
    if p <= 0.0:
        return float("inf")
    return float(seconds_per_read * np.log(1.0 - confidence) / np.log(1.0 - p))
