"""Checks made once at the edge, before any weight is touched, with messages that say what to do."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

import torch
from torch import nn

__all__ = ["check_choice", "check_finite_gradients", "close_matches", "resolve_tensors"]


def close_matches(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_choice(label: str, value: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise ValueError(
            f"unknown {label} {value!r}.{close_matches(value, choices)} "
            f"Choose one of: {', '.join(choices)}."
        )
    return value


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
