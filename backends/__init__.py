"""Built-in backends, described without importing them (installed as ``qubo_prune.backends``).

Each entry names the module that builds the sampler, the extra that installs it and what it
can take. Third-party backends register a :class:`~qubo_prune.registry.BackendSpec` through
the entry-point group ``qubo_prune.backends``.
"""

from __future__ import annotations

from qubo_prune.registry import BackendSpec, Capabilities

BUILTIN_SPECS: list[BackendSpec] = [
    BackendSpec(
        name="exact",
        factory="qubo_prune.backends.exact:ExactCardinalitySampler",
        description="vectorised enumeration of the feasible states; ground truth for comparisons",
        capabilities=Capabilities(max_variables=24, native_cardinality=True, stochastic=False),
    ),
    BackendSpec(
        name="neal",
        factory="qubo_prune.backends.classical:simulated_annealing",
        description="simulated annealing (dwave-samplers; the dwave-neal algorithm) on the penalised BQM",
        requires=("dwave.samplers",),
    ),
    BackendSpec(
        name="tabu",
        factory="qubo_prune.backends.classical:tabu",
        description="multistart tabu search (dwave-samplers) on the penalised BQM",
        requires=("dwave.samplers",),
    ),
    BackendSpec(
        name="steepest-descent",
        factory="qubo_prune.backends.classical:steepest_descent",
        description="steepest greedy descent (dwave-samplers) from random starts on the penalised BQM",
        requires=("dwave.samplers",),
        capabilities=Capabilities(stochastic=False),
    ),
]
