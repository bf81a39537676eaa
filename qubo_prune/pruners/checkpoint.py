"""Checkpoints of the model-loss loop: written atomically after every step, resumed by fingerprint.

A checkpoint belongs to one configuration: its fingerprint (a hash of the frozen config) is
stored beside the state, and a run with other settings refuses to resume from it rather than
continue someone else's masks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(path: Path, fingerprint: str, state: dict[str, Any]) -> None:
    """Write ``state`` with its fingerprint; a crash mid-write leaves the previous file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"fingerprint": fingerprint, **state}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path | None, fingerprint: str) -> dict[str, Any] | None:
    """The saved state, ``None`` when there is none; refuses one written by other settings."""
    if path is None or not path.exists():
        return None
    saved = torch.load(path, weights_only=False)
    if saved.get("fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint {path} was written by a run with other settings; "
            "remove it or choose another checkpoint path"
        )
    return saved
