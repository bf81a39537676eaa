"""D-Wave backends: the QPU through a clique embedding, and the Leap hybrid solvers.

- ``dwave``: :class:`DWaveCliqueQPUSampler`, ``DWaveCliqueSampler``'s scaling (per-qubit
  coupling range included) on a child sampler that can be substituted (``qpu_sampler=``, e.g.
  ``MockDWaveSampler``). A block's variables are all coupled by the cardinality penalty, so a
  clique embedding is the natural one: minorminer's busclique computes the cliques of a working
  graph once, caches them on disk and serves every block size from that cache.
- ``leap-hybrid``: ``LeapHybridSampler`` on the penalised BQM, for blocks too large to embed.
- ``leap-cqm``: :class:`LeapCQMSampler`, the cardinality as native equality constraints; only
  feasible samples come back.
"""

from __future__ import annotations

from typing import Any

import dimod
import numpy as np
from dwave.system import DWaveCliqueSampler, LeapHybridSampler

from qubo_prune.backends.errors import BackendError, SolveFailed
from qubo_prune.core.block import cardinality_cqm

__all__ = ["DWaveCliqueQPUSampler", "LeapCQMSampler", "leap_hybrid"]


def _config(solver: str | None, profile: str | None) -> dict[str, Any]:
    """dwave-cloud-client options given explicitly; the rest come from its config chain."""
    return {k: v for k, v in (("solver", solver), ("profile", profile)) if v is not None}


class DWaveCliqueQPUSampler(DWaveCliqueSampler):
    """Clique-embedded QPU sampling; records chain breaks and keeps the QPU timing.

    ``sampleset.info`` holds ``timing`` (the QPU's, microseconds), ``embedding_context`` (the
    embedding and chain strength used) and ``chain_break_fraction`` (mean over the reads of the
    fraction of chains broken; each sample also carries its own in the record).
    """

    def __init__(
        self,
        qpu_sampler: dimod.Sampler | None = None,
        solver: str | None = None,
        profile: str | None = None,
    ) -> None:
        if qpu_sampler is None:
            from dwave.system import DWaveSampler

            qpu_sampler = DWaveSampler(**_config(solver, profile))
        self.child = qpu_sampler

    @property
    def parameters(self) -> dict[str, Any]:
        return {**super().parameters, "chain_strength": []}

    @property
    def largest_clique_size(self) -> int:
        """Largest block the working graph embeds (busclique's cache; computed once)."""
        if not hasattr(self, "_largest_clique_size"):
            self._largest_clique_size = len(self.largest_clique())
        return self._largest_clique_size

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        chain_strength: float | None = None,
        num_reads: int = 100,
        **kwargs: Any,
    ) -> dimod.SampleSet:
        """Embed, sample ``num_reads`` anneals and unembed (majority vote on broken chains).

        ``chain_strength`` is in the units of ``bqm``; by default uniform torque compensation.
        """
        if bqm.num_variables == 0:  # busclique's scaling cannot take an empty problem
            return dimod.SampleSet.from_samples_bqm(([[]], []), bqm)
        limit = self.largest_clique_size
        if bqm.num_variables > limit:
            raise BackendError(
                f"a block of {bqm.num_variables} variables does not embed in this QPU's working "
                f"graph, whose largest clique has {limit}; use --block-size {limit} or leap-hybrid"
            )
        sampleset = super().sample(
            bqm, chain_strength=chain_strength, num_reads=num_reads, return_embedding=True, **kwargs
        )
        sampleset.resolve()
        record = sampleset.record
        if len(record) and "chain_break_fraction" in record.dtype.names:
            broken = np.average(record.chain_break_fraction, weights=record.num_occurrences)
            sampleset.info["chain_break_fraction"] = float(broken)
        return sampleset


def leap_hybrid(solver: str | None = None, profile: str | None = None) -> LeapHybridSampler:
    """Leap's hybrid BQM solver, for blocks larger than any clique embedding."""
    return LeapHybridSampler(**_config(solver, profile))


class LeapCQMSampler(dimod.Sampler):
    """Leap's hybrid CQM solver with the cardinality as equality constraints (native).

    Takes the bare objective and ``cardinality=[(variables, k), ...]``; returns the feasible
    samples only, with the objective's energies. ``cqm_sampler`` substitutes the solver (e.g.
    ``dimod.ExactCQMSolver`` in tests).
    """

    parameters = {"cardinality": [], "time_limit": [], "label": []}
    properties: dict[str, Any] = {}

    def __init__(
        self,
        cqm_sampler: Any = None,
        solver: str | None = None,
        profile: str | None = None,
    ) -> None:
        if cqm_sampler is None:
            from dwave.system import LeapHybridCQMSampler

            cqm_sampler = LeapHybridCQMSampler(**_config(solver, profile))
        self.child = cqm_sampler

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        cardinality: list[tuple[list, int]] | None = None,
        time_limit: float | None = None,
        label: str | None = None,
        **kwargs: Any,
    ) -> dimod.SampleSet:
        self.remove_unknown_kwargs(**kwargs)
        cqm = cardinality_cqm(bqm, cardinality or ())
        params = {k: v for k, v in (("time_limit", time_limit), ("label", label)) if v is not None}
        result = self.child.sample_cqm(cqm, **params)
        feasible = result.filter(lambda d: d.is_feasible)
        if len(feasible) == 0 and bqm.num_variables:
            raise SolveFailed("the Leap CQM solver returned no feasible sample for this block")
        variables = list(feasible.variables)
        return dimod.SampleSet.from_samples_bqm(
            (feasible.record.sample, variables),
            bqm,
            num_occurrences=feasible.record.num_occurrences,
            info=dict(result.info),
        )
