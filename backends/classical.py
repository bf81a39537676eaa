"""Classical samplers from dwave-samplers, solving the penalised BQM of a block.

Two of their defaults are replaced for dense blocks, each measured on recorded blocks
(docs/benchmarks.md); an option the caller gives passes through untouched. The overrides wrap
the originals' signatures, so the registry still checks every option by name and type.
"""

from __future__ import annotations

import functools
from typing import Any

import dimod
from dwave.samplers import SimulatedAnnealingSampler, SteepestDescentSolver, TabuSampler

from qubo_prune.backends.schedule import flip_beta_range


class ScheduledAnnealing(SimulatedAnnealingSampler):
    """Simulated annealing, the algorithm of dwave-neal (whose package now re-exports this),
    with ``beta_range`` from the sizes of its moves on each BQM (:func:`flip_beta_range`)."""

    @functools.wraps(SimulatedAnnealingSampler.sample)
    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        beta_range: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> dimod.SampleSet:
        if beta_range is None:
            beta_range = flip_beta_range(bqm)
        return super().sample(bqm, beta_range=beta_range, **kwargs)


class ScaledTenureTabu(TabuSampler):
    """dwave-samplers' tabu search with a tabu list that grows with the block.

    Its default tenure, ``min(20, n // 4)``, stops growing at n = 80; on recorded n = 1024
    blocks the search then ends well above the best known energy, where n / 10 comes close
    (and n / 10 also solves more of the small blocks exactly).
    """

    @functools.wraps(TabuSampler.sample)
    def sample(
        self, bqm: dimod.BinaryQuadraticModel, tenure: int | None = None, **kwargs: Any
    ) -> dimod.SampleSet:
        if tenure is None:
            tenure = scaled_tenure(len(bqm))
        return super().sample(bqm, tenure=tenure, **kwargs)


def scaled_tenure(n: int) -> int:
    """A tenth of the variables (at least 1, below n as tabu requires)."""
    return max(0, min(n - 1, max(1, round(n / 10))))


def simulated_annealing() -> ScheduledAnnealing:
    return ScheduledAnnealing()


def tabu() -> ScaledTenureTabu:
    return ScaledTenureTabu()


def steepest_descent() -> SteepestDescentSolver:
    return SteepestDescentSolver()
