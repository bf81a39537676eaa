"""One step of block coordinate descent, shared by every loop: solve blocks, decide, swap.

Both the model-loss loop and the layer-wise loop hand a list of blocks to anything that solves
them (a :class:`qubo_prune.backends.registry.Backend`, or no solver at all for a dry run), and
get back one :class:`Move` per block: the decoder's never-worse decision and the swap it
implies in the tensor's own flat coordinates, ready for :func:`qubo_prune.core.masks.apply_swap`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import dimod
import numpy as np

from qubo_prune.core.block import Block
from qubo_prune.core.decode import Decision, decide

__all__ = ["BlockSolver", "Move", "no_answer", "step"]


class BlockSolver(Protocol):
    """What a step needs of a solver: one sample set per block, in order."""

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
