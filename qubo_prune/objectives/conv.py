"""A ``Conv2d`` as a linear map on unfolded input patches, so both objectives can take it.

A convolution's output at one position is ``W_flat @ patch``: ``W_flat`` is the weight
``(out, in, kh, kw)`` flattened per output channel, ``patch`` the ``in * kh * kw`` inputs under
the kernel there (``torch.nn.functional.unfold`` with the conv's stride, padding and dilation).
So every output channel's filter is one row of a linear layer fed the patches: the layer
objective's Gram is the sum of patch outer products over every position of every image, and
the loss objective's per-sample gradient of a filter weight is the sum over positions of the
output gradient times the patch entry.

The layer objective orders a filter's weights channel-innermost, ``(kh, kw, in)``
(:func:`channels_last`), so N:M groups run along input channels at one kernel position, as
NVIDIA's 2:4 sparsity for convolutions does; the loss objective keeps the parameter's own order.
Grouped convolutions and padding modes other than zeros are not covered.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["channels_last", "conv_patches", "is_prunable_conv"]


def is_prunable_conv(module: nn.Module) -> bool:
    """A ``Conv2d`` that is one linear map on patches: ungrouped, zero padding."""
    return isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"


def conv_patches(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``(N, positions, in * kh * kw)``: the patch under the kernel at every output position,
    in the weight's own flattening order ``(in, kh, kw)``."""
    if not is_prunable_conv(conv):
        raise ValueError(
            f"{conv} is not an ungrouped, zero-padded Conv2d; its weight is not one linear map "
            "on patches"
        )
    padding = conv.padding
    if isinstance(padding, str):  # "valid" or "same" (stride 1): pad explicitly
        pads = []
        for k, d in zip(reversed(conv.kernel_size), reversed(conv.dilation)):
            total = d * (k - 1) if padding == "same" else 0
            pads += [total // 2, total - total // 2]
        x, padding = F.pad(x, pads), 0
    cols = F.unfold(
        x, conv.kernel_size, dilation=conv.dilation, padding=padding, stride=conv.stride
    )
    return cols.transpose(1, 2)


def channels_last(conv: nn.Conv2d) -> torch.Tensor:
    """Index ``p`` with ``flat[:, p]`` ordering a flattened filter ``(kh, kw, in)``."""
    c, kh, kw = conv.weight.shape[1:]
    return torch.arange(c * kh * kw).view(c, kh, kw).permute(1, 2, 0).reshape(-1)
