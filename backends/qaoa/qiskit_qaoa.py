"""QAOA through qiskit-optimization: ``MinimumEigenOptimizer`` + ``QAOA`` on a qiskit sampler.

Design: penalty-based, not native. The sampler takes the penalised BQM of the block (the
cardinality composite's provable multiplier, or ``penalty`` / ``penalty_scale``), normalised by
the registry's composite, as an unconstrained ``QuadraticProgram``; qiskit-optimization's own ``LinearEqualityToPenalty`` is not used, so
every penalty-based backend sees the same, provably safe, penalty. QAOA's measured states are
returned as they come, feasible or not (on hardware noise breaks any constraint anyway), and
the decoder repairs. Runs on Aer's sampler when installed, on qiskit's reference
``StatevectorSampler`` otherwise, and on an IBM backend through qiskit-ibm-runtime when
``ibm_backend=`` names one.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import dimod
import numpy as np

from qubo_prune.backends.errors import BackendError
from qubo_prune.backends.limits import MAX_SIMULATED_QUBITS
from qubo_prune.backends.qaoa.common import (
    QAOASampler,
    check_qubits,
    ramp_angles,
    shots_to_sampleset,
)

__all__ = ["QiskitQAOASampler"]

OPTIMIZERS = ("cobyla", "nelder_mead", "spsa")


class QiskitQAOASampler(QAOASampler):
    """QAOA on a qiskit sampler primitive; one optimisation per ``sample`` call.

    ``ibm_backend`` (e.g. ``"ibm_torino"``) connects to IBM Quantum when the sampler is built,
    with ``QISKIT_IBM_TOKEN`` (``QISKIT_IBM_INSTANCE``, ``QISKIT_IBM_CHANNEL``) or the saved
    default account.
    """

    parameters = {
        "reps": [],
        "optimizer": [],
        "maxiter": [],
        "shots": [],
        "seed": [],
        "cvar_alpha": [],
    }

    def __init__(self, ibm_backend: str | None = None) -> None:
        self._backend = _ibm_backend(ibm_backend) if ibm_backend else None
        if self._backend is not None:
            device, max_qubits = self._backend.name, int(self._backend.num_qubits)
        else:
            device, max_qubits = _simulator_name(), MAX_SIMULATED_QUBITS
        self._set_device(device, max_qubits)

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        reps: int = 2,
        optimizer: str = "cobyla",
        maxiter: int = 100,
        shots: int = 1024,
        seed: int | None = None,
        cvar_alpha: float | None = None,
        **kwargs: Any,
    ) -> dimod.SampleSet:
        """Optimise ``2 reps`` angles with ``optimizer``, then return the final state's shots.

        ``cvar_alpha`` in (0, 1] optimises the mean of the best ``alpha`` fraction of shots
        (CVaR) instead of the mean energy, which favours distributions holding the optimum.
        """
        self.remove_unknown_kwargs(**kwargs)
        from qiskit_optimization import QuadraticProgram
        from qiskit_optimization.algorithms import MinimumEigenOptimizer
        from qiskit_optimization.minimum_eigensolvers import QAOA

        variables = list(bqm.variables)
        n = len(variables)
        device = self.properties["device"]
        check_qubits(n, self.properties["max_qubits"], device)
        if n == 0:
            return shots_to_sampleset(np.zeros((1, 0)), [shots], variables, bqm)

        scaled = bqm.change_vartype(dimod.BINARY, inplace=False)
        names = [f"x{i}" for i in range(n)]
        index = {v: i for i, v in enumerate(variables)}
        program = QuadraticProgram("block")
        for name in names:
            program.binary_var(name)
        program.minimize(
            constant=scaled.offset,
            linear={names[index[v]]: b for v, b in scaled.linear.items()},
            quadratic={
                (names[index[u]], names[index[v]]): b for (u, v), b in scaled.quadratic.items()
            },
        )
        primitive, pass_manager = self._primitive(shots, seed)
        gammas, betas = ramp_angles(reps)
        qaoa = QAOA(
            primitive,
            _optimizer(optimizer, maxiter, seed),
            reps=reps,
            initial_point=np.concatenate([betas, gammas]),  # the ansatz orders beta before gamma
            aggregation=cvar_alpha,
            pass_manager=pass_manager,
        )
        result = MinimumEigenOptimizer(qaoa).solve(program)
        # result.samples are the final circuit's measured states, in the program's order.
        bits = np.array([s.x for s in result.samples], dtype=np.int8)
        counts = np.maximum(1, np.rint([s.probability * shots for s in result.samples]))
        eigen = result.min_eigen_solver_result
        info = {
            "device": device,
            "shots": shots,
            "reps": reps,
            "optimal_point": np.asarray(eigen.optimal_point).tolist(),
            "optimizer_evals": int(eigen.cost_function_evals),
        }
        return shots_to_sampleset(bits, counts, variables, bqm, info)

    def _primitive(self, shots: int, seed: int | None) -> tuple[Any, Any]:
        """The sampler primitive and the pass manager that maps the ansatz onto it."""
        from qiskit.transpiler import generate_preset_pass_manager

        if self._backend is not None:
            from qiskit_ibm_runtime import SamplerV2

            primitive = SamplerV2(mode=self._backend)
            primitive.options.default_shots = shots
            return primitive, generate_preset_pass_manager(
                optimization_level=1, backend=self._backend
            )
        try:
            from qiskit_aer import AerSimulator
            from qiskit_aer.primitives import SamplerV2 as AerSampler
        except ImportError:
            from qiskit.primitives import StatevectorSampler

            return StatevectorSampler(default_shots=shots, seed=seed), None
        pass_manager = generate_preset_pass_manager(optimization_level=1, backend=AerSimulator())
        return AerSampler(default_shots=shots, seed=seed), pass_manager


def _simulator_name() -> str:
    found = importlib.util.find_spec("qiskit_aer") is not None
    return "qiskit-aer SamplerV2" if found else "qiskit StatevectorSampler"


def _optimizer(name: str, maxiter: int, seed: int | None) -> Any:
    from qiskit_optimization import optimizers

    key = str(name).lower().replace("-", "_")
    if key == "cobyla":
        return optimizers.COBYLA(maxiter=maxiter)
    if key == "nelder_mead":
        return optimizers.NELDER_MEAD(maxiter=maxiter)
    if key == "spsa":
        if seed is not None:  # SPSA draws its perturbations from qiskit-optimization's globals
            from qiskit_optimization.utils import algorithm_globals

            algorithm_globals.random_seed = seed
        return optimizers.SPSA(maxiter=maxiter)
    raise BackendError(f"unknown QAOA optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def _ibm_backend(name: str) -> Any:
    """Connect to IBM Quantum (the credential check has run before) and pick the backend."""
    try:
        from qiskit_ibm_runtime import QiskitRuntimeService
    except ImportError:
        raise BackendError(
            f"ibm_backend={name!r} needs qiskit-ibm-runtime, which is not installed: "
            "pip install qiskit-ibm-runtime"
        ) from None
    token = os.environ.get("QISKIT_IBM_TOKEN")
    if token:
        service = QiskitRuntimeService(
            channel=os.environ.get("QISKIT_IBM_CHANNEL", "ibm_quantum_platform"),
            token=token,
            instance=os.environ.get("QISKIT_IBM_INSTANCE"),
        )
    else:
        service = QiskitRuntimeService()
    return service.backend(name)
