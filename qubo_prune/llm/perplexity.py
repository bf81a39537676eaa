"""Perplexity: ``exp`` of the mean next-token negative log-likelihood over every window."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["perplexity"]


@torch.no_grad()
def perplexity(model: torch.nn.Module, windows: torch.Tensor, progress: bool = False) -> float:
    """Each window is scored on its own (no context across windows), every token weighted equally."""
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for ids in tqdm(windows, desc="perplexity", disable=not progress, leave=False):
        ids = ids.to(device)
        logits = model(ids[None, :], use_cache=False).logits[0, :-1].float()
        total += F.cross_entropy(logits, ids[1:], reduction="sum").item()
        count += ids.numel() - 1
    return math.exp(total / count)
