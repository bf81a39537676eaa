"""Causal language models from local Hugging Face folders, never from a hub.

Loading runs with ``HF_HUB_OFFLINE=1``: a folder is a ``save_pretrained`` directory (config,
safetensors weights, optionally a tokenizer). The embedded SmolLM2 default is converted into
such a folder once by :mod:`qubo_prune.apps.smollm2`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["load_causal_lm", "offline"]


def offline() -> None:
    """Make transformers work from local files only (nothing may be fetched at run time)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def load_causal_lm(path: str | Path):
    """``(model, tokenizer)`` in fp32 eval mode from a local HF model folder.

    The tokenizer is ``None`` when the folder holds none (a checkpoint saved without one).
    """
    offline()
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
