"""The paper's garment classifier: an MLP 784-512-512-10 on Fashion-MNIST, trained once, cached.

Data come from Debian's ``dataset-fashion-mnist`` (IDX files); only when those are absent does
it fall back to scikit-learn's 8x8 digits (upsampled to 28x28), and it says so.
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "FASHION_MNIST_DIR",
    "Dataset",
    "cache_dir",
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


def cache_dir() -> Path:
    """``$QUBO_PRUNE_CACHE``, else ``$XDG_CACHE_HOME/qubo-prune`` (``~/.cache/qubo-prune``)."""
    env = os.environ.get("QUBO_PRUNE_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = base if env else base / "qubo-prune"
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def load_fashion_mnist(root: Path = FASHION_MNIST_DIR, quiet: bool = False) -> Dataset:
    """Fashion-MNIST from the IDX files under ``root``, or digits if they are absent."""
    stems = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    paths = [_find(root, s) for s in stems]
    if all(paths):
        xtr, ytr, xte, yte = (_read_idx(p) for p in paths)
        name = "fashion-mnist"
    else:
        if not quiet:
            print(
                f"Fashion-MNIST not found under {root} (apt-get install dataset-fashion-mnist); "
                "falling back to scikit-learn's digits, upsampled to 28x28.",
                file=sys.stderr,
            )
        from sklearn.datasets import load_digits

        digits = load_digits()
        imgs = np.kron(digits.images / 16.0 * 255.0, np.ones((4, 4)))  # 8x8 -> 32x32
        imgs = imgs[:, 2:30, 2:30].astype(np.uint8)
        order = np.random.default_rng(0).permutation(len(imgs))
        split = int(0.8 * len(imgs))
        xtr, xte = imgs[order[:split]], imgs[order[split:]]
        ytr, yte = digits.target[order[:split]], digits.target[order[split:]]
        name = "digits"

    def prep(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0 * 2.0 - 1.0)

    return Dataset(
        name,
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
    data: Dataset, epochs: int = 5, seed: int = 0, hidden: int = 512
) -> nn.Sequential:
    """Train once per (dataset, epochs, seed, width) and cache the weights."""
    path = cache_dir() / f"garment-mlp-{data.name}-h{hidden}-e{epochs}-s{seed}.pt"
    torch.manual_seed(seed)
    model = garment_mlp(hidden)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    train(model, data, epochs=epochs, seed=seed)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model
