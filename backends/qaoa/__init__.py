"""QAOA backends: qiskit (Aer, IBM hardware) and Amazon Braket, sharing ``common``."""
