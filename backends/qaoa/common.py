"""What the QAOA backends (``qaoa-qiskit``, ``braket``) share.

Both solve the penalised BQM of a block (the cardinality composite's provable penalty, or
``penalty`` / ``penalty_scale``), so their shots may be infeasible and the decoder repairs them.
The registry wraps both in a normalising composite, so the BQM they receive has a largest bias
of 1 and one set of angle bounds and one initial schedule suit every block; energies in the
returned sample set are those of the BQM the sampler was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dimod
import numpy as np

from qubo_prune.backends.errors import BackendError

__all__ = ["QAOASampler", "check_qubits", "ramp_angles", "shots_to_sampleset", "z_ising"]


def z_ising(bqm: dimod.BinaryQuadraticModel, variables: list) -> tuple[np.ndarray, list]:
    """Cost Hamiltonian ``sum h_i Z_i + sum J_ij Z_i Z_j`` over qubits ``0..n-1``.

    Qubit ``i`` carries ``variables[i]`` and measures 1 when the variable is 1. dimod's spin is
    ``s = 2x - 1`` while ``Z|1> = -|1>``, so ``s = -Z``: linear terms flip sign, couplings do not.
    """
    h, J, _ = bqm.spin.to_ising()
    index = {v: i for i, v in enumerate(variables)}
    hz = np.zeros(len(variables))
    for v, b in h.items():
        hz[index[v]] = -b
    couplings = [(index[u], index[v], float(b)) for (u, v), b in J.items() if b]
    return hz, couplings


def ramp_angles(reps: int, step: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Linear-ramp ``(gammas, betas)``: a discretised anneal, a good start for normalised problems."""
    t = (np.arange(reps) + 0.5) / reps
    return t * step, (1.0 - t) * step


def check_qubits(n: int, limit: int | None, where: str) -> None:
    """Refuse a block larger than the device before anything is submitted."""
    if limit is not None and n > limit:
        raise BackendError(f"a block of {n} variables needs {n} qubits; {where} has {limit}")


def shots_to_sampleset(
    bits: np.ndarray,
    counts: np.ndarray,
    variables: list,
    bqm: dimod.BinaryQuadraticModel,
    info: Mapping[str, Any] | None = None,
) -> dimod.SampleSet:
    """Distinct measured states ``(m, n)`` (1 = variable is 1) with their counts, as a SampleSet
    in ``bqm``'s vartype with ``bqm``'s energies, lowest energy first."""
    X = np.asarray(bits, dtype=np.int8)
    if bqm.vartype is dimod.SPIN:
        X = 2 * X - 1
    return dimod.SampleSet.from_samples_bqm(
        (X, variables), bqm, num_occurrences=np.asarray(counts, dtype=int), info=dict(info or {})
    ).truncate(len(X))


class QAOASampler(dimod.Sampler):
    """What both QAOA samplers share: the device they run on and how many qubits it has."""

    def _set_device(self, device: str, max_qubits: int) -> None:
        self._properties = {"device": device, "max_qubits": max_qubits}

    @property
    def properties(self) -> dict[str, Any]:
        return self._properties
