import os

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import numpy as np
import pytest
import torch

from qubo_prune.block import Block


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep trained models and checkpoints of tests out of the user's cache."""
    monkeypatch.setenv("QUBO_PRUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def random_block(n: int, seed: int, k: int | None = None, scale: float = 1.0) -> Block:
    """A random symmetric block with a random feasible current mask."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n)) * scale
    k = n // 2 if k is None else k
    current = np.zeros(n, dtype=np.int8)
    current[rng.choice(n, size=k, replace=False)] = 1
    return Block(Q=(A + A.T) / 2, constant=float(rng.normal()), current=current)


def tiny_mlp(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def tiny_data(seed: int = 0, n: int = 256):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 12, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    return X, y


def fail_on_solve(monkeypatch, pruner, call: int, error: BaseException) -> None:
    """Make the pruner's backend raise ``error`` on its ``call``-th solve (1-based)."""
    original = pruner.backend.solve
    calls = {"n": 0}

    def solve(block):
        calls["n"] += 1
        if calls["n"] == call:
            raise error
        return original(block)

    monkeypatch.setattr(pruner.backend, "solve", solve)
