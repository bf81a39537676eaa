"""Calibration capture: the hidden states entering each decoder layer, and each linear's Gram.

A pre-hook on decoder layer 0 stores its inputs for every window and stops the forward pass
(:func:`first_inputs`); a :class:`Stream` then runs one decoder layer over every window, with
:class:`GramHooks` accumulating ``G = U U^T`` of each linear's inputs on the way. Only one
layer's activations are held at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from qubo_prune.llm.layers import decoder_layers
from qubo_prune.objectives.reconstruction import GramAccumulator

__all__ = ["GramHooks", "Stream", "first_inputs"]


class GramHooks:
    """Forward pre-hooks accumulating each linear's input Gram; linears fed the same tensor
    (q/k/v, gate/up) share one accumulator, so each product is computed once."""

    def __init__(self, modules: dict[str, nn.Module]):
        self.grams: dict[str, GramAccumulator] = {}
        self._window: list[tuple[torch.Tensor, GramAccumulator]] = []
        self._handles = [m.register_forward_pre_hook(self._hook(n)) for n, m in modules.items()]

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]
            for seen, acc in self._window:
                if seen is x:
                    self.grams.setdefault(name, acc)
                    if self.grams[name] is acc:
                        return
            acc = self.grams.setdefault(name, GramAccumulator(x.shape[-1], x.device))
            acc.add(x)
            self._window.append((x, acc))

        return hook

    def next_window(self) -> None:
        self._window = []

    def remove(self) -> None:
        """Detach the hooks and bring the Grams to the CPU, where the pruning math runs."""
        for h in self._handles:
            h.remove()
        for acc in self.grams.values():
            acc.G = acc.G.cpu()


class _StopForward(Exception):
    pass


@dataclass
class Stream:
    """Hidden states entering the current decoder layer, one per window, plus the layer's
    other call arguments (attention mask, position embeddings, ...), shared by all windows."""

    hidden: list[torch.Tensor]
    args: tuple
    kwargs: dict[str, Any]

    def run(self, layer: nn.Module, hooks: GramHooks | None = None) -> list[torch.Tensor]:
        outs = []
        for h in self.hidden:
            if hooks:
                hooks.next_window()
            out = layer(h, *self.args, **self.kwargs)
            outs.append(out[0] if isinstance(out, tuple) else out)
        return outs

    def copy(self) -> Stream:
        return Stream(list(self.hidden), self.args, self.kwargs)


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
