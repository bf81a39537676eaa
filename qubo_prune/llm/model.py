"""Causal language models from local Hugging Face folders, never from a hub.

Loading runs with ``HF_HUB_OFFLINE=1``: a folder is a ``save_pretrained`` directory (config,
safetensors weights, optionally a tokenizer). :func:`inspect_folder` reads what a run needs to
know before the weights load (the config, the context length, every prunable weight's shape)
and refuses a broken folder: an unreadable config, no weights, or a truncated safetensors file.
The embedded SmolLM2 default is converted into such a folder once by :mod:`qubo_prune.apps.smollm2`.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from qubo_prune.llm.layers import decoder_layers, linear_layers
from qubo_prune.objectives.rows import layer_rows

__all__ = ["FolderInfo", "inspect_folder", "load_causal_lm", "offline"]

WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")


def offline() -> None:
    """Make transformers work from local files only (nothing may be fetched at run time)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@dataclass(frozen=True)
class FolderInfo:
    """What a model folder says without loading its weights."""

    path: Path
    context: int | None  # the longest sequence its positions cover, when the config says
    shapes: tuple[tuple[int, int], ...]  # every prunable weight of the decoder layers, (out, in)

    @property
    def rows(self) -> int:
        return sum(out for out, _ in self.shapes)

    @property
    def widest(self) -> int:
        return max(i for _, i in self.shapes)


def _check_safetensors(path: Path) -> None:
    """A safetensors file must hold every byte its header promises (else it was truncated)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"weights file {path} is truncated (under 8 bytes)")
        (length,) = struct.unpack("<Q", head)
        try:
            header = json.loads(f.read(length))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"weights file {path} has a damaged header") from None
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    if 8 + length + max(ends, default=0) > size:
        raise ValueError(
            f"weights file {path} is truncated: {size} bytes of the "
            f"{8 + length + max(ends)} its header describes"
        )


def inspect_folder(path: str | Path) -> FolderInfo:
    """Read a model folder's config and check its weights files, without loading them."""
    offline()
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(
            f"model {str(path)!r} is not a local folder with a config.json "
            "(a save_pretrained directory)"
        )
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"model folder {path} has an unreadable config.json: {first}") from None
    weights = [p for pattern in WEIGHT_FILES for p in sorted(path.glob(pattern))]
    if not weights:
        raise FileNotFoundError(
            f"model folder {path} has a config.json but no weights (model.safetensors)"
        )
    for file in weights:
        if file.suffix == ".safetensors":
            _check_safetensors(file)
    with torch.device("meta"):  # shapes only: no memory, no weights read
        skeleton = AutoModelForCausalLM.from_config(config)
    shapes = tuple(
        layer_rows(m).shape
        for layer in decoder_layers(skeleton)
        for m in linear_layers(layer).values()
    )
    context = getattr(config, "max_position_embeddings", None) or getattr(
        config, "n_positions", None
    )
    return FolderInfo(path, int(context) if context else None, shapes)


def load_causal_lm(path: str | Path, progress: bool = True):
    """``(model, tokenizer)`` in fp32 eval mode from a local HF model folder.

    The tokenizer is ``None`` when the folder holds none (a checkpoint saved without one).
    ``progress=False`` also silences transformers' own loading bars.
    """
    offline()
    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"model {str(path)!r} is not a local folder with a config.json "
            "(a save_pretrained directory)"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    has_tokenizer = any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(path) if has_tokenizer else None
    model.eval()
    return model, tokenizer
