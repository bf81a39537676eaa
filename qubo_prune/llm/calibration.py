"""The hidden states entering a causal LM's first decoder layer, for every calibration window.

A pre-hook on decoder layer 0 stores its inputs (and the layer's other call arguments) and stops
the forward pass (:func:`~qubo_prune.pruners.calibration.block_inputs`); the returned
:class:`~qubo_prune.pruners.calibration.Stream` then runs one decoder layer at a time over every
window, without a cache.
"""

from __future__ import annotations

import torch
from torch import nn

from qubo_prune.llm.layers import decoder_layers
from qubo_prune.pruners.calibration import Stream, block_inputs

__all__ = ["first_inputs"]


def first_inputs(model: nn.Module, windows: torch.Tensor) -> Stream:
    """Inputs of decoder layer 0 for every window of token ids ``(windows, seqlen)``."""
    device = next(model.parameters()).device
    stream = block_inputs(
        decoder_layers(model)[0],
        (lambda ids=ids: model(ids[None, :].to(device), use_cache=False) for ids in windows),
    )
    stream.kwargs["use_cache"] = False
    for stale in ("past_key_values", "past_key_value", "layer_past"):
        stream.kwargs.pop(stale, None)
    return stream
