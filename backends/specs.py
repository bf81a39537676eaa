"""Built-in backends, described without importing them.

Each entry names the module that builds the sampler, the extra that installs it, what it can
take, how its credentials, size limit and price are known. Third-party backends register a
:class:`~qubo_prune.backends.registry.BackendSpec` through the entry-point group
``qubo_prune.backends``.
"""

from __future__ import annotations

from qubo_prune.backends.cost import (
    braket_cost,
    dwave_qpu_cost,
    ibm_cost,
    leap_cqm_cost,
    leap_hybrid_cost,
)
from qubo_prune.backends.credentials import braket_problem, dwave_problem, ibm_problem
from qubo_prune.backends.limits import QPU_CLIQUE_BOUND, braket_limit, qaoa_qiskit_limit
from qubo_prune.backends.qaoa.ansatz import keeps_cardinality
from qubo_prune.backends.registry import BackendSpec, Capabilities

BUILTIN_SPECS: list[BackendSpec] = [
    BackendSpec(
        name="exact",
        factory="qubo_prune.backends.exact:ExactCardinalitySampler",
        description="vectorised enumeration of the feasible states; ground truth for comparisons",
        capabilities=Capabilities(max_variables=24, native_cardinality=True, stochastic=False),
    ),
    # Defaults of the classical samplers: chosen by benchmarks/defaults.py on blocks recorded
    # from this project's runs (docs/benchmarks.md); every stop counts work, not seconds.
    BackendSpec(
        name="neal",
        factory="qubo_prune.backends.classical:simulated_annealing",
        description="simulated annealing (dwave-samplers; the dwave-neal algorithm) on the penalised BQM",
        requires=("dwave.samplers",),
        defaults={"num_reads": 2, "num_sweeps": 100, "seed": 0},
        budget="num_sweeps",
    ),
    BackendSpec(
        name="tabu",
        factory="qubo_prune.backends.classical:tabu",
        description="multistart tabu search (dwave-samplers) on the penalised BQM",
        requires=("dwave.samplers",),
        # num_restarts bounds the work; timeout (ms) is only an upper cap; the first restart
        # starts from the block's current mask (always feasible)
        defaults={
            "num_reads": 1,
            "num_restarts": 4,
            "timeout": 60_000,
            "seed": 0,
            "warm_start": True,
        },
        budget="num_restarts",
    ),
    BackendSpec(
        name="steepest-descent",
        factory="qubo_prune.backends.classical:steepest_descent",
        description="steepest greedy descent (dwave-samplers) from random starts on the penalised BQM",
        requires=("dwave.samplers",),
        capabilities=Capabilities(stochastic=False),
        defaults={"num_reads": 32, "seed": 0},
        budget="num_reads",
    ),
]

# Quantum and cloud backends: credentials, size limits and prices are known from light modules
# (credentials, limits, cost) without importing any SDK.
BUILTIN_SPECS += [
    BackendSpec(
        name="qaoa-qiskit",
        factory="qubo_prune.backends.qaoa.qiskit_qaoa:QiskitQAOASampler",
        description="XY-mixer QAOA (Dicke states, every shot feasible) on Aer, a noisy fake IBM "
        "device (fake_backend=NAME) or IBM hardware in one session per block (ibm_backend=NAME); "
        "mixer='x': standard QAOA on the penalised BQM",
        capabilities=Capabilities(native_cardinality=True, batched=True),
        requires=("qiskit",),
        extra="qiskit",
        credentials=ibm_problem,
        limit=qaoa_qiskit_limit,
        cost=ibm_cost,
        native=keeps_cardinality,
        normalise=True,
        budget="maxiter",
        solve_timeout=4 * 3600.0,  # IBM queues can hold a job for hours
        hardware={"ibm_backend": "ibm_torino"},
    ),
    BackendSpec(
        name="braket",
        factory="qubo_prune.backends.qaoa.braket_qaoa:BraketQAOASampler",
        description="XY-mixer QAOA (Dicke states) on Braket's LocalSimulator, with a published "
        "device's gate errors (noise_model=NAME) or on a device (device_arn=ARN); mixer='x': "
        "standard QAOA on the penalised BQM",
        capabilities=Capabilities(native_cardinality=True, batched=True),
        requires=("braket.circuits", "scipy"),
        extra="braket",
        credentials=braket_problem,
        limit=braket_limit,
        cost=braket_cost,
        native=keeps_cardinality,
        normalise=True,
        budget="maxiter",
        solve_timeout=4 * 3600.0,  # device queues; each batch has its own `timeout` too
        hardware={"device_arn": "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet"},
    ),
    BackendSpec(
        name="dwave",
        factory="qubo_prune.backends.dwave:DWaveCliqueQPUSampler",
        description="D-Wave QPU through a cached clique embedding; penalised BQM",
        capabilities=Capabilities(max_variables=QPU_CLIQUE_BOUND, paid=True),
        requires=("dwave.system", "minorminer"),
        extra="dwave",
        credentials=dwave_problem,
        cost=dwave_qpu_cost,
        budget="num_reads",
        solve_timeout=3600.0,
    ),
    BackendSpec(
        name="leap-hybrid",
        factory="qubo_prune.backends.dwave:leap_hybrid",
        description="D-Wave Leap hybrid BQM solver, for blocks too large to embed; penalised BQM",
        capabilities=Capabilities(max_variables=1_000_000, paid=True),
        requires=("dwave.system",),
        extra="dwave",
        credentials=dwave_problem,
        cost=leap_hybrid_cost,
        solve_timeout=3600.0,
    ),
    BackendSpec(
        name="leap-cqm",
        factory="qubo_prune.backends.dwave:LeapCQMSampler",
        description="D-Wave Leap hybrid CQM solver with the cardinality as native constraints",
        capabilities=Capabilities(max_variables=500_000, native_cardinality=True, paid=True),
        requires=("dwave.system",),
        extra="dwave",
        credentials=dwave_problem,
        cost=leap_cqm_cost,
        solve_timeout=3600.0,
    ),
    BackendSpec(
        name="gpu-anneal",
        factory="qubo_prune.backends.gpu_anneal:GPUAnnealSampler",
        description="batched torch annealing with swap moves that keep the cardinality exactly",
        requires=("torch",),
        capabilities=Capabilities(native_cardinality=True, batched=True, stochastic=True),
        # on one block, 8 replicas x 32 candidate moves per step (gpu_anneal.auto_candidates),
        # every replica from the block's current mask, the best read polished
        defaults={
            "num_reads": 8,
            "num_sweeps": 14,
            "seed": 0,
            "warm_start": True,
            "initial_states_generator": "tile",
        },
        budget="num_sweeps",
    ),
]
