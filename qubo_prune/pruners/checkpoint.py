"""Checkpoints of the model-loss loop: written atomically after every step, resumed only by the
run that wrote them.

A checkpoint holds tensors, numbers and strings only and is read with
``torch.load(weights_only=True)``, so a file planted in an output folder cannot run code. It
carries the fingerprint of its run (every setting, the pruned model's dense weights and the
data): a run with anything different refuses to resume from it and says what differs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_checkpoint", "run_fingerprint", "save_checkpoint"]


def run_fingerprint(settings: Mapping[str, Any], tensors: Iterable[torch.Tensor]) -> str:
    """A hash of the settings and of the tensors' contents (dense weights, data)."""
    digest = hashlib.blake2b(json.dumps(settings, sort_keys=True, default=str).encode())
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(
    path: Path, fingerprint: str, settings: Mapping[str, Any], state: dict[str, Any]
) -> None:
    """Write ``state`` with its run's fingerprint and settings; a crash mid-write leaves the
    previous file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    settings_text = json.dumps(settings, sort_keys=True, default=str)
    torch.save({"fingerprint": fingerprint, "settings": settings_text, **state}, tmp)
    tmp.replace(path)


def load_checkpoint(
    path: Path | None, fingerprint: str, settings: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The saved state, ``None`` when there is none; refuses a file that is not a checkpoint
    or one written by another run (naming the settings that differ)."""
    if path is None or not path.exists():
        return None
    try:
        saved = torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"{path} is not a qubo-prune checkpoint (or holds code, which is never run): "
            f"{first}; remove it or choose another checkpoint path"
        ) from None
    if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint {path} was written by another run: {_differences(saved, settings)}; "
            "remove it or choose another checkpoint path"
        )
    return saved


def _differences(saved: Any, settings: Mapping[str, Any]) -> str:
    """What differs between a checkpoint's run and this one, in words."""
    try:
        before = json.loads(saved["settings"])
    except (TypeError, KeyError, ValueError):
        return "its settings are unknown"
    now = json.loads(json.dumps(settings, sort_keys=True, default=str))
    changed = [
        f"{k} {before.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(before) | set(now))
        if before.get(k) != now.get(k)
    ]
    return "settings differ (" + ", ".join(changed) + ")" if changed else "the model or data differ"
