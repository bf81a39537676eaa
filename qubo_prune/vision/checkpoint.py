"""The sparse checkpoint of an image classifier: ``out/model`` (``save_pretrained``, with the
image processor it was given) and ``out/masks.safetensors``
(:mod:`qubo_prune.pruners.sparse_checkpoint`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from qubo_prune.pruners.sparse_checkpoint import MASKS, load_masks, save_masks
from qubo_prune.vision.model import load_image_classifier

__all__ = ["load_pruned_classifier", "save_pruned_classifier"]

PROCESSOR = "preprocessor_config.json"


def save_pruned_classifier(
    model: nn.Module, out: str | Path, source: str | Path | None = None
) -> Path:
    """``out/model`` (save_pretrained; the image processor of the ``source`` folder, if it has
    one) and ``out/masks.safetensors``."""
    out = Path(out)
    model.save_pretrained(out / "model")
    if source is not None and (Path(source) / PROCESSOR).exists():
        shutil.copy(Path(source) / PROCESSOR, out / "model" / PROCESSOR)
    save_masks(model.pruning_masks, out)
    return out


def load_pruned_classifier(out: str | Path) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A saved sparse classifier with its masks; fails if a pruned weight is not zero."""
    out = Path(out)
    if not (out / MASKS).exists():
        raise FileNotFoundError(f"{out} is not a pruned checkpoint (no {MASKS})")
    model = load_image_classifier(out / "model")
    return model, load_masks(model, out)
