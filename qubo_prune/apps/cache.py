"""The one cache folder of everything that is computed once and kept: trained models, converted
checkpoints. ``$QUBO_PRUNE_CACHE``, else ``$XDG_CACHE_HOME/qubo-prune`` (``~/.cache/qubo-prune``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The cache folder, created if missing."""
    env = os.environ.get("QUBO_PRUNE_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = base if env else base / "qubo-prune"
    path.mkdir(parents=True, exist_ok=True)
    return path
