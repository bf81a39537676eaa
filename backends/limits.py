"""Block-size limits of the hardware backends, known before any SDK is imported or job is sent.

The registry's ``Backend.check_size`` refuses a too-large block with these numbers; each
sampler re-checks against the device it actually got (qubit count, working graph) before
submitting, since only the device knows its exact size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_SIMULATED_QUBITS",
    "QPU_CLIQUE_BOUND",
    "braket_limit",
    "qaoa_qiskit_limit",
]

# A statevector of 2**20 amplitudes simulates in well under a second per circuit; beyond, every
# optimiser step of QAOA costs seconds to minutes on a laptop.
MAX_SIMULATED_QUBITS = 20

# Largest clique that embeds in an ideal Advantage2 (Zephyr Z12) graph, which beats the
# Advantage (Pegasus P16) one, 180. A real working graph misses qubits and is checked per QPU.
QPU_CLIQUE_BOUND = 184


def qaoa_qiskit_limit(options: Mapping[str, Any]) -> int | None:
    """Simulator size unless an IBM backend is named (then the backend's qubit count decides)."""
    return None if options.get("ibm_backend") else MAX_SIMULATED_QUBITS


def braket_limit(options: Mapping[str, Any]) -> int | None:
    """Simulator size unless a device ARN is named (then the device's qubit count decides)."""
    return None if options.get("device_arn") else MAX_SIMULATED_QUBITS
