"""Classical samplers from dwave-samplers, solving the penalised BQM of a block."""

from __future__ import annotations

from dwave.samplers import SimulatedAnnealingSampler, SteepestDescentSolver, TabuSampler


def simulated_annealing() -> SimulatedAnnealingSampler:
    """Simulated annealing, the algorithm of dwave-neal (whose package now re-exports this)."""
    return SimulatedAnnealingSampler()


def tabu() -> TabuSampler:
    return TabuSampler()


def steepest_descent() -> SteepestDescentSolver:
    return SteepestDescentSolver()
