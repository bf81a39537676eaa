"""Top-1 accuracy of an image classifier on labelled images."""

from __future__ import annotations

import torch
from torch import nn

from qubo_prune.vision.images import Images
from qubo_prune.vision.model import logits

__all__ = ["top1"]


@torch.no_grad()
def top1(model: nn.Module, images: Images, batch_size: int = 500) -> float:
    """Share of images whose highest logit is their label, in percent."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start, pixels in zip(range(0, len(images), batch_size), images.batches(batch_size)):
        predicted = logits(model, pixels.to(device)).argmax(dim=-1).cpu()
        correct += int((predicted == images.labels[start : start + batch_size]).sum())
    return 100.0 * correct / len(images)
