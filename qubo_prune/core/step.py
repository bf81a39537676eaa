"""One step of block coordinate descent, shared by every loop: solve blocks, decide, swap.

Both the model-loss loop and the layer-wise loop hand blocks to anything that solves them (a
:class:`qubo_prune.backends.registry.Backend`, or no solver at all for a dry run), and get back
the decoder's never-worse decisions and the swaps they imply in the tensor's own flat
coordinates, ready for :func:`qubo_prune.core.masks.apply_swap`. :func:`step` takes a list of
blocks and returns one :class:`Move` per block; :func:`step_batch` takes a
:class:`~qubo_prune.core.batch.BlockBatch`, which a solver that takes tensors
(``takes_tensors``) anneals as it is and any other receives block by block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import dimod
import numpy as np
import torch

from qubo_prune.core.batch import BlockBatch
from qubo_prune.core.block import Block
from qubo_prune.core.decode import BatchDecision, Decision, decide, decide_batch

__all__ = ["BlockSolver", "Move", "no_answer", "step", "step_batch"]


class BlockSolver(Protocol):
    """What a step needs of a solver: one sample set per block, in order.

    A solver may also take a whole :class:`BlockBatch` as tensors: then ``takes_tensors`` is
    true and ``solve_batch(batch)`` returns its states ``(B, m, n)`` on the batch's device.
    """

    def solve_many(self, blocks: Sequence[Block]) -> list[dimod.SampleSet]: ...


def no_answer() -> dimod.SampleSet:
    """An empty sample set: the block keeps its current mask (dry runs, failed solves)."""
    return dimod.SampleSet.from_samples([], dimod.BINARY, [])


@dataclass(frozen=True)
class Move:
    """A decided block and its swap, in the flat coordinates of the block's tensor."""

    block: Block
    decision: Decision

    @property
    def to_prune(self) -> np.ndarray:
        return self.block.coords[self.decision.swap(self.block)[0]]

    @property
    def to_restore(self) -> np.ndarray:
        return self.block.coords[self.decision.swap(self.block)[1]]


def step(blocks: Sequence[Block], solver: BlockSolver | None) -> list[Move]:
    """Solve ``blocks`` (none are sent when ``solver`` is ``None``) and decide each one."""
    blocks = list(blocks)
    samplesets = solver.solve_many(blocks) if solver is not None else [no_answer()] * len(blocks)
    return [Move(b, decide(b, s)) for b, s in zip(blocks, samplesets)]


def step_batch(batch: BlockBatch, solver: BlockSolver | None) -> BatchDecision:
    """Solve and decide a batch: as tensors when the solver takes them, else block by block.

    Both ways give the decisions :func:`decide` gives each block.
    """
    if solver is None:
        empty = torch.zeros((len(batch), 0, batch.n), dtype=torch.bool, device=batch.device)
        return decide_batch(batch, empty)
    if getattr(solver, "takes_tensors", False):
        return decide_batch(batch, solver.solve_batch(batch))
    moves = step(batch.blocks(), solver)
    return BatchDecision.stack([m.decision for m in moves], batch.device)
