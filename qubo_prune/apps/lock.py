"""One run per output folder: a lock file with the owner's pid, refused to a second run.

Two runs writing checkpoints into the same ``--out`` would mix them. The lock is
``OUT/.qubo-prune.lock`` holding the owner's pid; a second run finds a live owner and stops with
a message naming it. A lock left by a run that was killed (its pid is gone) is taken over.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["FolderBusy", "locked"]

LOCK = ".qubo-prune.lock"


class FolderBusy(RuntimeError):
    """Another live run holds the output folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextmanager
def locked(out: Path) -> Iterator[Path]:
    """Hold ``out`` (created if missing) for this process until the block ends."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            text = path.read_text().strip() if path.exists() else ""
            owner = int(text) if text.isdigit() else None
            if owner is not None and owner != os.getpid() and _alive(owner):
                raise FolderBusy(
                    f"{out} is in use by another run (pid {owner}); wait for it to finish or "
                    "choose another --out"
                ) from None
            path.unlink(missing_ok=True)  # left by a run that was killed: take it over
    else:
        raise FolderBusy(f"could not take the lock {path}")
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield out
    finally:
        path.unlink(missing_ok=True)
