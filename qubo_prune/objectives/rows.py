"""A prunable layer as the layer objective sees it: weight rows ``(out, in)``, inputs ``(tokens, in)``.

``nn.Linear`` as it is; GPT-2's ``Conv1D`` (a linear layer whose weight is stored ``(in, out)``);
``Conv2d`` through its unfolded patches (:mod:`qubo_prune.objectives.conv`), each filter one row.
A layer walk reads a weight with ``matrix``, writes the pruned one back with ``write``, stores
the mask in the parameter's own layout with ``param_mask`` and feeds ``inputs`` to the Gram.
"""

from __future__ import annotations

from collections.abc import Hashable

import torch
from torch import nn

from qubo_prune.objectives.conv import channels_last, conv_patches, is_prunable_conv

__all__ = ["Conv1DRows", "Conv2dRows", "LinearRows", "is_conv1d", "is_prunable", "layer_rows"]


def is_conv1d(module: nn.Module) -> bool:
    """GPT-2's ``Conv1D``: a linear layer whose weight is stored ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def is_prunable(module: nn.Module) -> bool:
    """A layer the layer objective can take: Linear, GPT-2 Conv1D or an ungrouped Conv2d."""
    return isinstance(module, nn.Linear) or is_conv1d(module) or is_prunable_conv(module)


class LinearRows:
    """``nn.Linear``: the weight is already ``(out, in)``, inputs are ``(..., in)``."""

    input_key: Hashable = None  # layers fed the same tensor under the same key share one Gram

    def __init__(self, module: nn.Module):
        self.module = module

    def _rows(self, weight: torch.Tensor) -> torch.Tensor:
        return weight

    def _param(self, rows: torch.Tensor) -> torch.Tensor:
        return rows

    @property
    def shape(self) -> tuple[int, int]:
        """``(out, in)``, read without a copy (also on the meta device)."""
        rows, cols = self._rows(self.module.weight.detach()).shape
        return int(rows), int(cols)

    def matrix(self) -> torch.Tensor:
        """A contiguous copy of the weight as ``(out, in)``, on the weight's device."""
        W = self._rows(self.module.weight.detach())
        return W.clone(memory_format=torch.contiguous_format)

    def write(self, W: torch.Tensor) -> None:
        weight = self.module.weight
        with torch.no_grad():
            weight.copy_(self._param(W.to(weight.device, weight.dtype)))

    def param_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """A ``(out, in)`` mask in the parameter's own layout."""
        return self._param(mask).contiguous()

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, x.shape[-1])


class Conv1DRows(LinearRows):
    """GPT-2's ``Conv1D``: the weight is stored transposed."""

    def _rows(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.T

    def _param(self, rows: torch.Tensor) -> torch.Tensor:
        return rows.T


class Conv2dRows(LinearRows):
    """``Conv2d``: one row per filter, ordered ``(kh, kw, in)``; inputs are its patches."""

    def __init__(self, module: nn.Conv2d):
        super().__init__(module)
        self.order = channels_last(module)
        self.input_key = (
            "conv",
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
        )

    def _rows(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.reshape(weight.shape[0], -1)[:, self.order.to(weight.device)]

    def _param(self, rows: torch.Tensor) -> torch.Tensor:
        flat = torch.empty_like(rows)
        flat[:, self.order.to(rows.device)] = rows
        return flat.view(self.module.weight.shape)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        patches = conv_patches(self.module, x)
        return patches[..., self.order.to(x.device)].reshape(-1, patches.shape[-1])


def layer_rows(module: nn.Module) -> LinearRows:
    """The rows view of a prunable layer."""
    if is_conv1d(module):
        return Conv1DRows(module)
    if isinstance(module, nn.Conv2d):
        if not is_prunable_conv(module):
            raise ValueError(f"{module}: grouped or non-zero-padded convolutions are not supported")
        return Conv2dRows(module)
    if isinstance(module, nn.Linear):
        return LinearRows(module)
    raise ValueError(f"{type(module).__name__} is not a prunable layer (Linear, Conv1D, Conv2d)")
