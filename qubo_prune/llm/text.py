"""Calibration and evaluation windows of token ids, by the protocol of docs/anchors.md.

A text source is one file or a folder of ``*.txt`` files (the Python docs' ``*.rst.txt``), read
as UTF-8 in sorted filename order, joined with a blank line and tokenised as ONE stream without
special tokens, so windows match the reference runs token for token.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

__all__ = [
    "PYTHON_DOCS",
    "calibration_windows",
    "evaluation_windows",
    "read_text",
    "token_stream",
]

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
SEQLEN = 512


def read_text(source: str | Path) -> str:
    """The text of a file, or of a folder's ``*.txt`` files in sorted order joined by a blank line."""
    path = Path(source)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if not path.is_dir():
        hint = " (Debian package python3.11-doc)" if PYTHON_DOCS in path.parents else ""
        raise FileNotFoundError(f"text source {str(path)!r} does not exist{hint}")
    files = sorted(p for p in path.glob("*.txt") if p.is_file())
    if not files:
        raise FileNotFoundError(f"folder {str(path)!r} holds no *.txt files")
    return "\n\n".join(p.read_text(encoding="utf-8") for p in files)


def token_stream(tokenizer, source: str | Path) -> torch.Tensor:
    """The source tokenised as one stream (1-D long tensor), no special tokens added."""
    ids = tokenizer(read_text(source), add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def calibration_windows(stream: torch.Tensor, count: int, seqlen: int = SEQLEN, seed: int = 0):
    """``count`` windows at ``random.Random(seed).randint(0, len - seqlen - 1)``, drawn in order."""
    if count < 1:
        raise ValueError(f"need at least one calibration window, got {count}")
    if len(stream) <= seqlen + 1:
        raise ValueError(f"calibration text has {len(stream)} tokens, fewer than one window")
    rng = random.Random(seed)
    starts = [rng.randint(0, len(stream) - seqlen - 1) for _ in range(count)]
    return torch.stack([stream[i : i + seqlen] for i in starts])


def evaluation_windows(stream: torch.Tensor, count: int, seqlen: int = SEQLEN) -> torch.Tensor:
    """The first ``count`` non-overlapping windows (fewer if the text is shorter)."""
    available = len(stream) // seqlen
    if available < 1:
        raise ValueError(f"evaluation text has {len(stream)} tokens, fewer than one window")
    count = min(count, available)
    return stream[: count * seqlen].reshape(count, seqlen)
