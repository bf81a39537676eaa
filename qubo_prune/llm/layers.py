"""Where a causal LM keeps its decoder layers and their prunable linear weights.

Llama, Mistral and Qwen keep them at ``model.layers``, GPT-2 at ``transformer.h``, OPT at
``model.decoder.layers``. GPT-2's ``Conv1D`` stores its weight as ``(in, out)``; the pruning
math reads every weight as ``(out, in)`` through :mod:`qubo_prune.objectives.rows`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from qubo_prune.objectives.rows import is_conv1d

__all__ = ["decoder_layers", "linear_layers"]


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


def linear_layers(layer: nn.Module) -> dict[str, nn.Module]:
    """Prunable linears of one decoder layer, in forward order of definition."""
    return {
        name: m
        for name, m in layer.named_modules()
        if name and (isinstance(m, nn.Linear) or is_conv1d(m))
    }
