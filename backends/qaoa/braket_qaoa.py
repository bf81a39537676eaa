"""QAOA with Amazon Braket: the shared ansatz as a parametric circuit on a Braket device.

The circuit is built once per block from :mod:`~qubo_prune.backends.qaoa.ansatz`'s gate list
(``h``, ``x``, ``rx``, ``ry``, ``rz``, ``cnot``: gates every gate-model device takes), its angles
as ``FreeParameter``s, so every evaluation only binds ``inputs``; a batch of angle sets is one
``run_batch`` of tasks. Devices:

- the local state-vector simulator (default, noiseless);
- ``noise_model="ionq-forte"``: the local density-matrix simulator (``braket_dm``) with the
  gate errors a named device published (:mod:`~qubo_prune.backends.qaoa.device_noise`);
- ``device_arn=ARN``: a QPU or managed simulator; ``optimize_on="local"`` trains the angles on
  the free local simulator and sends only the final task.

Tasks that fail, are cancelled or outlive ``timeout`` raise :class:`BraketTaskError` (the
unfinished ones are cancelled first, so nothing keeps running or billing).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from braket.devices import LocalSimulator

from qubo_prune.backends.credentials import arn_region
from qubo_prune.backends.errors import BackendError, SolveFailed
from qubo_prune.backends.limits import MAX_SIMULATED_QUBITS
from qubo_prune.backends.qaoa.ansatz import Gate, parameter_names
from qubo_prune.backends.qaoa.common import QAOASampler, Run, Runs

__all__ = ["BraketQAOASampler", "BraketTaskError", "to_circuit"]

_TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
_NAMES = {"x": "x", "h": "h", "rx": "rx", "ry": "ry", "rz": "rz", "cx": "cnot"}


class BraketTaskError(SolveFailed):
    """A Braket task failed, was cancelled or timed out; the block should stay unchanged."""


def to_circuit(gates: list[Gate], n: int) -> Any:
    """The gate list as a ``braket.circuits.Circuit`` on qubits ``0..n-1`` (every one measured:
    an idle qubit gets an identity so that it still appears), angles as ``FreeParameter``s."""
    from braket.circuits import Circuit, FreeParameter

    params: dict[str, Any] = {}
    circuit = Circuit()
    for g in gates:
        add = getattr(circuit, _NAMES[g.name])
        if g.name in ("x", "h", "cx"):
            add(*g.qubits)
            continue
        angle = g.angle
        if g.param is not None:
            angle = g.angle * params.setdefault(g.param, FreeParameter(g.param))
        add(*g.qubits, angle)
    for q in sorted(set(range(n)) - set(circuit.qubits)):
        circuit.i(q)
    return circuit


class BraketQAOASampler(QAOASampler):
    """QAOA on ``braket.devices.LocalSimulator`` (noiseless, or with ``noise_model``) or, with
    ``device_arn``, an ``AwsDevice``.

    ``aws_profile`` picks a profile of the AWS config (``AWS_PROFILE`` or the default
    otherwise); ``s3_folder=(bucket, prefix)`` says where a device writes results (Braket's
    default bucket otherwise); ``timeout`` bounds the wait for each batch in seconds.
    ``device`` takes an already built device instead (an ``AwsDevice``, a test double).
    """

    def __init__(
        self,
        device_arn: str | None = None,
        noise_model: str | None = None,
        s3_folder: tuple[str, str] | None = None,
        timeout: float = 3600.0,
        device: Any = None,
        aws_profile: str | None = None,
    ) -> None:
        self._local = LocalSimulator()
        self._noise = None
        if noise_model is not None:
            if device is not None or device_arn:
                raise BackendError("noise_model simulates a device locally; give no device_arn")
            from qubo_prune.backends.qaoa.device_noise import braket_noise_model

            try:
                self._noise = braket_noise_model(noise_model)
            except ValueError as err:
                raise BackendError(str(err)) from None
            device = LocalSimulator("braket_dm")
        if device is None and device_arn:
            import boto3
            from braket.aws import AwsDevice, AwsSession

            # A QPU's ARN names its region; without AWS_REGION boto3 would not know it.
            region = arn_region(device_arn)
            boto = boto3.Session(profile_name=aws_profile, region_name=region)
            session = AwsSession(boto) if aws_profile or region else None
            device = AwsDevice(device_arn, aws_session=session)
        self._device = device if device is not None else self._local
        self._local_only = self._device is self._local
        max_qubits = int(self._device.properties.paradigm.qubitCount)
        if isinstance(self._device, LocalSimulator):
            max_qubits = min(max_qubits, MAX_SIMULATED_QUBITS)
        self._s3_folder = tuple(s3_folder) if s3_folder else None
        self._timeout = float(timeout)
        name = device_arn or getattr(self._device, "arn", None) or type(self._device).__name__
        if noise_model is not None:
            name = f"braket_dm with {noise_model} noise"
        self._set_device(name, max_qubits)

    def _program(self, gates: list[Gate], n: int, target: str) -> Any:
        circuit = to_circuit(gates, n)
        if target == "device" and self._noise is not None:
            return self._noise.apply(circuit)
        return circuit

    def _stats(self, program: Any) -> dict[str, int]:
        """Depth and CNOT count of the noiseless circuit (noise channels are not gates)."""
        from braket.circuits import Circuit
        from braket.circuits import Gate as BraketGate

        gates = [i for i in program.instructions if isinstance(i.operator, BraketGate)]
        two = sum(len(i.target) == 2 for i in gates)
        return {"depth": int(Circuit().add(gates).depth), "two_qubit_gates": int(two)}

    @contextmanager
    def _runner(self, target: str, iterative: bool) -> Iterator[Run]:
        device = self._local if target == "local" else self._device

        def run(program: Any, points: np.ndarray, shots: int, seed: int | None) -> Runs:
            n = program.qubit_count
            return self._run(device, program, [_inputs(p, program) for p in points], shots, n)

        yield run

    def _run(
        self, device: Any, circuit: Any, inputs: list[dict[str, float]], shots: int, n: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Run one batch (one task per angle set); each result as distinct states and counts."""
        circuits = [circuit] * len(inputs)
        if isinstance(device, LocalSimulator):  # runs in-process: no S3 folder, no polling
            results = device.run_batch(circuits, shots=shots, inputs=inputs).results()
        else:
            batch = device.run_batch(
                circuits,
                s3_destination_folder=self._s3_folder,
                shots=shots,
                inputs=inputs,
                poll_timeout_seconds=self._timeout,
            )
            results = batch.results(fail_unsuccessful=False, max_retries=0)
            if batch.unsuccessful or any(r is None for r in results):
                raise _failure(batch)
        return [_counts(r, n) for r in results]


def _inputs(point: np.ndarray, program: Any) -> dict[str, float]:
    """The angle vector as inputs for the parameters the circuit has (an empty objective has
    no gamma, for instance)."""
    values = dict(zip(parameter_names(len(point) // 2), map(float, point)))
    return {p.name: values[p.name] for p in program.parameters}


def _counts(result: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Measured bit strings as a ``(m, n)`` matrix in qubit order, with their counts."""
    qubits = [int(q) for q in result.measured_qubits]
    strings, counts = zip(*result.measurement_counts.items())
    measured = np.array([[int(b) for b in s] for s in strings], dtype=np.int8)
    bits = np.zeros((len(strings), n), dtype=np.int8)
    bits[:, qubits] = measured
    return bits, np.array(counts)


def _failure(batch: Any) -> BraketTaskError:
    """Cancel what is still queued or running, and say which tasks did not complete."""
    states = {}
    for task in batch.tasks:
        state = task.state()
        if state not in _TERMINAL:
            task.cancel()
            state = f"{state}, cancelled after the timeout"
        states[task.id] = state
    bad = {arn: s for arn, s in states.items() if s != "COMPLETED"}
    listed = "; ".join(f"{arn}: {s}" for arn, s in list(bad.items())[:5])
    return BraketTaskError(
        f"{len(bad)} of {len(states)} Braket tasks did not complete ({listed}); "
        "nothing from this batch is used"
    )
