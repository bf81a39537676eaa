"""Where a causal LM keeps its decoder layers and their prunable linear weights.

Llama, Mistral and Qwen keep them at ``model.layers``, GPT-2 at ``transformer.h``, OPT at
``model.decoder.layers``. GPT-2's ``Conv1D`` stores its weight as ``(in, out)``; every weight is
handed to the pruning math as ``(out, in)`` through :func:`weight_matrix`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["decoder_layers", "is_conv1d", "layer_prefix", "linear_layers", "weight_matrix"]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of Llama/Mistral/Qwen (``model.layers``), GPT-2 (``transformer.h``), OPT."""
    for path in ("model.layers", "transformer.h", "model.decoder.layers"):
        obj: Any = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(
        f"{type(model).__name__} is not a supported causal LM: no model.layers, transformer.h "
        "or model.decoder.layers"
    )


def is_conv1d(module: nn.Module) -> bool:
    """GPT-2's ``Conv1D``: a linear layer whose weight is stored ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def linear_layers(layer: nn.Module) -> dict[str, nn.Module]:
    """Prunable linears of one decoder layer, in forward order of definition."""
    return {
        name: m
        for name, m in layer.named_modules()
        if name and (isinstance(m, nn.Linear) or is_conv1d(m))
    }


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The weight as ``(out, in)`` (a view; GPT-2's Conv1D stores it transposed)."""
    return module.weight.T if is_conv1d(module) else module.weight


def layer_prefix(model: nn.Module, layers: nn.ModuleList) -> str:
    """Parameter-name prefix of the decoder layers, e.g. ``model.layers.``."""
    for name, module in model.named_modules():
        if module is layers:
            return f"{name}."
    raise ValueError("decoder layers are not a submodule of the model")
