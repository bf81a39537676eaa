"""D-Wave backends: the QPU through a clique embedding, and the Leap hybrid solvers.

- ``dwave``: :class:`DWaveCliqueQPUSampler`, ``DWaveCliqueSampler``'s scaling (per-qubit
  coupling range included) on a child sampler that can be substituted (``qpu_sampler=``, e.g.
  :func:`mock_qpu`: ``MockDWaveSampler`` on an Advantage or Advantage2 graph). A block's
  variables are all coupled by the cardinality penalty, so a clique embedding is the natural
  one: minorminer's busclique computes the cliques of a working graph once and caches them on
  disk; each (working graph, n) embedding is then kept in memory for every later block.
- ``leap-hybrid``: ``LeapHybridSampler`` on the penalised BQM, for blocks too large to embed.
- ``leap-cqm``: :class:`LeapCQMSampler`, the cardinality as native equality constraints; only
  feasible samples come back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import dimod
import numpy as np
from dwave.system import DWaveCliqueSampler, FixedEmbeddingComposite, LeapHybridSampler
from dwave.system.samplers.clique import ScaleComposite, _QubitCouplingComposite
from minorminer.busclique import find_clique_embedding

from qubo_prune.backends.errors import BackendError, SolveFailed
from qubo_prune.core.block import cardinality_cqm

__all__ = ["TOPOLOGIES", "DWaveCliqueQPUSampler", "LeapCQMSampler", "leap_hybrid", "mock_qpu"]

# The QPU generations' full graphs: Advantage is Pegasus P16 (5,640 qubits), Advantage2 Zephyr
# Z(12, 4) (4,800 qubits). A real working graph misses a few qubits and couplers.
TOPOLOGIES = {
    "advantage": ("pegasus", [16]),
    "advantage2": ("zephyr", [12, 4]),
}

# (working graph digest, n) -> clique embedding {0..n-1: chain}, shared by every sampler.
_EMBEDDINGS: dict[tuple[str, int], dict[int, tuple[int, ...]]] = {}


def mock_qpu(topology: str = "advantage", **kwargs: Any) -> dimod.Sampler:
    """``MockDWaveSampler`` on the full graph of ``topology`` (``advantage``, ``advantage2``).

    It embeds, scales, chains and unembeds exactly as a QPU is used, but its samples come from
    a classical sampler (steepest descent from random states; the mock's exact solver for tiny
    problems is switched off unless ``exact_solver_cutoff`` is given): it measures what
    embedding costs (chain lengths, chain breaks), not what a QPU would answer.
    """
    from dwave.system.testing import MockDWaveSampler

    if topology not in TOPOLOGIES:
        raise BackendError(f"unknown D-Wave topology {topology!r}; known: {', '.join(TOPOLOGIES)}")
    kind, shape = TOPOLOGIES[topology]
    kwargs.setdefault("exact_solver_cutoff", 0)
    return MockDWaveSampler(topology_type=kind, topology_shape=shape, **kwargs)


def _config(solver: str | None, profile: str | None) -> dict[str, Any]:
    """dwave-cloud-client options given explicitly; the rest come from its config chain."""
    return {k: v for k, v in (("solver", solver), ("profile", profile)) if v is not None}


class DWaveCliqueQPUSampler(DWaveCliqueSampler):
    """Clique-embedded QPU sampling; records chains and chain breaks, keeps the QPU timing.

    ``sampleset.info`` holds ``timing`` (the QPU's, microseconds), ``embedding_context`` (the
    embedding and chain strength used), ``chain_break_fraction`` (mean over the reads of the
    fraction of chains broken; each sample also carries its own in the record) and
    ``chain_length`` (longest and mean chain, in qubits).
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
    def graph_key(self) -> str:
        """A digest of the working graph (qubits and couplers), which keys the embedding cache."""
        if not hasattr(self, "_graph_key"):
            graph = (sorted(self.child.nodelist), sorted(map(sorted, self.child.edgelist)))
            self._graph_key = hashlib.sha256(repr(graph).encode()).hexdigest()
        return self._graph_key

    def clique_embedding(self, n: int) -> dict[int, tuple[int, ...]]:
        """The clique embedding of ``n`` variables on this working graph, found once per
        (graph, n) in a process (busclique's disk cache serves the first look-up)."""
        key = (self.graph_key, n)
        if key not in _EMBEDDINGS:
            found = find_clique_embedding(n, self.target_graph, use_cache=True)
            _EMBEDDINGS[key] = {v: tuple(chain) for v, chain in found.items()}
        return _EMBEDDINGS[key]

    @property
    def largest_clique_size(self) -> int:
        """Largest block the working graph embeds (busclique's cache; computed once)."""
        if not hasattr(self, "_largest_clique_size"):
            self._largest_clique_size = len(self.largest_clique())
        return self._largest_clique_size

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        chain_strength: float | Callable[..., float] | None = None,
        num_reads: int = 100,
        **kwargs: Any,
    ) -> dimod.SampleSet:
        """Embed, sample ``num_reads`` anneals and unembed (majority vote on broken chains).

        ``chain_strength`` is in the units of ``bqm``, or a function of ``(bqm, embedding)`` as
        dwave-system takes it; by default uniform torque compensation.
        """
        if bqm.num_variables == 0:  # busclique's scaling cannot take an empty problem
            return dimod.SampleSet.from_samples_bqm(([[]], []), bqm)
        limit = self.largest_clique_size
        if bqm.num_variables > limit:
            raise BackendError(
                f"a block of {bqm.num_variables} variables does not embed in this QPU's working "
                f"graph, whose largest clique has {limit}; use --block-size {limit} or leap-hybrid"
            )
        chains = self.clique_embedding(bqm.num_variables)
        embedding = dict(zip(bqm.variables, chains.values()))
        # DWaveCliqueSampler.sample with a cached embedding: scale to the QPU's ranges (per-qubit
        # coupling range included) in Ising form, embed, sample, unembed.
        spin = bqm.change_vartype(dimod.SPIN, inplace=False)
        qpu = _QubitCouplingComposite(
            self.child, linear_range=self.qpu_linear_range, quadratic_range=self.qpu_quadratic_range
        )
        if "auto_scale" in self.child.parameters:
            kwargs["auto_scale"] = False
        sampleset = FixedEmbeddingComposite(ScaleComposite(qpu), embedding).sample(
            spin,
            bias_range=self.qpu_linear_range,
            quadratic_range=self.qpu_quadratic_range,
            chain_strength=chain_strength,
            num_reads=num_reads,
            return_embedding=True,
            **kwargs,
        )
        sampleset = sampleset.change_vartype(bqm.vartype)
        sampleset.resolve()
        record = sampleset.record
        if len(record) and "chain_break_fraction" in record.dtype.names:
            broken = np.average(record.chain_break_fraction, weights=record.num_occurrences)
            sampleset.info["chain_break_fraction"] = float(broken)
        lengths = [len(chain) for chain in chains.values()]
        sampleset.info["chain_length"] = {"max": max(lengths), "mean": float(np.mean(lengths))}
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
