"""Which weights the next block holds.

A block takes the most doubtful weights of one tensor: the highest-scoring pruned ones and the
lowest-scoring kept ones (or random ones), skipping weights fixed as always pruned / always
kept and, for one step, a random fraction of that tensor's previous block (the tabu list).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SELECTIONS", "TENSOR_CHOICES", "BlockSelector"]

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
