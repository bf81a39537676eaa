"""The paper's garment classifier: an MLP 784-512-512-10 on Fashion-MNIST, trained once, cached.

Data come from Debian's ``dataset-fashion-mnist`` (IDX files, ``make setup`` installs them);
without them the demo stops with that install command before any work.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qubo_prune.apps.cache import cache_dir

__all__ = [
    "FASHION_MNIST_DIR",
    "Dataset",
    "evaluate",
    "garment_mlp",
    "load_fashion_mnist",
    "trained_classifier",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class Dataset:
    """Flattened images scaled to [-1, 1] and integer labels."""

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).exists():
            return root / name
    return None


def load_fashion_mnist(root: Path = FASHION_MNIST_DIR) -> Dataset:
    """Fashion-MNIST from the IDX files (``.gz`` or not) under ``root``."""
    stems = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    paths = [_find(root, s) for s in stems]
    if not all(paths):
        missing = ", ".join(s for s, p in zip(stems, paths) if p is None)
        raise FileNotFoundError(
            f"Fashion-MNIST not found under {root} (missing {missing}): install the Debian "
            "package dataset-fashion-mnist (`make setup` does)"
        )
    xtr, ytr, xte, yte = (_read_idx(p) for p in paths)

    def prep(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0 * 2.0 - 1.0)

    return Dataset(
        "fashion-mnist",
        prep(xtr),
        torch.from_numpy(ytr.astype(np.int64)),
        prep(xte),
        torch.from_numpy(yte.astype(np.int64)),
    )


def garment_mlp(hidden: int = 512, inputs: int = 784) -> nn.Sequential:
    """MLP 784-512-512-10 with ReLU, as in the paper's Fig. 3."""
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    """Top-1 accuracy in percent."""
    correct = 0
    for s in range(0, len(X), batch):
        correct += (model(X[s : s + batch]).argmax(1) == y[s : s + batch]).sum().item()
    return 100.0 * correct / len(X)


def train(
    model: nn.Module,
    data: Dataset,
    epochs: int = 5,
    lr: float = 1e-3,
    momentum: float = 0.9,
    batch: int = 64,
    seed: int = 0,
) -> nn.Module:
    """SGD as in the paper's setting (lr 1e-3, momentum 0.9, batch 64)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data.X_train), generator=gen)
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            opt.zero_grad()
            loss_fn(model(data.X_train[idx]), data.y_train[idx]).backward()
            opt.step()
    model.eval()
    return model


def trained_classifier(
    data: Dataset,
    epochs: int = 5,
    seed: int = 0,
    hidden: int = 512,
    lr: float = 1e-3,
    momentum: float = 0.9,
    batch: int = 64,
) -> nn.Sequential:
    """Train once and cache the weights, keyed by the training data's content and every
    training option, so a cached model is only ever reused for the same training."""
    options = dict(epochs=epochs, seed=seed, hidden=hidden, lr=lr, momentum=momentum, batch=batch)
    digest = hashlib.blake2b(json.dumps(options, sort_keys=True).encode(), digest_size=8)
    for t in (data.X_train, data.y_train):
        digest.update(t.contiguous().numpy().tobytes())
    path = cache_dir() / f"garment-mlp-{data.name}-h{hidden}-{digest.hexdigest()}.pt"
    torch.manual_seed(seed)
    model = garment_mlp(hidden)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    train(model, data, epochs=epochs, lr=lr, momentum=momentum, batch=batch, seed=seed)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model
