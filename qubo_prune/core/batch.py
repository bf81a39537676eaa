"""Many blocks of one size and one group layout as tensors: the layer-wise loop's unit of work.

Every row of a layer gets a block of the same size with the same cardinality groups, so the
blocks of many rows stack into one :class:`BlockBatch`: ``Q`` of shape ``(B, n, n)``, one
constant and one current mask per block, all on one device. Batched backends (gpu-anneal) take
it as it is; any other backend receives each block as a :class:`~qubo_prune.core.block.Block`
(its BQM built from it only then), so recorded blocks and ``compare`` see the same problems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from qubo_prune.core.block import Block

__all__ = ["BlockBatch"]


@dataclass
class BlockBatch:
    """``B`` blocks ``E_b(x) = x^T Q_b x + constant_b`` over ``n`` variables each.

    ``groups`` / ``k`` (block positions, count pruned) are shared by every block; ``current``
    (B, n) is each block's mask before the step (True = pruned, feasible); ``coords`` (B, n)
    are the blocks' weights as flat indices of tensor ``tensor``. ``Q`` must be exactly
    symmetric (checked; :class:`~qubo_prune.core.block.Block` symmetrises, which then changes
    nothing, so both give the same energies to the bit).
    """

    Q: torch.Tensor
    constant: torch.Tensor
    current: torch.Tensor
    groups: tuple[np.ndarray, ...]
    k: tuple[int, ...]
    coords: torch.Tensor
    tensor: str = ""

    def __post_init__(self) -> None:
        if self.Q.ndim != 3 or self.Q.shape[1] != self.Q.shape[2]:
            raise ValueError(f"Q must have shape (B, n, n), got {tuple(self.Q.shape)}")
        if not bool(torch.isfinite(self.Q.sum()) and torch.isfinite(self.constant).all()):
            raise ValueError("the block objective contains NaN or inf (check the Gram matrix)")
        if not torch.equal(self.Q, self.Q.mT):
            raise ValueError("Q must be symmetric")
        self.current = self.current.to(torch.bool)
        self.groups = tuple(np.asarray(g, dtype=np.int64) for g in self.groups)
        self.k = tuple(int(v) for v in self.k)
        if len(self.groups) != len(self.k):
            raise ValueError("one cardinality k is needed per group")
        if not bool(self.is_feasible(self.current[:, None, :]).all()):
            raise ValueError("the current mask of a block must satisfy its cardinality constraints")

    def __len__(self) -> int:
        return self.Q.shape[0]

    @property
    def n(self) -> int:
        return self.Q.shape[1]

    @property
    def device(self) -> torch.device:
        return self.Q.device

    def energy(self, X: torch.Tensor) -> torch.Tensor:
        """``(B, m)`` energies of states ``X`` (B, m, n), in ``Q``'s precision."""
        Xf = X.to(self.Q.dtype)
        return torch.einsum("bmi,bmi->bm", Xf @ self.Q, Xf) + self.constant[:, None]

    def is_feasible(self, X: torch.Tensor) -> torch.Tensor:
        """``(B, m)``: whether each state keeps every group's count."""
        ok = torch.ones(X.shape[:2], dtype=torch.bool, device=X.device)
        for g, k in zip(self.groups, self.k):
            ok &= X[:, :, torch.as_tensor(g, device=X.device)].sum(dim=2) == k
        return ok

    def cardinality(self) -> list[tuple[list[int], int]]:
        """The shared constraints in the form native-cardinality samplers take."""
        return [(g.tolist(), k) for g, k in zip(self.groups, self.k)]

    def block(self, b: int) -> Block:
        """Block ``b`` as a :class:`Block` (CPU, float64): the contract every backend sees."""
        return Block(
            Q=self.Q[b].detach().to("cpu", torch.float64).numpy(),
            constant=float(self.constant[b]),
            current=self.current[b].to("cpu").numpy().astype(np.int8),
            groups=self.groups,
            k=self.k,
            tensor=self.tensor,
            coords=self.coords[b].to("cpu").numpy(),
        )

    def blocks(self) -> list[Block]:
        """Every block as a :class:`Block` (for per-block backends), built only when asked."""
        return [self.block(b) for b in range(len(self))]
