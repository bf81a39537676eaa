"""The constraint-preserving ansatz: Dicke states, the XY mixer, the whole circuit's support.

States are computed exactly from the circuits both SDKs run (qiskit's ``Statevector``, Braket's
local simulator with a state-vector result), so these check the gate lists and both emitters.
"""

from itertools import combinations
from math import comb

import numpy as np
import pytest

pytest.importorskip("qiskit")

from qiskit.quantum_info import Operator, Statevector  # noqa: E402
from scipy.linalg import expm  # noqa: E402

from qubo_prune.backends.qaoa.ansatz import (  # noqa: E402
    dicke_state,
    parameter_names,
    qaoa_gates,
    xy_mixer,
    xy_pairs,
)
from qubo_prune.backends.qaoa.qiskit_qaoa import to_circuit  # noqa: E402

X = np.array([[0, 1], [1, 0]])
Y = np.array([[0, -1j], [1j, 0]])


def state(gates, n: int, angles: dict | None = None) -> np.ndarray:
    """Amplitudes over basis states ``0..2^n-1`` (bit ``i`` of the index = qubit ``i``)."""
    circuit = to_circuit(gates, n).remove_final_measurements(inplace=False)
    if circuit.parameters:
        circuit = circuit.assign_parameters({p: angles[p.name] for p in circuit.parameters})
    return Statevector(circuit).data


def weights(n: int) -> np.ndarray:
    return np.array([bin(i).count("1") for i in range(2**n)])


@pytest.mark.parametrize("n", range(1, 7))
def test_dicke_state_is_every_k_subset_with_equal_amplitude(n):
    for k in range(n + 1):
        expected = np.where(weights(n) == k, 1 / np.sqrt(comb(n, k)), 0.0)
        np.testing.assert_allclose(state(dicke_state(range(n), k), n), expected, atol=1e-9)


def test_dicke_state_on_some_qubits_leaves_the_others_alone():
    amplitudes = state(dicke_state([1, 3, 4], 2), 5)
    support = {i for i in np.flatnonzero(np.abs(amplitudes) > 1e-9)}
    assert support == {sum(1 << q for q in pair) for pair in combinations([1, 3, 4], 2)}
    with pytest.raises(ValueError, match="0 <= k <= 3"):
        dicke_state([0, 1, 2], 4)


def test_braket_builds_the_same_dicke_state():
    pytest.importorskip("braket.circuits")
    from braket.circuits import ResultType
    from braket.devices import LocalSimulator

    from qubo_prune.backends.qaoa.braket_qaoa import to_circuit as braket_circuit

    circuit = braket_circuit(dicke_state(range(5), 2), 5)
    circuit.add_result_type(ResultType.StateVector())
    amplitudes = LocalSimulator().run(circuit, shots=0).result().values[0]
    # Braket orders amplitudes with qubit 0 as the most significant bit
    order = [int(format(i, "05b")[::-1], 2) for i in range(32)]
    expected = np.where(weights(5) == 2, 1 / np.sqrt(10), 0.0)
    np.testing.assert_allclose(np.asarray(amplitudes)[order], expected, atol=1e-9)


def test_xy_gate_is_the_exact_exponential_of_xx_plus_yy():
    beta = 0.37
    bound = to_circuit(xy_mixer([(0, 1)], "b"), 2).remove_final_measurements(inplace=False)
    matrix = Operator(bound.assign_parameters({bound.parameters[0]: beta})).data
    expected = expm(1j * beta * (np.kron(X, X) + np.kron(Y, Y)) / 2)
    np.testing.assert_allclose(matrix, expected, atol=1e-9)


@pytest.mark.parametrize("graph", ["ring", "complete"])
def test_xy_mixer_preserves_hamming_weight(graph):
    n = 5
    pairs = xy_pairs(range(n), graph)
    assert len(pairs) == (n if graph == "ring" else n * (n - 1) // 2)
    circuit = to_circuit(xy_mixer(pairs, "b"), n).remove_final_measurements(inplace=False)
    matrix = Operator(circuit.assign_parameters({circuit.parameters[0]: 0.9})).data
    w = weights(n)
    leaks = np.abs(matrix[w[:, None] != w[None, :]])
    assert leaks.max() < 1e-9
    assert np.abs(matrix[w[:, None] == w[None, :]]).max() > 0.1  # it does mix within a weight


def test_whole_xy_ansatz_keeps_each_group_at_its_k():
    """Two groups (an N:M block of 2:4 groups) and random costs: after three layers, all
    probability is on states with exactly k ones in each group."""
    rng = np.random.default_rng(0)
    n, groups = 8, [([0, 1, 2, 3], 2), ([4, 5, 6, 7], 1)]
    couplings = [(i, j, float(rng.normal())) for i in range(n) for j in range(i + 1, n)]
    gates = qaoa_gates(rng.normal(size=n), couplings, 3, groups, "ring")
    angles = dict(zip(parameter_names(3), rng.uniform(0, 1, size=6)))
    probability = np.abs(state(gates, n, angles)) ** 2
    index = np.arange(2**n)
    low = np.array([bin(i & 0b1111).count("1") for i in index])
    high = np.array([bin(i >> 4).count("1") for i in index])
    assert probability[(low == 2) & (high == 1)].sum() == pytest.approx(1.0, abs=1e-9)
    assert (probability[(low == 2) & (high == 1)] > 1e-6).sum() > 10  # spread, not one state


def test_x_ansatz_reaches_every_state():
    rng = np.random.default_rng(1)
    couplings = [(0, 1, 0.5), (1, 2, -0.3)]
    gates = qaoa_gates(rng.normal(size=3), couplings, 1)
    probability = np.abs(state(gates, 3, {"gamma_0": 0.4, "beta_0": 0.3})) ** 2
    assert (probability > 1e-6).all()
