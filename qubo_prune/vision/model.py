"""Image classifiers from local Hugging Face folders (DeiT, ViT), never from a hub.

A folder is a ``save_pretrained`` directory: ``config.json``, safetensors weights and optionally
``preprocessor_config.json``. Loading runs with ``HF_HUB_OFFLINE=1``. The config alone is read
first (:func:`read_config`), so bad input (no folder, an unsupported model, a pattern that does
not fit the layers) is refused before any weight loads. Any ``nn.Module`` that maps images to
logits (a CNN) works with the rest of :mod:`qubo_prune.vision` too; :func:`logits` reads both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "MODEL_TYPES",
    "Logits",
    "encoder_input_widths",
    "load_image_classifier",
    "logits",
    "read_config",
]

MODEL_TYPES = ("deit", "vit")


def read_config(path: str | Path) -> Any:
    """The folder's config (no weights), checked to be a DeiT or ViT image classifier."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be fetched at run time
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"model {str(path)!r} is not a local folder with a config.json "
            "(a save_pretrained directory)"
        )
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    if config.model_type not in MODEL_TYPES:
        raise ValueError(
            f"{path} holds a {config.model_type!r} model; prune-vision takes "
            f"{' or '.join(MODEL_TYPES)} image classifiers"
        )
    return config


def encoder_input_widths(config: Any) -> dict[str, int]:
    """Input width of each kind of encoder linear: what an N:M pattern must divide."""
    return {
        "attention and fc1 (hidden size)": int(config.hidden_size),
        "fc2 (intermediate size)": int(config.intermediate_size),
    }


def load_image_classifier(path: str | Path) -> nn.Module:
    """A DeiT / ViT image classifier in fp32 eval mode from a local folder."""
    read_config(path)
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(Path(path), dtype=torch.float32)
    return model.eval()


def logits(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Class scores of a Hugging Face classifier (``.logits``) or of a plain module."""
    out = model(pixels)
    return out.logits if hasattr(out, "logits") else out


class Logits(nn.Module):
    """A classifier whose forward returns its logits (what the model-loss pruner calls)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return logits(self.model, pixels)
