"""Calibration and evaluation windows of token ids, by the protocol of docs/anchors.md.

A text source is one file or a folder of ``*.txt`` files (the Python docs' ``*.rst.txt``), read
as UTF-8 in sorted filename order, joined with a blank line and tokenised as ONE stream without
special tokens, so windows match the reference runs token for token. Calibration may mix
sources: the windows are shared out among them, each source's drawn as if it were alone.
The default out-of-domain text is prose, not code documentation: the songs and poems of
Debian's ``fortunes`` package.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

__all__ = [
    "FORTUNES",
    "PYTHON_DOCS",
    "calibration_windows",
    "evaluation_windows",
    "mixed_calibration_windows",
    "read_text",
    "source_hint",
    "token_stream",
]

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
FORTUNES = Path("/usr/share/games/fortunes")
SEQLEN = 512
_PACKAGES = {PYTHON_DOCS: "python3.11-doc", FORTUNES: "fortunes"}


def source_hint(source: str | Path) -> str:
    """`` (Debian package NAME)`` for a missing default text, else nothing."""
    path = Path(source)
    return next(
        (f" (Debian package {name})" for root, name in _PACKAGES.items() if root in path.parents),
        "",
    )


def read_text(source: str | Path) -> str:
    """The text of a file, or of a folder's ``*.txt`` files in sorted order joined by a blank line."""
    path = Path(source)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if not path.is_dir():
        raise FileNotFoundError(f"text source {str(path)!r} does not exist{source_hint(path)}")
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


def mixed_calibration_windows(
    streams: list[torch.Tensor], count: int, seqlen: int = SEQLEN
) -> torch.Tensor:
    """``count`` windows shared out among the streams (the first ones get the remainder),
    each stream's drawn by :func:`calibration_windows`, in the streams' order."""
    if count < len(streams):
        raise ValueError(f"{count} calibration windows cannot cover {len(streams)} text sources")
    shares = [count // len(streams) + (i < count % len(streams)) for i in range(len(streams))]
    return torch.cat([calibration_windows(s, n, seqlen) for s, n in zip(streams, shares)])


def evaluation_windows(stream: torch.Tensor, count: int, seqlen: int = SEQLEN) -> torch.Tensor:
    """The first ``count`` non-overlapping windows (fewer if the text is shorter)."""
    available = len(stream) // seqlen
    if available < 1:
        raise ValueError(f"evaluation text has {len(stream)} tokens, fewer than one window")
    count = min(count, available)
    return stream[: count * seqlen].reshape(count, seqlen)
