"""The QAOA angle optimisers: each improves a noisy bowl and never spends past its budget, which
is what the cost guard bills."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from qubo_prune.backends.qaoa.optimise import OPTIMIZERS, budget, optimise  # noqa: E402
from qubo_prune.backends.registry import BackendError  # noqa: E402

BOUNDS = [(0.0, np.pi)] * 2 + [(0.0, np.pi / 2)] * 2
TARGET = np.array([1.2, 0.4, 0.3, 0.9])


def noisy_bowl(calls: list[int], seed: int = 0):
    """A quadratic bowl with shot-like noise; records the size of every batch."""
    rng = np.random.default_rng(seed)

    def score(points: np.ndarray) -> np.ndarray:
        calls.append(len(points))
        return ((points - TARGET) ** 2).sum(axis=1) + 0.001 * rng.normal(size=len(points))

    return score


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("maxiter", [3, 40])
def test_optimisers_stay_within_their_budget_and_in_bounds(optimizer, maxiter):
    calls: list[int] = []
    x0 = np.array([0.2, 0.6, 0.6, 0.2])
    x = optimise(noisy_bowl(calls), x0, BOUNDS, optimizer, maxiter, popsize=3, seed=0)
    batches, evaluations = budget(optimizer, maxiter, 3, 4)
    assert len(calls) <= batches and sum(calls) <= evaluations
    assert np.all(x >= 0) and np.all(x <= np.array(BOUNDS)[:, 1])
    if maxiter == 40:
        assert ((x - TARGET) ** 2).sum() < 0.5 * ((x0 - TARGET) ** 2).sum()


def test_batched_optimisers_send_fewer_batches_than_evaluations():
    calls: list[int] = []
    optimise(noisy_bowl(calls), np.zeros(4), BOUNDS, "differential_evolution", 3, popsize=4)
    assert calls == [16, 16, 16, 16]  # one batch per generation
    calls.clear()
    optimise(noisy_bowl(calls), np.zeros(4), BOUNDS, "spsa", 5, seed=1)
    assert calls == [2] * 5


def test_unknown_optimizer_names_the_known_ones():
    with pytest.raises(BackendError, match="cobyla, nelder_mead, differential_evolution, spsa"):
        budget("adam", 10, 4, 2)
