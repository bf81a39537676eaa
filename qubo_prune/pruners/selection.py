"""Which weights the next block holds.

A block takes the most doubtful weights: the highest-scoring pruned ones and the lowest-scoring
kept ones (or random ones). In the model-loss loop (:class:`BlockSelector`) a block comes from
one tensor, skipping weights fixed as always pruned / always kept and, for one step, a random
fraction of that tensor's previous block (the tabu list). In the layer-wise loop
(:func:`select_row_blocks`) every row of a layer gets one block, or whole N:M groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from qubo_prune.core.patterns import Pattern

__all__ = ["SELECTIONS", "TENSOR_CHOICES", "BlockSelector", "select_row_blocks"]

SELECTIONS = ("magnitude", "gradient", "wanda", "random")
TENSOR_CHOICES = ("cycle", "random", "proportional")


class BlockSelector:
    """Chooses ``(tensor, flat indices)`` for each step; holds the fixed sets and tabu lists."""

    def __init__(
        self,
        block_size: int,
        pruned_fraction: float = 0.5,
        tabu_fraction: float = 0.0,
        fixed_prune: float = 0.0,
        fixed_keep: float = 0.0,
        tensor_choice: str = "cycle",
        rng: np.random.Generator | None = None,
    ):
        if block_size < 2:
            raise ValueError(f"block_size must be at least 2, got {block_size}")
        for label, v in [
            ("tabu_fraction", tabu_fraction),
            ("fixed_prune", fixed_prune),
            ("fixed_keep", fixed_keep),
        ]:
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{label} must lie in [0, 1), got {v}")
        if not 0.0 < pruned_fraction < 1.0:
            raise ValueError(f"pruned_fraction must lie in (0, 1), got {pruned_fraction}")
        if tensor_choice not in TENSOR_CHOICES:
            raise ValueError(f"unknown tensor_choice {tensor_choice!r}; choose {TENSOR_CHOICES}")
        self.block_size = int(block_size)
        self.pruned_fraction = pruned_fraction
        self.tabu_fraction = tabu_fraction
        self.fixed_prune = fixed_prune
        self.fixed_keep = fixed_keep
        self.tensor_choice = tensor_choice
        self.rng = rng or np.random.default_rng(0)
        self.fixed: dict[str, np.ndarray] = {}
        self.tabu: dict[str, np.ndarray] = {}
        self._turn = 0

    def fix(self, pruned: dict[str, torch.Tensor], scores: dict[str, torch.Tensor]) -> None:
        """Fix the lowest-scoring pruned and highest-scoring kept weights of each tensor."""
        for name, mask in pruned.items():
            p = mask.reshape(-1).numpy()
            s = scores[name].reshape(-1).double().numpy()
            fixed = np.zeros(p.size, dtype=bool)
            pruned_idx = np.flatnonzero(p)
            kept_idx = np.flatnonzero(~p)
            n_fp = int(self.fixed_prune * pruned_idx.size)
            n_fk = int(self.fixed_keep * kept_idx.size)
            fixed[pruned_idx[np.argsort(s[pruned_idx], kind="stable")[:n_fp]]] = True
            fixed[kept_idx[np.argsort(-s[kept_idx], kind="stable")[:n_fk]]] = True
            self.fixed[name] = fixed
            self.tabu[name] = np.zeros(p.size, dtype=bool)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to draw the same blocks: fixed sets, tabu, turns, rng."""
        return {
            "fixed": {k: torch.from_numpy(v) for k, v in self.fixed.items()},
            "tabu": {k: torch.from_numpy(v) for k, v in self.tabu.items()},
            "turn": self._turn,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fixed = {k: v.numpy() for k, v in state["fixed"].items()}
        self.tabu = {k: v.numpy() for k, v in state["tabu"].items()}
        self._turn = int(state["turn"])
        self.rng.bit_generator.state = state["rng"]

    def choose_tensor(self, pruned: dict[str, torch.Tensor]) -> str:
        names = list(pruned)
        if self.tensor_choice == "cycle":
            name = names[self._turn % len(names)]
            self._turn += 1
            return name
        if self.tensor_choice == "random":
            return names[int(self.rng.integers(len(names)))]
        sizes = np.array([pruned[n].numel() for n in names], dtype=np.float64)
        return names[int(self.rng.choice(len(names), p=sizes / sizes.sum()))]

    def select(self, name: str, pruned: torch.Tensor, scores: torch.Tensor | None) -> np.ndarray:
        """Flat indices of the block; ``scores=None`` selects at random."""
        p = pruned.reshape(-1).numpy()
        free = ~(self.fixed.get(name, np.zeros(p.size, bool)) | self.tabu.get(name, False))
        pruned_free = np.flatnonzero(free & p)
        kept_free = np.flatnonzero(free & ~p)
        n = min(self.block_size, pruned_free.size + kept_free.size)
        k = min(int(round(self.pruned_fraction * n)), pruned_free.size)
        k = max(k, n - kept_free.size)
        if scores is None:
            chosen_p = self.rng.choice(pruned_free, size=k, replace=False)
            chosen_k = self.rng.choice(kept_free, size=n - k, replace=False)
        else:
            s = scores.reshape(-1).double().numpy()
            chosen_p = pruned_free[np.argsort(-s[pruned_free], kind="stable")[:k]]
            chosen_k = kept_free[np.argsort(s[kept_free], kind="stable")[: n - k]]
        coords = np.sort(np.concatenate([chosen_p, chosen_k]).astype(np.int64))
        tabu = np.zeros(p.size, dtype=bool)
        n_tabu = int(self.tabu_fraction * coords.size)
        if n_tabu:
            tabu[self.rng.choice(coords, size=n_tabu, replace=False)] = True
        self.tabu[name] = tabu
        return coords


def select_row_blocks(
    scores: torch.Tensor,
    mask: torch.Tensor,
    pattern: Pattern,
    block_size: int,
    generator: torch.Generator,
    explore: bool,
) -> tuple[torch.Tensor, tuple[np.ndarray, ...], tuple[int, ...]]:
    """Per row the most doubtful weights: highest-scoring pruned and lowest-scoring kept.

    Returns ``(idx (rows, b), groups, k)``: column indices per row (on the scores' device)
    plus the cardinality groups (block positions) shared by every row's block; ``k`` is the
    number pruned in each group. ``explore`` draws the block at random (``generator``, on the
    scores' device) among twice as many doubtful candidates, so later iterations do not keep
    asking the same question.
    """
    rows, cols = scores.shape
    s = scores.to(torch.float64)
    inf = torch.tensor(torch.inf, dtype=torch.float64, device=s.device)
    if pattern.kind == "nm":
        m = pattern.m
        gs, gp = s.view(rows, cols // m, m), mask.view(rows, cols // m, m)
        doubt = torch.where(gp, gs, -inf).amax(dim=2) - torch.where(gp, inf, gs).amin(dim=2)
        chosen = _most(doubt, max(1, min(block_size // m, cols // m)), generator, explore)
        idx = (chosen[:, :, None] * m + torch.arange(m, device=s.device)).reshape(rows, -1)
        n_groups = chosen.shape[1]
        groups = tuple(np.arange(j * m, (j + 1) * m) for j in range(n_groups))
        return idx, groups, (pattern.pruned_per_group,) * n_groups
    pruned_per_row = mask.sum(dim=1)
    n_pruned = int(pruned_per_row.min())
    n_kept = int((cols - pruned_per_row).min())
    k = min(block_size // 2, n_pruned)
    rest = min(block_size - k, n_kept)
    pruned_idx = _most(torch.where(mask, s, -inf), k, generator, explore)  # highest pruned
    kept_idx = _most(torch.where(mask, -inf, -s), rest, generator, explore)  # lowest kept
    idx = torch.sort(torch.cat([pruned_idx, kept_idx], dim=1), dim=1).values
    return idx, (np.arange(idx.shape[1]),), (k,)


def _most(key: torch.Tensor, count: int, generator: torch.Generator, explore: bool) -> torch.Tensor:
    """Column indices of the ``count`` largest keys per row (random among the top ``2 count``).

    ``-inf`` marks columns that are not candidates; every row has at least ``count`` others, but
    a row (per-layer patterns) may have fewer than ``2 count``, so the draw takes those first.
    """
    if count <= 0:
        return torch.zeros((key.shape[0], 0), dtype=torch.long, device=key.device)
    pool = min(2 * count if explore else count, key.shape[1])
    top = torch.topk(key, pool, dim=1).indices
    if pool > count:
        noise = torch.rand(top.shape, generator=generator, device=key.device, dtype=key.dtype)
        priority = noise + torch.isneginf(key.gather(1, top)).to(key.dtype)
        pick = torch.argsort(priority, dim=1)[:, :count]
        top = top.gather(1, pick)
    return top
