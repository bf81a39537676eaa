"""Named choices checked at the edge, with the close matches of a misspelt name suggested."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["check_choice", "close_matches"]


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
