"""The hidden states entering a causal LM's first decoder layer, for every calibration window.

A pre-hook on decoder layer 0 stores its inputs (and the layer's other call arguments) and stops
the forward pass; the returned :class:`~qubo_prune.pruners.calibration.Stream` then runs one
decoder layer at a time over every window.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from qubo_prune.llm.layers import decoder_layers
from qubo_prune.pruners.calibration import Stream

__all__ = ["first_inputs"]


class _StopForward(Exception):
    pass


@torch.no_grad()
def first_inputs(model: nn.Module, windows: torch.Tensor) -> Stream:
    """Inputs of decoder layer 0 for every window: a pre-hook stores them and stops the forward."""
    first = decoder_layers(model)[0]
    device = next(model.parameters()).device
    caught: dict[str, Any] = {}

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        caught["args"], caught["kwargs"] = args, kwargs
        raise _StopForward

    handle = first.register_forward_pre_hook(hook, with_kwargs=True)
    hidden = []
    try:
        for ids in windows:
            try:
                model(ids[None, :].to(device), use_cache=False)
            except _StopForward:
                pass
            hidden.append(
                caught["args"][0] if caught["args"] else caught["kwargs"].pop("hidden_states")
            )
    finally:
        handle.remove()
    kwargs = {k: v for k, v in caught["kwargs"].items() if k != "hidden_states"}
    kwargs["use_cache"] = False
    for stale in ("past_key_values", "past_key_value", "layer_past"):
        kwargs.pop(stale, None)
    return Stream(hidden, tuple(caught["args"][1:]), kwargs)
