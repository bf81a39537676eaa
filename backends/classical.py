"""Classical samplers from dwave-samplers, solving the penalised BQM of a block."""

from __future__ import annotations

import dimod


def simulated_annealing() -> dimod.Sampler:
    """Simulated annealing, the algorithm of dwave-neal (whose package now re-exports this)."""
    from dwave.samplers import SimulatedAnnealingSampler

    return SimulatedAnnealingSampler()


def tabu() -> dimod.Sampler:
    from dwave.samplers import TabuSampler

    return TabuSampler()


def steepest_descent() -> dimod.Sampler:
    from dwave.samplers import SteepestDescentSolver

    return SteepestDescentSolver()
