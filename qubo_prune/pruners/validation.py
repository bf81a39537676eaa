"""Checks of the model and data given to the model-loss pruner, made before any weight moves."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from qubo_prune.core.choices import close_matches

__all__ = ["check_finite_gradients", "resolve_tensors"]


def resolve_tensors(model: nn.Module, tensors: Iterable[str] | None) -> list[str]:
    """The parameter names to prune: as given (each checked), or every ``nn.Linear`` weight."""
    params = dict(model.named_parameters())
    if tensors is None:
        names = [f"{m}.weight" for m, mod in model.named_modules() if isinstance(mod, nn.Linear)]
        if not names:
            raise ValueError("the model has no nn.Linear layer; name the tensors to prune")
        return names
    names = list(tensors)
    if not names:
        raise ValueError("no tensor to prune was given")
    for name in names:
        if name not in params:
            raise ValueError(
                f"unknown layer/tensor {name!r}.{close_matches(name, params)} "
                f"The model's parameters are: {', '.join(list(params)[:12])}"
                + ("..." if len(params) > 12 else "")
            )
    return names


def check_finite_gradients(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    names: list[str],
) -> None:
    """Refuse a model whose loss or gradients are NaN/inf before pruning starts."""
    params = dict(model.named_parameters())
    loss = loss_fn(model(X), y)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss is {loss.item()} on the data; nothing was pruned")
    grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
    for name, g in zip(names, grads):
        if g is not None and not torch.isfinite(g).all():
            raise FloatingPointError(
                f"the gradient of {name!r} contains NaN or inf; nothing was pruned"
            )
