"""Checks of the model and data given to the model-loss pruner, made before any weight moves."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import torch
from torch import nn

from qubo_prune.core.block import block_bytes
from qubo_prune.core.choices import close_matches

__all__ = [
    "check_block_memory",
    "check_finite_gradients",
    "check_finite_weights",
    "resolve_tensors",
]


def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_block_memory(n: int, at_once: int = 1, what: str = "--block-size") -> None:
    """Refuse blocks whose ``n x n`` matrices (``at_once`` of them together) would not fit in
    half of this machine's memory, before anything is allocated."""
    need, have = block_bytes(n) * at_once, _physical_memory() // 2
    if need > have:
        raise ValueError(
            f"{at_once} block(s) of {n} weights need about {need / 2**30:.1f} GiB (each holds "
            f"{n} x {n} matrices) but half of this machine's memory is {have / 2**30:.1f} GiB; "
            f"use a smaller {what}"
        )


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


def check_finite_weights(model: nn.Module, names: Iterable[str] | None = None) -> None:
    """Refuse NaN/inf in the model's parameters (those named, or all), naming the first."""
    params = dict(model.named_parameters())
    for name in names if names is not None else params:
        if not bool(torch.isfinite(params[name]).all()):
            raise FloatingPointError(
                f"parameter {name!r} holds NaN or inf values; nothing was pruned"
            )


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
