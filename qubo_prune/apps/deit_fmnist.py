"""The embedded vision default: a small DeiT trained once on Fashion-MNIST, cached.

A ``DeiTForImageClassification`` (transformers) over the 28x28 grey images: patch 7 (16
patches plus the class and distillation tokens), 4 encoder layers of width 96 with 4 heads and
an MLP of 384. Trained from scratch on the 60k training images of Debian's
``dataset-fashion-mnist`` (pixels in [-1, 1]) with AdamW and a cosine learning rate, then saved
once as a ``save_pretrained`` folder under ``cache_dir()/deit-fmnist-<key>`` with its image
processor and ``recipe.json`` (every training option and the dense test accuracy measured right
after training). The key hashes every training option, so another recipe trains another model.
Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from qubo_prune.apps.cache import cache_dir
from qubo_prune.apps.garment import Dataset, load_fashion_mnist
from qubo_prune.vision.accuracy import top1
from qubo_prune.vision.images import Images

__all__ = ["CLASSES", "DEIT_FMNIST", "DeitRecipe", "deit_fmnist_dir", "fashion_mnist_images"]

DEIT_FMNIST = "deit-fmnist"
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
RECIPE = "recipe.json"


@dataclass(frozen=True)
class DeitRecipe:
    """Every option that decides the trained weights (all of them enter the cache key)."""

    patch_size: int = 7
    hidden_size: int = 96
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 384
    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 200
    seed: int = 0
    train_subset: int = 0  # 0: all 60k training images

    def key(self) -> str:
        text = json.dumps({"data": "fashion-mnist", **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def model_config(self) -> Any:
        from transformers import DeiTConfig

        return DeiTConfig(
            image_size=28,
            patch_size=self.patch_size,
            num_channels=1,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=self.intermediate_size,
            encoder_stride=self.patch_size,
            num_labels=len(CLASSES),
            id2label=dict(enumerate(CLASSES)),
            label2id={name: i for i, name in enumerate(CLASSES)},
        )


def fashion_mnist_images(data: Dataset, split: str) -> Images:
    """Fashion-MNIST's ``train`` or ``test`` images as ``(N, 1, 28, 28)`` in [-1, 1]."""
    X, y = (data.X_train, data.y_train) if split == "train" else (data.X_test, data.y_test)
    return Images(X.reshape(-1, 1, 28, 28), y)


def _train(recipe: DeitRecipe, train: Images, progress: bool) -> Any:
    """AdamW with a linear warm-up and a cosine decay, cross-entropy on the class logits."""
    from tqdm.auto import tqdm
    from transformers import DeiTForImageClassification

    torch.manual_seed(recipe.seed)
    model = DeiTForImageClassification(recipe.model_config())
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = recipe.epochs * math.ceil(len(train) / recipe.batch_size)

    def rate(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * step / steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    gen = torch.Generator().manual_seed(recipe.seed)
    model.train()
    bar = tqdm(total=steps, desc="training deit-fmnist (once)", disable=not progress)
    for _ in range(recipe.epochs):
        order = torch.randperm(len(train), generator=gen)
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            opt.zero_grad()
            F.cross_entropy(model(train.pixels[idx]).logits, train.labels[idx]).backward()
            opt.step()
            schedule.step()
            bar.update()
    bar.close()
    return model.eval()


def deit_fmnist_dir(recipe: DeitRecipe = DeitRecipe(), progress: bool = True) -> Path:
    """The cached model folder of ``recipe``, trained on first use."""
    target = cache_dir() / f"{DEIT_FMNIST}-{recipe.key()}"
    if (target / RECIPE).exists():
        return target
    from transformers import ViTImageProcessorPil

    data = load_fashion_mnist()
    train = fashion_mnist_images(data, "train").head(recipe.train_subset)
    model = _train(recipe, train, progress)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    ViTImageProcessorPil(
        size={"height": 28, "width": 28}, image_mean=[0.5], image_std=[0.5]
    ).save_pretrained(partial)
    accuracy = top1(model, fashion_mnist_images(data, "test"))
    (partial / RECIPE).write_text(
        json.dumps({"recipe": asdict(recipe), "dense_test_accuracy": accuracy}, indent=1)
    )
    shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier save
    partial.replace(target)
    return target
