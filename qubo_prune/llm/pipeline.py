"""Prune every linear layer inside a causal LM's decoder layers, one decoder layer at a time.

The walk itself (Grams per decoder layer, the per-layer method, pruned outputs feeding the next
layer, errors on dense inputs, resume, one layer at a time on the device) is
:func:`qubo_prune.pruners.walk.prune_blocks`; this module says what it walks: the decoder layers,
from the hidden states entering the first one. Embeddings and ``lm_head`` stay dense.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from qubo_prune.llm.calibration import first_inputs
from qubo_prune.llm.layers import decoder_layers, linear_layers
from qubo_prune.pruners.methods import LayerwiseConfig
from qubo_prune.pruners.walk import LayerReport, Walk, module_prefix, prune_blocks

__all__ = ["LayerReport", "prune_causal_lm"]


@torch.no_grad()
def prune_causal_lm(
    model: nn.Module,
    calibration: torch.Tensor,
    config: LayerwiseConfig,
    out: str | Path | None = None,
    dense_errors: bool = True,
    progress: bool = True,
    on_layer_done: Callable[[int], None] | None = None,
    device: torch.device | str | None = None,
) -> list[LayerReport]:
    """Prune ``model`` in place; returns one report per linear. ``out`` enables resume.

    ``calibration``: ``(windows, seqlen)`` token ids. ``device``: where each decoder layer is
    pruned (default: where the model is). Masks end up in ``model.pruning_masks`` (parameter
    name -> bool on the CPU, True = pruned), in each parameter's own layout.
    """
    model.eval()
    layers = decoder_layers(model)
    walk = Walk(
        layers,
        module_prefix(model, layers),
        lambda i, layer: linear_layers(layer),
        "decoder layers",
    )
    reports, model.pruning_masks = prune_blocks(
        walk,
        first_inputs(model, calibration),
        config,
        out,
        dense_errors,
        progress,
        on_layer_done,
        device,
    )
    return reports
