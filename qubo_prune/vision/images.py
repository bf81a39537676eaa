"""Labelled images as tensors: from any source, or from a local folder in the ``ImageFolder``
layout (``root/<class name>/<image>``), preprocessed by the model's own image processor.

A dataset folder holds a ``train/`` split (calibration images are drawn from it) and a ``val/``
or ``test/`` split (top-1 accuracy). Images are read with Pillow and turned into
``pixel_values`` by the processor saved beside the model (``preprocessor_config.json``), or,
without one, by a ``ViTImageProcessor`` (Pillow backend) resizing to the model's image size and scaling pixels
to [-1, 1]. Class folders map to the model's labels by name (``config.label2id``) when every
name is one of them, else in sorted order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["IMAGE_SUFFIXES", "Images", "dataset_splits", "image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Images:
    """``pixels`` ``(N, channels, height, width)`` as the model takes them, ``labels`` ``(N,)``."""

    pixels: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.pixels) != len(self.labels) or len(self.pixels) == 0:
            raise ValueError("images and labels must be equally many, and not none")

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(self), size):
            yield self.pixels[start : start + size]

    def sample(self, count: int, seed: int = 0) -> Images:
        """``count`` images drawn without replacement (all of them, shuffled, if fewer)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        idx = order[: min(count, len(self))]
        return Images(self.pixels[idx], self.labels[idx])

    def head(self, count: int) -> Images:
        """The first ``count`` images (all if ``count`` is 0 or more than there are)."""
        end = len(self) if count <= 0 else min(count, len(self))
        return Images(self.pixels[:end], self.labels[:end])


def dataset_splits(root: str | Path) -> tuple[Path, Path]:
    """``(train, evaluation)`` folders of a dataset: ``train/`` and ``val/`` (or ``test/``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    train = root / "train"
    evals = [root / name for name in ("val", "test") if (root / name).is_dir()]
    if not train.is_dir() or not evals:
        raise FileNotFoundError(
            f"{root} needs a train/ and a val/ (or test/) subfolder, each holding one folder "
            "of images per class (the ImageFolder layout)"
        )
    for split in (train, evals[0]):
        _class_folders(split)  # each split must hold images
    return train, evals[0]


def _class_folders(split: Path) -> list[Path]:
    classes = sorted(p for p in split.iterdir() if p.is_dir())
    if not classes or not any(_image_files(c) for c in classes):
        raise FileNotFoundError(f"{split} holds no class folder with images")
    return classes


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def image_folder(split: str | Path, config: Any, processor_dir: str | Path | None = None) -> Images:
    """Every image of one split, as the model with ``config`` takes it."""
    from PIL import Image

    split = Path(split)
    classes = _class_folders(split)
    names = [c.name for c in classes]
    label2id = getattr(config, "label2id", None) or {}
    if set(names) <= set(label2id):
        ids = [int(label2id[n]) for n in names]
    else:
        if len(names) > config.num_labels:
            raise ValueError(
                f"{split} has {len(names)} classes, the model only {config.num_labels} labels"
            )
        ids = list(range(len(names)))
    processor = _processor(config, processor_dir)
    mode = "L" if config.num_channels == 1 else "RGB"
    pixels, labels = [], []
    for folder, label in zip(classes, ids):
        files = _image_files(folder)
        for start in range(0, len(files), 256):
            images = []
            for path in files[start : start + 256]:
                with Image.open(path) as im:
                    images.append(im.convert(mode))
            pixels.append(processor(images, return_tensors="pt")["pixel_values"])
            labels += [label] * len(images)
    return Images(torch.cat(pixels).float(), torch.tensor(labels, dtype=torch.long))


def _processor(config: Any, processor_dir: str | Path | None) -> Any:
    """The image processor saved with the model, or resize + [-1, 1] scaling (Pillow backend:
    the torchvision one is not a dependency)."""
    from transformers import AutoImageProcessor, ViTImageProcessorPil

    if processor_dir is not None and (Path(processor_dir) / "preprocessor_config.json").exists():
        return AutoImageProcessor.from_pretrained(processor_dir, backend="pil")
    size = int(config.image_size)
    half = [0.5] * int(config.num_channels)
    return ViTImageProcessorPil(
        size={"height": size, "width": size}, image_mean=half, image_std=half
    )
