"""QAOA in qiskit: on Aer, on a fake IBM device with its noise (local testing mode), or on IBM
hardware inside one Runtime session per block.

The ansatz is :mod:`~qubo_prune.backends.qaoa.ansatz`'s gate list as a parametrised
``QuantumCircuit``, transpiled once per block to the target's coupling map and basis gates;
every angle evaluation only binds parameters, and a batch of angle sets is one sampler PUB (one
job). Targets:

- no backend: Aer's ``SamplerV2`` (qiskit's ``StatevectorSampler`` without Aer), noiseless;
- ``fake_backend="fake_fez"`` (or ``backend=`` any ``BackendV2``): qiskit-ibm-runtime's local
  testing mode: the runtime's ``SamplerV2`` in a ``Session`` on the fake device, which runs on
  Aer with the device's noise model after transpiling to its coupling map and basis gates;
- ``ibm_backend="ibm_fez"``: the same code on the real device through ``QiskitRuntimeService``.

On a device the whole optimisation of a block runs in one ``Session``: the QPU stays reserved
between the optimiser's jobs. Jobs that do not depend on one another (the final samplings of
blocks trained locally, ``optimize_on="local"``) go in a ``Batch``, billed for quantum time only;
``sample_batch`` (the registry's ``solve_many``) puts all its blocks in one. ``execution=``
``"session"``, ``"batch"`` or ``"job"`` (plain jobs) overrides the choice.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np

from qubo_prune.backends.errors import BackendError
from qubo_prune.backends.limits import MAX_SIMULATED_QUBITS
from qubo_prune.backends.qaoa.ansatz import Gate, parameter_names
from qubo_prune.backends.qaoa.common import QAOASampler, Run, Runs, distinct

__all__ = ["EXECUTION_MODES", "QiskitQAOASampler", "fake_ibm_device", "to_circuit"]

EXECUTION_MODES = ("session", "batch", "job")


def to_circuit(gates: list[Gate], n: int) -> Any:
    """The gate list as a ``QuantumCircuit`` on ``n`` qubits, angles as ``Parameter``s, every
    qubit measured into the register ``meas`` (clbit ``i`` = qubit ``i``)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    params: dict[str, Any] = {}
    circuit = QuantumCircuit(n)
    for g in gates:
        if g.name in ("x", "h", "cx"):
            getattr(circuit, g.name)(*g.qubits)
            continue
        angle = g.angle
        if g.param is not None:
            angle = g.angle * params.setdefault(g.param, Parameter(g.param))
        getattr(circuit, g.name)(angle, *g.qubits)
    circuit.measure_all()
    return circuit


@cache
def fake_ibm_device(name: str) -> Any:
    """A fake IBM device of qiskit-ibm-runtime by name (``"fake_fez"``, ``"FakeBrisbane"``): a
    snapshot of a real device's coupling map, basis gates and noise, simulated locally. One
    instance per name and process: its noise model is built on first use (seconds to a
    minute for a 156-qubit device) and kept."""
    try:
        from qiskit_ibm_runtime import fake_provider
    except ImportError:
        raise BackendError(
            "fake IBM devices need qiskit-ibm-runtime: pip install 'qubo-prune[qiskit]'"
        ) from None
    stem = "".join(part.capitalize() for part in str(name).replace("-", "_").split("_"))
    stem = stem if stem.startswith("Fake") else "Fake" + stem
    for candidate in (stem, stem + "V2"):
        cls = getattr(fake_provider, candidate, None)
        if cls is not None:
            return cls()
    known = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and "Provider" not in n)
    raise BackendError(f"no fake IBM device {name!r}; known: {', '.join(known)}")


class QiskitQAOASampler(QAOASampler):
    """QAOA on a qiskit sampler primitive; one optimisation per ``sample`` call.

    ``ibm_backend`` (e.g. ``"ibm_fez"``) connects to IBM Quantum when the sampler is built, with
    ``QISKIT_IBM_TOKEN`` (``QISKIT_IBM_INSTANCE``, ``QISKIT_IBM_CHANNEL``) or the saved default
    account. ``fake_backend`` names a fake device (local, noisy, free); ``backend`` takes a built
    ``BackendV2``. ``optimization_level`` is the transpiler's (0-3).
    """

    def __init__(
        self,
        ibm_backend: str | None = None,
        fake_backend: str | None = None,
        backend: Any = None,
        execution: str | None = None,
        optimization_level: int = 1,
    ) -> None:
        if execution is not None and execution not in EXECUTION_MODES:
            raise BackendError(
                f"execution must be one of {', '.join(EXECUTION_MODES)}, got {execution!r}"
            )
        if sum(x is not None for x in (ibm_backend, fake_backend, backend)) > 1:
            raise BackendError("give one of ibm_backend, fake_backend and backend")
        if backend is None and fake_backend is not None:
            backend = fake_ibm_device(fake_backend)
        if backend is None and ibm_backend:
            backend = _ibm_backend(ibm_backend)
        self._backend = backend
        self._execution = execution
        self._mode: Any = None  # the open Session / Batch of sample_batch
        self._level = int(optimization_level)
        self._local_only = backend is None
        if backend is None:
            self._set_device(_simulator_name(), MAX_SIMULATED_QUBITS)
        else:
            limit = int(backend.num_qubits)
            if not _is_ibm_hardware(backend):  # simulated locally: the simulator is the limit
                limit = min(limit, MAX_SIMULATED_QUBITS)
            self._set_device(str(backend.name), limit)

    def _program(self, gates: list[Gate], n: int, target: str) -> Any:
        circuit = to_circuit(gates, n)
        if target == "device" and self._backend is not None:
            from qiskit.transpiler import generate_preset_pass_manager

            manager = generate_preset_pass_manager(
                optimization_level=self._level, backend=self._backend, seed_transpiler=0
            )
            return manager.run(circuit)
        return circuit  # the simulators take every gate of the ansatz as it is

    def _stats(self, program: Any) -> dict[str, int]:
        body = program.remove_final_measurements(inplace=False)
        return {"depth": int(body.depth()), "two_qubit_gates": int(body.num_nonlocal_gates())}

    @contextmanager
    def _open(self, iterative: bool) -> Iterator[Any]:
        """Where device jobs go: a ``Session`` (iterative work, or ``execution="session"``), a
        ``Batch`` (independent jobs, or ``execution="batch"``) or the backend (plain jobs)."""
        from qiskit_ibm_runtime import Batch, Session

        mode = self._execution or ("session" if iterative else "batch")
        if mode == "job":
            yield self._backend
            return
        with {"session": Session, "batch": Batch}[mode](backend=self._backend) as context:
            yield context

    @contextmanager
    def _shared(self, iterative: bool) -> Iterator[None]:
        if self._backend is None or self._mode is not None:
            yield
            return
        with self._open(iterative) as mode:
            self._mode = mode
            try:
                yield
            finally:
                self._mode = None

    @contextmanager
    def _runner(self, target: str, iterative: bool) -> Iterator[Run]:
        if target == "local" or self._backend is None:
            yield _run_with(_local_primitive)
        elif self._mode is not None:  # inside sample_batch's context
            yield self._device_run(self._mode)
        else:
            with self._open(iterative) as mode:
                yield self._device_run(mode)

    def _device_run(self, mode: Any) -> Run:
        """Batches as jobs of the runtime's ``SamplerV2`` in ``mode`` (seeded on fake devices)."""
        from qiskit_ibm_runtime import SamplerV2

        def primitive(shots: int, seed: int | None) -> Any:
            sampler = SamplerV2(mode=mode)
            sampler.options.default_shots = shots
            if seed is not None and not _is_ibm_hardware(self._backend):
                sampler.options.simulator.seed_simulator = seed
            return sampler

        return _run_with(primitive)


def _run_with(primitive: Any) -> Run:
    """A batch runner on a primitive factory ``(shots, seed) -> SamplerV2``: all angle sets in
    one PUB (one job), each returned as distinct states in qubit order with their counts."""

    def run(program: Any, points: np.ndarray, shots: int, seed: int | None) -> Runs:
        names = [p.name for p in program.parameters]
        if not names:  # nothing to bind (an empty objective): one run serves every point
            bits = primitive(shots, seed).run([(program,)]).result()[0].data.meas
            return [distinct(_bits(bits, ()))] * len(points)
        index = {name: i for i, name in enumerate(parameter_names(points.shape[1] // 2))}
        values = points[:, [index[name] for name in names]]
        bits = primitive(shots, seed).run([(program, values)]).result()[0].data.meas
        return [distinct(_bits(bits, j)) for j in range(len(points))]

    return run


def _bits(bit_array: Any, loc: Any) -> np.ndarray:
    """The shots at ``loc`` of a ``BitArray`` as a ``(shots, n)`` 0/1 matrix, column ``i`` = clbit
    ``i`` (bytes are big-endian, clbit 0 the last bit)."""
    raw = np.asarray(bit_array.array[loc], dtype=np.uint8)
    return np.unpackbits(raw, axis=-1)[:, ::-1][:, : bit_array.num_bits]


def _local_primitive(shots: int, seed: int | None) -> Any:
    """Aer's sampler (noiseless), or qiskit's reference statevector sampler without Aer."""
    try:
        from qiskit_aer.primitives import SamplerV2
    except ImportError:
        from qiskit.primitives import StatevectorSampler

        return StatevectorSampler(default_shots=shots, seed=seed)
    return SamplerV2(default_shots=shots, seed=seed)


def _simulator_name() -> str:
    found = importlib.util.find_spec("qiskit_aer") is not None
    return "qiskit-aer SamplerV2" if found else "qiskit StatevectorSampler"


def _is_ibm_hardware(backend: Any) -> bool:
    """A backend of IBM's service (billed), as opposed to a fake device or a simulator."""
    try:
        from qiskit_ibm_runtime import IBMBackend
    except ImportError:
        return False
    return isinstance(backend, IBMBackend)


def _ibm_backend(name: str) -> Any:
    """Connect to IBM Quantum (the credential check has run before) and pick the backend."""
    try:
        from qiskit_ibm_runtime import QiskitRuntimeService
    except ImportError:
        raise BackendError(
            f"ibm_backend={name!r} needs qiskit-ibm-runtime, which is not installed: "
            "pip install 'qubo-prune[qiskit]'"
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
