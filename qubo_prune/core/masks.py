"""Masks beside the weights: the pruning state of a model, applied as exact mask swaps.

``pruned[name]`` is a bool tensor (True = pruned, ``p`` of the math note) next to a copy of the
dense weights, so restoring a weight gives its original value back. ``attach_torch_prune``
hands the same masks to ``torch.nn.utils.prune`` (which keeps 1 = kept). :func:`apply_swap` is
the one function that applies a swap, for the model-loss loop and the layer-wise loop alike.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

__all__ = ["MaskState", "apply_swap"]


def apply_swap(
    mask: torch.Tensor,
    weights: torch.Tensor,
    values: torch.Tensor,
    to_prune: np.ndarray,
    to_restore: np.ndarray,
) -> None:
    """Prune ``to_prune`` and restore ``to_restore`` in place (flat indices, equally many).

    ``mask``, ``weights`` and ``values`` are flat views: the mask flips, a pruned weight becomes
    0 and a restored one takes its entry of ``values`` (the dense weight, or a refit value).
    """
    if len(to_prune) != len(to_restore):
        raise ValueError("a mask swap must prune and restore equally many weights")
    p = torch.as_tensor(to_prune, dtype=torch.long, device=mask.device)
    r = torch.as_tensor(to_restore, dtype=torch.long, device=mask.device)
    if mask[p].any() or not mask[r].all():
        raise ValueError("a swap must prune kept weights and restore pruned ones")
    mask[p] = True
    mask[r] = False
    with torch.no_grad():
        weights[p] = 0.0
        weights[r] = values[r]


class MaskState:
    """Dense weights, masks and the model's live parameters, kept consistent."""

    def __init__(self, model: nn.Module, names: Iterable[str]):
        params = dict(model.named_parameters())
        self.names = list(names)
        self.params = {n: params[n] for n in self.names}
        self.dense = {n: p.detach().clone() for n, p in self.params.items()}
        self.pruned = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in self.params.items()}

    def set_mask(self, name: str, pruned: torch.Tensor) -> None:
        """Install a whole mask for ``name`` and write the masked weights into the model."""
        self.pruned[name] = pruned.to(torch.bool).clone(memory_format=torch.contiguous_format)
        with torch.no_grad():
            self.params[name].copy_(self.dense[name] * ~self.pruned[name])

    def apply_swap(self, name: str, to_prune: np.ndarray, to_restore: np.ndarray) -> None:
        """Prune ``to_prune`` and restore ``to_restore`` (flat indices, equally many)."""
        with torch.no_grad():
            apply_swap(
                self.pruned[name].view(-1),
                self.params[name].view(-1),
                self.dense[name].view(-1),
                to_prune,
                to_restore,
            )

    def density(self, name: str) -> float:
        m = self.pruned[name]
        return 1.0 - m.sum().item() / m.numel()

    def restore_dense(self) -> None:
        """Put every dense weight back (used when a run fails, so no model is left half-done)."""
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(self.dense[n])

    def keep_masks(self) -> dict[str, torch.Tensor]:
        """Masks in torch.nn.utils.prune's convention (1 = kept), as float tensors."""
        return {n: (~m).to(self.dense[n].dtype) for n, m in self.pruned.items()}

    def attach_torch_prune(self, model: nn.Module) -> None:
        """Register each mask as a ``torch.nn.utils.prune`` custom mask on its module."""
        from torch.nn.utils import prune

        modules = dict(model.named_modules())
        for name, keep in self.keep_masks().items():
            module_name, _, attr = name.rpartition(".")
            module = modules[module_name]
            with torch.no_grad():
                getattr(module, attr).copy_(self.dense[name])
            prune.custom_from_mask(module, attr, keep)
