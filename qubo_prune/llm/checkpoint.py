"""The sparse checkpoint of a causal LM: ``out/model`` (``save_pretrained``, tokenizer) and
``out/masks.safetensors`` (:mod:`qubo_prune.pruners.sparse_checkpoint`, which also keeps the
finished layers of an interrupted run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from qubo_prune.llm.model import load_causal_lm
from qubo_prune.pruners.sparse_checkpoint import MASKS, attach_masks, load_masks, save_masks

__all__ = ["attach_masks", "load_pruned", "save_pruned"]


def save_pruned(model: nn.Module, tokenizer: Any, out: str | Path) -> Path:
    """``out/model`` (save_pretrained, safetensors, tokenizer) and ``out/masks.safetensors``."""
    out = Path(out)
    model.save_pretrained(out / "model")
    if tokenizer is not None:
        tokenizer.save_pretrained(out / "model")
    save_masks(model.pruning_masks, out)
    return out


def load_pruned(out: str | Path) -> tuple[nn.Module, Any, dict]:
    """A saved sparse checkpoint with its masks; fails if a pruned weight is not zero."""
    out = Path(out)
    if not (out / MASKS).exists():
        raise FileNotFoundError(f"{out} is not a pruned checkpoint (no {MASKS})")
    model, tokenizer = load_causal_lm(out / "model")
    return model, tokenizer, load_masks(model, out)
