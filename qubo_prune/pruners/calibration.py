"""Calibration through a model walked block by block: each block's inputs, each linear's Gram.

A :class:`Stream` holds the inputs entering the current block (decoder layer, encoder layer,
...) for every calibration batch and runs that block over them; :class:`GramHooks` accumulates
``G = U U^T`` of each linear's inputs on the way, on the inputs' device, where the pruning math
then runs. Only one block's activations are held at a time, on the device the blocks run on.
Nothing here knows what kind of model it walks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from qubo_prune.objectives.reconstruction import GramAccumulator

__all__ = ["GramHooks", "Stream"]


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
        """Detach the hooks (the Grams stay on their device)."""
        for h in self._handles:
            h.remove()


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

    def to(self, device: torch.device | str) -> Stream:
        """The same stream with every tensor (nested in tuples, lists, dicts) on ``device``."""
        return Stream(
            [h.to(device) for h in self.hidden],
            _to(self.args, device),
            _to(self.kwargs, device),
        )


def _to(value: Any, device: torch.device | str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value
