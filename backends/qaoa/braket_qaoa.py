"""QAOA with Amazon Braket: a parametric circuit, angles optimised by scipy, shots as a SampleSet.

The circuit is built once per block from the Ising form of the penalised BQM (normalised by
the registry's composite), with
its angles as ``FreeParameter``s, so every evaluation only binds ``inputs``. The optimiser is
scipy's differential evolution in vectorised mode: each generation is one ``run_batch`` of
tasks, which a QPU queues and runs together instead of one round trip per evaluation. The
final circuit at the best angles is sampled once more and its shots are returned (feasible or
not: the decoder repairs). ``optimize_on="local"`` trains the angles on the free local
simulator and sends only that final task to the device.

Tasks that fail, are cancelled or outlive ``timeout`` raise :class:`BraketTaskError` (the
unfinished ones are cancelled first, so nothing keeps running or billing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dimod
import numpy as np
from braket.devices import LocalSimulator

from qubo_prune.backends.credentials import arn_region
from qubo_prune.backends.errors import BackendError, SolveFailed
from qubo_prune.backends.limits import MAX_SIMULATED_QUBITS
from qubo_prune.backends.qaoa.common import (
    QAOASampler,
    check_qubits,
    ramp_angles,
    shots_to_sampleset,
    z_ising,
)

__all__ = ["BraketQAOASampler", "BraketTaskError", "qaoa_circuit"]

_TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


class BraketTaskError(SolveFailed):
    """A Braket task failed, was cancelled or timed out; the block should stay unchanged."""


def qaoa_circuit(h: np.ndarray, couplings: Sequence[tuple[int, int, float]], reps: int) -> Any:
    """``reps`` QAOA layers for ``sum h_i Z_i + sum J_ij Z_i Z_j`` with angles ``gamma_l``,
    ``beta_l`` as free parameters; only gates every gate-model device takes (h, cnot, rz, rx)."""
    from braket.circuits import Circuit, FreeParameter

    n = len(h)
    circuit = Circuit().h(range(n))
    for layer in range(reps):
        gamma, beta = FreeParameter(f"gamma_{layer}"), FreeParameter(f"beta_{layer}")
        for i in np.flatnonzero(h):
            circuit.rz(int(i), 2 * float(h[i]) * gamma)  # exp(-i gamma h Z)
        for i, j, J in couplings:
            circuit.cnot(i, j).rz(j, 2 * J * gamma).cnot(i, j)  # exp(-i gamma J Z_i Z_j)
        for i in range(n):
            circuit.rx(i, 2 * beta)  # exp(-i beta X)
    return circuit


class BraketQAOASampler(QAOASampler):
    """QAOA on ``braket.devices.LocalSimulator`` or, with ``device_arn``, an ``AwsDevice``.

    ``aws_profile`` picks a profile of the AWS config (``AWS_PROFILE`` or the default
    otherwise); ``s3_folder=(bucket, prefix)`` says where a device writes results (Braket's
    default bucket otherwise); ``timeout`` bounds the wait for each batch in seconds.
    ``device`` takes an already built device instead (an ``AwsDevice``, a test double).
    """

    parameters = {
        "reps": [],
        "shots": [],
        "popsize": [],
        "maxiter": [],
        "seed": [],
        "cvar_alpha": [],
        "optimize_on": [],
    }

    def __init__(
        self,
        device_arn: str | None = None,
        s3_folder: tuple[str, str] | None = None,
        timeout: float = 3600.0,
        device: Any = None,
        aws_profile: str | None = None,
    ) -> None:
        self._local = LocalSimulator()
        if device is None and device_arn:
            import boto3
            from braket.aws import AwsDevice, AwsSession

            # A QPU's ARN names its region; without AWS_REGION boto3 would not know it.
            region = arn_region(device_arn)
            boto = boto3.Session(profile_name=aws_profile, region_name=region)
            session = AwsSession(boto) if aws_profile or region else None
            device = AwsDevice(device_arn, aws_session=session)
        self._device = device if device is not None else self._local
        if isinstance(self._device, LocalSimulator):
            max_qubits = MAX_SIMULATED_QUBITS
        else:
            max_qubits = int(self._device.properties.paradigm.qubitCount)
        self._s3_folder = tuple(s3_folder) if s3_folder else None
        self._timeout = float(timeout)
        name = device_arn or getattr(self._device, "arn", None) or type(self._device).__name__
        self._set_device(name, max_qubits)

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        reps: int = 1,
        shots: int = 512,
        popsize: int = 4,
        maxiter: int = 5,
        seed: int | None = None,
        cvar_alpha: float | None = None,
        optimize_on: str = "device",
        **kwargs: Any,
    ) -> dimod.SampleSet:
        """Optimise the ``2 reps`` angles (``popsize * 2 reps`` tasks per generation, at most
        ``maxiter + 1`` generations), then sample the best circuit with ``shots`` shots.

        ``cvar_alpha`` in (0, 1] scores a circuit by the mean of its best ``alpha`` fraction of
        shots (CVaR) instead of the mean energy.
        """
        self.remove_unknown_kwargs(**kwargs)
        from scipy.optimize import differential_evolution

        if optimize_on not in ("device", "local"):
            raise BackendError(f"optimize_on must be 'device' or 'local', got {optimize_on!r}")
        alpha = 1.0 if cvar_alpha is None else float(cvar_alpha)
        if not 0 < alpha <= 1:
            raise BackendError(f"cvar_alpha must be in (0, 1], got {cvar_alpha}")
        variables = list(bqm.variables)
        n = len(variables)
        check_qubits(n, self.properties["max_qubits"], self.properties["device"])
        if n == 0:
            return shots_to_sampleset(np.zeros((1, 0)), [shots], variables, bqm)

        scaled = bqm.change_vartype(dimod.BINARY, inplace=False)
        circuit = qaoa_circuit(*z_ising(bqm, variables), reps)
        trainer = self._local if optimize_on == "local" else self._device
        tasks = []

        def scores(points: np.ndarray) -> np.ndarray:
            """Vectorised objective: one batch for the columns of ``points`` (2 reps, S)."""
            tasks.append(points.shape[1])
            runs = self._run(trainer, circuit, [_inputs(p, reps) for p in points.T], shots, n)
            return np.array([_cvar(scaled.energies((X, variables)), c, alpha) for X, c in runs])

        gammas, betas = ramp_angles(reps)
        bounds = [(0.0, np.pi)] * reps + [(0.0, np.pi / 2)] * reps
        try:
            found = differential_evolution(
                scores,
                bounds,
                maxiter=maxiter,
                popsize=popsize,
                rng=seed,
                polish=False,
                vectorized=True,
                updating="deferred",
                x0=np.concatenate([gammas, betas]),
            )
        except RuntimeError as err:  # scipy wraps a ValueError of the objective in RuntimeError
            if isinstance(err.__cause__, BraketTaskError):
                raise err.__cause__ from None
            raise
        [(bits, counts)] = self._run(self._device, circuit, [_inputs(found.x, reps)], shots, n)
        info = {
            "device": self.properties["device"],
            "shots": shots,
            "reps": reps,
            "optimal_point": found.x.tolist(),
            "training_tasks": sum(tasks),
            "training_batches": len(tasks),
            "trained_on": "LocalSimulator" if trainer is self._local else self.properties["device"],
        }
        return shots_to_sampleset(bits, counts, variables, bqm, info)

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


def _inputs(point: np.ndarray, reps: int) -> dict[str, float]:
    names = [f"gamma_{i}" for i in range(reps)] + [f"beta_{i}" for i in range(reps)]
    return dict(zip(names, map(float, point)))


def _counts(result: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Measured bit strings as a ``(m, n)`` matrix in qubit order, with their counts."""
    qubits = [int(q) for q in result.measured_qubits]
    strings, counts = zip(*result.measurement_counts.items())
    measured = np.array([[int(b) for b in s] for s in strings], dtype=np.int8)
    bits = np.zeros((len(strings), n), dtype=np.int8)
    bits[:, qubits] = measured
    return bits, np.array(counts)


def _cvar(energies: np.ndarray, counts: np.ndarray, alpha: float) -> float:
    """Mean energy of the lowest ``alpha`` fraction of the shots."""
    order = np.argsort(energies)
    e, c = energies[order], counts[order].astype(float)
    keep = alpha * c.sum()
    taken = np.minimum(c, np.maximum(0.0, keep - (np.cumsum(c) - c)))
    return float(e @ taken / taken.sum())


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
