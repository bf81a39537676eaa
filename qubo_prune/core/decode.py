"""From a solver's sample set to a mask swap that never makes the block worse.

Backends are not trusted: energies are recomputed in the objective's units, infeasible samples
are repaired greedily toward the cardinalities (and counted), and the best candidate is
accepted only if it beats the block's current mask, which is always feasible.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import dimod
import numpy as np

from qubo_prune.core.block import Block

__all__ = ["Decision", "decide", "repair"]


@dataclass(frozen=True)
class Decision:
    """What one step does to its block: the chosen state and the swap it implies.

    ``candidate_energy`` is the solver's best (feasible or repaired) answer, kept even when it is
    rejected, so solvers can be compared on what they returned.
    """

    x: np.ndarray
    energy: float
    current_energy: float
    candidate_energy: float
    accepted: bool
    repaired: bool
    feasible_fraction: float

    @property
    def improvement(self) -> float:
        """Objective decrease of the step (0 when rejected), in the objective's units."""
        return self.current_energy - self.energy if self.accepted else 0.0

    def rejected(self, block: Block) -> Decision:
        """The same answer, not applied: the block keeps its current mask."""
        return replace(self, x=block.current.copy(), accepted=False, energy=self.current_energy)

    def swap(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """Block positions ``(to_prune, to_restore)``; equally many, empty when rejected."""
        if not self.accepted:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        to_prune = np.flatnonzero((self.x == 1) & (block.current == 0))
        to_restore = np.flatnonzero((self.x == 0) & (block.current == 1))
        return to_prune, to_restore


def repair(block: Block, x: np.ndarray) -> np.ndarray:
    """Flip bits toward each group's ``k``, each time the one that raises ``E`` the least."""
    x = np.asarray(x, dtype=np.int8).copy()
    h = block.Q @ x  # local fields (Q x)_i
    diag = np.diag(block.Q)
    for g, k in zip(block.groups, block.k):
        while True:
            excess = int(x[g].sum()) - k
            if excess == 0:
                break
            value = 1 if excess > 0 else 0  # flip a one off, or a zero on
            cand = g[x[g] == value]
            s = 1.0 - 2.0 * value  # +1 turns a bit on, -1 turns it off
            delta = s * (2.0 * h[cand] + s * diag[cand])
            i = cand[int(np.argmin(delta))]
            x[i] = 1 - value
            h += s * block.Q[:, i]
    return x


def sample_matrix(sampleset: dimod.SampleSet, n: int) -> np.ndarray:
    """Samples as a ``(m, n)`` 0/1 matrix in variable order ``0..n-1``."""
    if sampleset.vartype is dimod.SPIN:
        sampleset = sampleset.change_vartype(dimod.BINARY, inplace=False)
    labels = list(sampleset.variables)
    if sorted(labels) != list(range(n)):
        raise ValueError(f"the sample set's variables must be 0..{n - 1}, got {labels[:5]}...")
    order = [labels.index(i) for i in range(n)]
    return np.asarray(sampleset.record.sample[:, order], dtype=np.int8)


def decide(block: Block, sampleset: dimod.SampleSet, max_repairs: int = 32) -> Decision:
    """The best of the feasible samples and of the best few infeasible ones repaired, accepted
    only if it improves on the current mask.

    Repair runs whether or not feasible samples exist: a sample one flip off the constraint is
    often better, once repaired, than every feasible one (a small penalty lets an annealer move
    across the constraint), so a penalty-based solver is judged by its best usable answer.
    """
    current_energy = block.energy(block.current)
    X = sample_matrix(sampleset, block.n) if len(sampleset) else np.zeros((0, block.n), np.int8)
    feasible = block.is_feasible(X) if len(X) else np.zeros(0, dtype=bool)
    infeasible = np.unique(X[~feasible], axis=0) if len(X) else X
    lowest = np.argsort(block.energy(infeasible))[:max_repairs] if len(infeasible) else []
    repairs = [repair(block, infeasible[i]) for i in lowest]
    candidates = np.concatenate(
        [X[feasible], np.array(repairs, dtype=np.int8).reshape(-1, block.n)]
    )
    if not len(candidates):
        candidates = block.current[None, :]
    energies = block.energy(candidates)
    best = int(np.argmin(energies))
    x, energy = candidates[best], float(energies[best])
    candidate_energy = energy
    accepted = energy < current_energy and not np.array_equal(x, block.current)
    if not accepted:
        x, energy = block.current.copy(), current_energy
    return Decision(
        x=x,
        energy=energy,
        current_energy=current_energy,
        candidate_energy=candidate_energy,
        accepted=bool(accepted),
        repaired=bool(best >= int(feasible.sum()) and len(repairs) > 0),
        feasible_fraction=float(feasible.mean()) if len(feasible) else 0.0,
    )
