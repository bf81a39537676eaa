"""Calibration through a model walked block by block: each block's inputs, each layer's Gram.

:func:`block_inputs` catches what enters the first block (decoder layer, encoder layer, a CNN's
first module) for every calibration batch; a :class:`Stream` holds the inputs entering the
current block and runs that block over them; :class:`GramHooks` accumulates ``G = U U^T`` of
each prunable layer's inputs on the way (a conv's unfolded patches), on the inputs' device,
where the pruning math then runs. Only one block's activations are held at a time, on the
device the blocks run on. Nothing here knows what kind of model it walks.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from qubo_prune.objectives.reconstruction import GramAccumulator
from qubo_prune.objectives.rows import LinearRows, layer_rows

__all__ = ["GramHooks", "Stream", "block_inputs"]


class GramHooks:
    """Forward pre-hooks accumulating each prunable layer's input Gram (a conv's over its
    patches, :mod:`qubo_prune.objectives.rows`); layers fed the same tensor the same way
    (q/k/v, gate/up) share one accumulator, so each product is computed once. Windows whose
    index is in ``held_out`` also go to each accumulator's held-out Gram
    (:mod:`qubo_prune.objectives.regularisation`)."""

    def __init__(self, modules: dict[str, nn.Module], held_out: frozenset[int] = frozenset()):
        self.grams: dict[str, GramAccumulator] = {}
        self.held_out = held_out
        self._index = 0
        self._window: list[tuple[torch.Tensor, Hashable, GramAccumulator]] = []
        self._handles = [
            m.register_forward_pre_hook(self._hook(n, layer_rows(m))) for n, m in modules.items()
        ]

    def _hook(self, name: str, rows: LinearRows) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]
            for seen, key, acc in self._window:
                if seen is x and key == rows.input_key:
                    self.grams.setdefault(name, acc)
                    if self.grams[name] is acc:
                        return
            U = rows.inputs(x)
            acc = self.grams.setdefault(
                name, GramAccumulator(U.shape[-1], x.device, held_out=bool(self.held_out))
            )
            acc.add(U, held_out=self._index in self.held_out)
            self._window.append((x, rows.input_key, acc))

        return hook

    def next_window(self, index: int = 0) -> None:
        """The inputs that follow are window ``index``'s."""
        self._window = []
        self._index = index

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
        for i, h in enumerate(self.hidden):
            if hooks:
                hooks.next_window(i)
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


class _StopForward(Exception):
    pass


@torch.no_grad()
def block_inputs(first: nn.Module, batches: Iterable[Callable[[], Any]]) -> Stream:
    """The inputs of block ``first`` for every batch (each item runs the model on one batch): a
    pre-hook stores them (and the block's other call arguments) and stops the forward pass."""
    caught: dict[str, Any] = {}

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        caught["args"], caught["kwargs"] = args, kwargs
        raise _StopForward

    handle = first.register_forward_pre_hook(hook, with_kwargs=True)
    hidden = []
    try:
        for run in batches:
            caught.clear()
            try:
                run()
            except _StopForward:
                pass
            if "args" not in caught:
                raise ValueError("the model's forward pass never reached its first block")
            args, kwargs = caught["args"], caught["kwargs"]
            hidden.append(args[0] if args else kwargs.pop("hidden_states"))
    finally:
        handle.remove()
    kwargs = {k: v for k, v in caught["kwargs"].items() if k != "hidden_states"}
    return Stream(hidden, tuple(caught["args"][1:]), kwargs)
