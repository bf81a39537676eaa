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

__all__ = ["gap", "missed_improvement"]

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
