"""Named choices and counts checked at the edge, with the close matches of a misspelt name
suggested."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["check_choice", "check_counts", "close_matches"]


def close_matches(name: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x', 'y'?`` for the names of ``known`` close to ``name`` (else empty)."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_choice(label: str, value: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; otherwise a ValueError naming the close ones."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(
            f"unknown {label} {value!r}.{close_matches(value, choices)} "
            f"Choose one of: {', '.join(choices)}."
        )
    return value


def check_counts(*counts: tuple[str, int, int]) -> None:
    """Each ``(label, value, least)``: a ValueError naming the first value below its least."""
    for label, value, least in counts:
        if int(value) < least:
            raise ValueError(f"{label} must be at least {least}, got {value}")
