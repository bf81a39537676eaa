"""Gate errors of named devices, from their published calibrations, as simulator noise models.

Only numbers a vendor or its paper published are here, each with its source and date; a device
without published figures is not modelled rather than guessed. Errors are average gate
infidelities ``r`` from randomized benchmarking, applied as depolarizing channels after every
gate of that kind: a Pauli channel of total probability ``p`` has average infidelity
``p d / (d + 1)``, so ``p = 3r/2`` for one qubit (``d = 2``) and ``p = 5r/4`` for two
(``d = 4``). Where the device applies Z rotations as frame changes (trapped ions), ``rz`` is
noiseless. Readout errors are not modelled: the source gives no readout figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PUBLISHED", "GateErrors", "braket_noise_model"]


@dataclass(frozen=True)
class GateErrors:
    """Published average errors per one-qubit and two-qubit gate of ``device``."""

    device: str
    one_qubit: float
    two_qubit: float
    virtual_z: bool
    source: str
    date: str


PUBLISHED: dict[str, GateErrors] = {
    "ionq-forte": GateErrors(
        device="IonQ Forte (30-qubit chain)",
        one_qubit=2.0e-4,
        two_qubit=46.4e-4,
        virtual_z=True,
        source=(
            "J.-S. Chen et al., 'Benchmarking a trapped-ion quantum computer with 30 qubits', "
            "arXiv:2308.05071: direct randomized benchmarking, one-qubit error 2.0e-4, median "
            "two-qubit error 46.4e-4 over all 435 pairs"
        ),
        date="2023-08",
    ),
}


def braket_noise_model(name: str) -> Any:
    """A ``braket.circuits.noise_model.NoiseModel`` with the published errors of ``name``."""
    from braket.circuits import Gate, noises
    from braket.circuits.noise_model import GateCriteria, NoiseModel

    if name not in PUBLISHED:
        raise ValueError(f"no published calibration for {name!r}; known: {', '.join(PUBLISHED)}")
    errors = PUBLISHED[name]
    one_qubit = [Gate.X, Gate.H, Gate.Rx, Gate.Ry] + ([] if errors.virtual_z else [Gate.Rz])
    model = NoiseModel()
    model.add_noise(noises.Depolarizing(1.5 * errors.one_qubit), GateCriteria(gates=one_qubit))
    model.add_noise(noises.TwoQubitDepolarizing(1.25 * errors.two_qubit), GateCriteria(Gate.CNot))
    return model
