"""Angle optimisers for QAOA, with one batched objective and a budget known before any run.

``score(points)`` takes an ``(S, d)`` array of angle vectors and returns ``S`` scores; each call
is one *batch*: one job (a sampler PUB of ``S`` parameter sets) on IBM, one ``run_batch`` of
``S`` tasks on Braket. Sequential optimisers (COBYLA, Nelder-Mead) call it with one point at a
time; differential evolution with a whole generation; SPSA with its two perturbed points. The
number of batches and of evaluations each choice can make (:func:`budget`) is what the cost
guard prices, so ``maxiter`` is a hard bound: evaluations for COBYLA and Nelder-Mead,
generations after the first for differential evolution, iterations for SPSA.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qubo_prune.backends.registry import BackendError

__all__ = ["OPTIMIZERS", "budget", "optimise"]

OPTIMIZERS = ("cobyla", "nelder_mead", "differential_evolution", "spsa")

Score = Callable[[np.ndarray], np.ndarray]


def _key(optimizer: str) -> str:
    key = str(optimizer).lower().replace("-", "_")
    if key not in OPTIMIZERS:
        raise BackendError(
            f"unknown QAOA optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    return key


def budget(optimizer: str, maxiter: int, popsize: int, dim: int) -> tuple[int, int]:
    """At most how many batches and angle evaluations the optimiser makes (before the final
    sampling, which is one more of each)."""
    key = _key(optimizer)
    if key == "differential_evolution":
        generations = maxiter + 1
        return generations, generations * max(5, popsize * dim)  # scipy's least population
    if key == "spsa":
        return maxiter, 2 * maxiter
    least = dim + 2 if key == "cobyla" else dim + 1  # scipy's first simplex or model
    return max(maxiter, least), max(maxiter, least)


class _Spent(Exception):
    """The evaluation budget is used up (Nelder-Mead may ask beyond ``maxfev`` mid-step)."""


def optimise(
    score: Score,
    x0: np.ndarray,
    bounds: Sequence[tuple[float, float]],
    optimizer: str = "cobyla",
    maxiter: int = 60,
    popsize: int = 4,
    seed: int | None = None,
) -> np.ndarray:
    """The best angles ``optimizer`` finds from ``x0`` within ``bounds`` and :func:`budget`,
    which is enforced: past it, the best point scored so far is returned."""
    key = _key(optimizer)
    x0 = np.clip(np.asarray(x0, dtype=float), *np.array(bounds).T)
    if maxiter < 1:
        return x0
    limit = budget(key, maxiter, popsize, len(x0))[1]
    spent, best = [0], [np.inf, x0]

    def counted(points: np.ndarray) -> np.ndarray:
        if spent[0] + len(points) > limit:
            raise _Spent
        spent[0] += len(points)
        scores = np.asarray(score(points), dtype=float)
        if scores.min() < best[0]:
            best[:] = [float(scores.min()), points[int(scores.argmin())].copy()]
        return scores

    try:
        return _run(key, counted, x0, bounds, maxiter, popsize, seed)
    except _Spent:
        return best[1]


def _run(
    key: str,
    score: Score,
    x0: np.ndarray,
    bounds: Sequence[tuple[float, float]],
    maxiter: int,
    popsize: int,
    seed: int | None,
) -> np.ndarray:
    """One run of the chosen scipy optimiser (or SPSA) on the batched ``score``."""
    from scipy.optimize import differential_evolution, minimize

    if key == "differential_evolution":
        found = differential_evolution(
            lambda p: score(np.atleast_2d(p.T)),  # scipy passes (d, S) in vectorised mode
            bounds,
            maxiter=maxiter,
            popsize=popsize,
            rng=seed,
            polish=False,
            vectorized=True,
            updating="deferred",
            x0=x0,
        )
        return found.x
    if key == "spsa":
        return _spsa(score, x0, np.array(bounds), maxiter, seed)
    one = lambda x: float(score(x[None, :])[0])  # noqa: E731
    if key == "cobyla":
        options = {"maxiter": max(maxiter, len(x0) + 2), "rhobeg": 0.2}
        return minimize(one, x0, method="COBYLA", bounds=bounds, options=options).x
    options = {"maxfev": maxiter, "initial_simplex": _simplex(x0, bounds)}
    return minimize(one, x0, method="Nelder-Mead", bounds=bounds, options=options).x


def _simplex(x0: np.ndarray, bounds: Sequence[tuple[float, float]], step: float = 0.2):
    """Nelder-Mead's first simplex: ``x0`` and one step along each axis (back where forward
    would leave the bounds), wide enough for shot noise not to drown the first moves."""
    moves = step * np.eye(len(x0))
    forward = x0 + moves
    return np.vstack([x0, np.where(forward > np.array(bounds)[:, 1], x0 - moves, forward)])


def _spsa(score: Score, x: np.ndarray, bounds: np.ndarray, maxiter: int, seed: int | None):
    """Simultaneous perturbation (Spall's gains 0.602 and 0.101); the first gradient estimate
    sets the step so that the first move is about 0.1 radian. Noise-robust, 2 points a batch."""
    rng = np.random.default_rng(seed)
    c, stability = 0.1, 0.1 * maxiter
    a = None
    for k in range(maxiter):
        ck = c / (k + 1) ** 0.101
        delta = rng.choice([-1.0, 1.0], size=len(x))
        plus, minus = score(np.stack([x + ck * delta, x - ck * delta]))
        grad = (plus - minus) / (2 * ck) * delta
        if a is None:
            a = 0.1 * (1 + stability) ** 0.602 / max(float(np.abs(grad).mean()), 1e-12)
        x = np.clip(x - a / (k + 1 + stability) ** 0.602 * grad, bounds[:, 0], bounds[:, 1])
    return x
