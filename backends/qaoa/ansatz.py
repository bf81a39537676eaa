"""The QAOA circuit as one backend-neutral gate list, written once for qiskit and Braket.

Two ansätze share the cost layer ``exp(-i gamma H_C)`` of the Ising form
``H_C = sum h_i Z_i + sum J_ij Z_i Z_j``:

- ``mixer="xy"``, the quantum alternating operator ansatz (Hadfield et al., arXiv:1709.03489)
  for cardinality groups: each group starts in the Dicke state of its ``k`` (every state with
  exactly ``k`` ones, equal amplitudes; Bärtschi and Eidenbenz, arXiv:1904.07358) and mixes
  with ``exp(-i beta (X_i X_j + Y_i Y_j) / 2)`` on the pairs of a ring or of the complete graph
  of the group. Each such gate keeps the Hamming weight of its pair, so every state the
  circuit reaches has exactly ``k`` ones per group: without noise every shot is feasible.
  Qubits in no group start in ``|+>`` and mix with ``X``.
- ``mixer="x"``: every qubit starts in ``|+>`` and mixes with ``exp(i beta X)`` (standard
  QAOA; a cardinality must then be in ``H_C`` as a penalty).

Mixers turn by ``+beta``: each initial state is the ground state of ``-H_M`` (``|+>`` of
``-sum X``, a Dicke state of ``-sum (XX + YY) / 2``), so with positive ``gamma`` and ``beta``
the layers follow a discretised anneal from it to the ground state of ``H_C``; the other sign
pair is the same landscape mirrored, and angle bounds need only the positive quadrant.

Gates are only ``x``, ``h``, ``rx``, ``ry``, ``rz`` and ``cx``, which every SDK and device
takes (controlled rotations are decomposed here), so a noise model with one-qubit and
two-qubit gate errors applies to every gate. An angle is ``angle * value(param)``, or the
constant ``angle`` when ``param`` is ``None``; parameters are ``gamma_l`` and ``beta_l``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MIXER",
    "Gate",
    "MIXERS",
    "XY_GRAPHS",
    "cost_layer",
    "dicke_state",
    "keeps_cardinality",
    "parameter_names",
    "qaoa_gates",
    "xy_mixer",
    "xy_pairs",
]

XY_GRAPHS = ("ring", "complete")
MIXERS = ("xy", "x")
DEFAULT_MIXER = "xy"


def keeps_cardinality(options: Mapping[str, Any]) -> bool:
    """Whether a QAOA backend with these options keeps the cardinality itself (the XY ansatz,
    given the bare objective and the groups) or needs the penalised BQM (``mixer="x"``)."""
    return options.get("mixer", DEFAULT_MIXER) != "x"


@dataclass(frozen=True)
class Gate:
    """One gate: ``name`` on ``qubits`` (control first) at angle ``angle * value(param)``."""

    name: str
    qubits: tuple[int, ...]
    angle: float = 0.0
    param: str | None = None


def parameter_names(reps: int) -> list[str]:
    """The circuit's parameters in the order of an angle vector: gammas, then betas."""
    return [f"gamma_{i}" for i in range(reps)] + [f"beta_{i}" for i in range(reps)]


def _cry(theta: float, control: int, target: int) -> list[Gate]:
    """Controlled ``RY(theta)`` with two CNOTs (``X RY(a) X = RY(-a)``)."""
    return [
        Gate("ry", (target,), theta / 2),
        Gate("cx", (control, target)),
        Gate("ry", (target,), -theta / 2),
        Gate("cx", (control, target)),
    ]


def _ccry(theta: float, c1: int, c2: int, target: int) -> list[Gate]:
    """Doubly controlled ``RY(theta)`` with four CNOTs: the rotations cancel unless both
    controls are 1, when the four quarter turns add up."""
    q = theta / 4
    return [
        Gate("ry", (target,), q),
        Gate("cx", (c2, target)),
        Gate("ry", (target,), -q),
        Gate("cx", (c1, target)),
        Gate("ry", (target,), q),
        Gate("cx", (c2, target)),
        Gate("ry", (target,), -q),
        Gate("cx", (c1, target)),
    ]


def _split_and_shift(q: Sequence[int], n: int, k: int) -> list[Gate]:
    """Bärtschi and Eidenbenz's ``SCS_{n,k}`` on ``q[0..n-1]`` (it acts on the last ``k+1``):
    moves amplitude ``sqrt(l/n)`` of each ``|0 1^l>`` tail onto ``|1 0 1^(l-1)>``-like states so
    that, applied for ``n, n-1, ...``, the Dicke state is built from ``|0^(n-k) 1^k>``."""
    last = q[n - 1]
    gates = [Gate("cx", (q[n - 2], last))]
    gates += _cry(2 * np.arccos(np.sqrt(1 / n)), last, q[n - 2])
    gates.append(Gate("cx", (q[n - 2], last)))
    for l in range(2, k + 1):
        gates.append(Gate("cx", (q[n - 1 - l], last)))
        gates += _ccry(2 * np.arccos(np.sqrt(l / n)), last, q[n - l], q[n - 1 - l])
        gates.append(Gate("cx", (q[n - 1 - l], last)))
    return gates


def dicke_state(qubits: Sequence[int], k: int) -> list[Gate]:
    """Gates taking ``|0...0>`` on ``qubits`` to their Dicke state of weight ``k``: every
    ``k``-subset with amplitude ``1/sqrt(C(n, k))``. ``O(n k)`` CNOTs, no ancillas."""
    q = list(qubits)
    n = len(q)
    if not 0 <= k <= n:
        raise ValueError(f"a Dicke state of {n} qubits needs 0 <= k <= {n}, got {k}")
    gates = [Gate("x", (i,)) for i in q[n - k :]]
    if k in (0, n):
        return gates
    for m in range(n, k, -1):
        gates += _split_and_shift(q, m, k)
    for m in range(k, 1, -1):
        gates += _split_and_shift(q, m, m - 1)
    return gates


def xy_pairs(qubits: Sequence[int], graph: str) -> list[tuple[int, int]]:
    """The pairs the XY mixer couples: a ring (even pairs, odd pairs, then the closing one, the
    "parity" order) or every pair of the group."""
    q = list(qubits)
    if graph not in XY_GRAPHS:
        raise ValueError(f"xy_graph must be one of {', '.join(XY_GRAPHS)}, got {graph!r}")
    if len(q) < 2:
        return []
    if graph == "complete" or len(q) <= 3:
        return list(combinations(q, 2))
    ring = [(q[i], q[i + 1]) for i in range(0, len(q) - 1, 2)]
    ring += [(q[i], q[i + 1]) for i in range(1, len(q) - 1, 2)]
    return ring + [(q[-1], q[0])]


def xy_mixer(pairs: Sequence[tuple[int, int]], param: str) -> list[Gate]:
    """``exp(i beta (XX + YY) / 2)`` on each pair with two CNOTs: ``RX(pi/2)`` on both qubits
    turns ``YY`` into ``ZZ``, a CNOT then turns ``XX + ZZ`` into ``X_a + Z_b``."""
    gates = []
    for a, b in pairs:
        basis = [Gate("rx", (a,), np.pi / 2), Gate("rx", (b,), np.pi / 2), Gate("cx", (a, b))]
        turn = [Gate("rx", (a,), -1.0, param), Gate("rz", (b,), -1.0, param)]
        undo = [Gate("cx", (a, b)), Gate("rx", (a,), -np.pi / 2), Gate("rx", (b,), -np.pi / 2)]
        gates += basis + turn + undo
    return gates


def cost_layer(
    h: np.ndarray, couplings: Sequence[tuple[int, int, float]], param: str
) -> list[Gate]:
    """``exp(-i gamma H_C)``: ``RZ(2 h gamma)`` per qubit, ``CX RZ(2 J gamma) CX`` per coupling."""
    gates = [Gate("rz", (int(i),), 2 * float(h[i]), param) for i in np.flatnonzero(h)]
    for i, j, J in couplings:
        gates += [Gate("cx", (i, j)), Gate("rz", (j,), 2 * J, param), Gate("cx", (i, j))]
    return gates


def qaoa_gates(
    h: np.ndarray,
    couplings: Sequence[tuple[int, int, float]],
    reps: int,
    groups: Sequence[tuple[Sequence[int], int]] = (),
    xy_graph: str = "ring",
) -> list[Gate]:
    """The whole ansatz on ``len(h)`` qubits: Dicke states and XY mixers on ``groups``
    (``[(qubits, k), ...]``, disjoint), ``|+>`` and X mixers elsewhere; ``reps`` layers."""
    n = len(h)
    grouped = [int(q) for g, _ in groups for q in g]
    if len(set(grouped)) != len(grouped):
        raise ValueError("cardinality groups must be disjoint")
    free = sorted(set(range(n)) - set(grouped))
    prepare = [Gate("h", (q,)) for q in free]
    for g, k in groups:
        prepare += dicke_state([int(q) for q in g], int(k))
    pairs = [p for g, _ in groups for p in xy_pairs([int(q) for q in g], xy_graph)]
    gates = prepare
    for layer in range(reps):
        gamma, beta = f"gamma_{layer}", f"beta_{layer}"
        gates = gates + cost_layer(h, couplings, gamma)
        gates += xy_mixer(pairs, beta)
        gates += [Gate("rx", (q,), -2.0, beta) for q in free]
    return gates
