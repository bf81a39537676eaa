"""From a solver's answer to a mask swap that never makes the block worse.

Backends are not trusted: energies are recomputed in the objective's units, infeasible samples
are repaired greedily toward the cardinalities (and counted), and the best candidate is
accepted only if it beats the block's current mask, which is always feasible. :func:`decide`
takes one block's sample set; :func:`decide_batch` takes the states of a whole
:class:`~qubo_prune.core.batch.BlockBatch` as a tensor and makes the same decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import dimod
import numpy as np
import torch

from qubo_prune.core.batch import BlockBatch
from qubo_prune.core.block import Block

__all__ = ["BatchDecision", "Decision", "decide", "decide_batch", "repair"]


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


@dataclass(frozen=True)
class BatchDecision:
    """The decisions of a :class:`BlockBatch`, one entry per block, as tensors on its device."""

    x: torch.Tensor
    energy: torch.Tensor
    current_energy: torch.Tensor
    accepted: torch.Tensor
    repaired: torch.Tensor

    @property
    def improvement(self) -> torch.Tensor:
        """Objective decrease of each block (0 where rejected)."""
        return torch.where(self.accepted, self.current_energy - self.energy, 0.0)

    def swap(self, batch: BlockBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat coordinates ``(to_prune, to_restore)`` of every accepted block, equally many."""
        moved = self.accepted[:, None]
        to_prune = self.x & ~batch.current & moved
        to_restore = ~self.x & batch.current & moved
        return batch.coords[to_prune], batch.coords[to_restore]

    @classmethod
    def stack(cls, decisions: Sequence[Decision], device: torch.device) -> BatchDecision:
        """Per-block decisions (from per-block backends) as one batch decision."""

        def t(values: list, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.array(values), dtype=dtype, device=device)

        return cls(
            x=t([d.x for d in decisions], torch.bool),
            energy=t([d.energy for d in decisions], torch.float64),
            current_energy=t([d.current_energy for d in decisions], torch.float64),
            accepted=t([d.accepted for d in decisions], torch.bool),
            repaired=t([d.repaired for d in decisions], torch.bool),
        )


def decide_batch(batch: BlockBatch, X: torch.Tensor) -> BatchDecision:
    """:func:`decide` for every block of ``batch`` at once; ``X`` (B, m, n): its states.

    Energies are recomputed from ``batch.Q`` (float64 in the layer-wise loop). A block none of
    whose states is feasible goes through :func:`decide` itself (its greedy repair), so the
    decisions are :func:`decide`'s whatever a backend returns.
    """
    current_energy = batch.energy(batch.current[:, None, :])[:, 0]
    x, energy = batch.current.clone(), current_energy.clone()
    repaired = torch.zeros(len(batch), dtype=torch.bool, device=batch.device)
    if X.shape[1]:
        X = X.to(torch.bool)
        feasible = batch.is_feasible(X)
        E = torch.where(feasible, batch.energy(X), torch.inf)
        best = torch.argmin(E, dim=1)  # the first of equal minima, as numpy's argmin
        rows = torch.arange(len(batch), device=batch.device)
        some = feasible.any(dim=1)
        x = torch.where(some[:, None], X[rows, best], x)
        energy = torch.where(some, E[rows, best], energy)
        for b in torch.nonzero(~some).flatten().tolist():
            block = batch.block(b)
            samples = X[b].to("cpu", torch.int8).numpy()
            answer = dimod.SampleSet.from_samples(samples, dimod.BINARY, np.zeros(len(samples)))
            d = decide(block, answer)
            x[b] = torch.as_tensor(d.x.astype(bool), device=batch.device)
            energy[b] = d.candidate_energy
            repaired[b] = d.repaired
    accepted = (energy < current_energy) & (x != batch.current).any(dim=1)
    return BatchDecision(
        x=torch.where(accepted[:, None], x, batch.current),
        energy=torch.where(accepted, energy, current_energy),
        current_energy=current_energy,
        accepted=accepted,
        repaired=repaired,
    )
