"""What a layer walk leaves on disk: finished blocks for resume, and masks beside a saved model.

During a run, every finished block's weights and masks go to
``out/layers/layer_NNN.safetensors`` and the reports so far to ``out/progress.json`` (with the
config, so a resume under other options is refused). A finished model is saved by its own kind
(``save_pretrained`` for Hugging Face models) into ``out/model``, and its masks (True = pruned,
keyed by parameter name) into ``out/masks.safetensors``; loading checks every mask against the
weights. Nothing here knows what kind of model it holds.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qubo_prune.pruners.methods import LayerwiseConfig

__all__ = [
    "MASKS",
    "attach_masks",
    "load_layer",
    "load_masks",
    "load_progress",
    "save_layer",
    "save_masks",
    "save_progress",
]

PROGRESS = "progress.json"
MASKS = "masks.safetensors"


def _layer_file(out: Path, index: int) -> Path:
    return out / "layers" / f"layer_{index:03d}.safetensors"


def _atomic(path: Path, write) -> None:
    """Write through a temporary file, so a kill mid-write never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


def save_layer(out: Path, index: int, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    _atomic(_layer_file(out, index), lambda tmp: save_file(tensors, str(tmp)))


def load_layer(out: Path, index: int) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(_layer_file(out, index)))


def save_progress(out: Path, config: LayerwiseConfig, reports: list[Any]) -> None:
    state = {"config": config.to_dict(), "reports": [asdict(r) for r in reports]}
    _atomic(out / PROGRESS, lambda tmp: tmp.write_text(json.dumps(state, indent=1)))


def load_progress(out: Path, config: LayerwiseConfig) -> list[dict[str, Any]]:
    """Reports of finished layers of an earlier run with the same config (else none)."""
    path = out / PROGRESS
    if not path.exists():
        return []
    try:
        saved = json.loads(path.read_text())
        # options added since that run was saved take their defaults
        saved["config"] = LayerwiseConfig(**saved["config"]).to_dict()
    except (ValueError, TypeError, KeyError):
        raise ValueError(
            f"{path} is not a progress file of a layer walk; remove {out} or choose another --out"
        ) from None
    if saved["config"] != json.loads(json.dumps(config.to_dict())):
        raise ValueError(
            f"{out} holds an interrupted run with other options ({saved['config']}); "
            "use the same options to resume or another --out"
        )
    return saved["reports"]


def save_masks(masks: dict[str, torch.Tensor], out: str | Path) -> Path:
    """``out/masks.safetensors``."""
    from safetensors.torch import save_file

    path = Path(out) / MASKS
    save_file({k: v.contiguous() for k, v in masks.items()}, str(path))
    return path


def load_masks(model: nn.Module, out: str | Path) -> dict[str, torch.Tensor]:
    """The masks saved beside ``model``; fails if one fits no parameter or a pruned weight is
    not zero. They are also set as ``model.pruning_masks``."""
    from safetensors.torch import load_file

    path = Path(out) / MASKS
    if not path.exists():
        raise FileNotFoundError(f"{out} is not a pruned checkpoint (no {MASKS})")
    masks = load_file(str(path))
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params or params[name].shape != mask.shape:
            raise ValueError(f"mask {name!r} does not match a parameter of the saved model")
        if bool(params[name].detach()[mask].ne(0).any()):
            raise ValueError(f"{name}: weights under the mask are not zero; checkpoint is damaged")
    model.pruning_masks = masks
    return masks


def attach_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Register the masks as ``torch.nn.utils.prune`` custom masks (1 = kept there)."""
    from torch.nn.utils import prune

    modules = dict(model.named_modules())
    for name, mask in masks.items():
        module_name, _, attr = name.rpartition(".")
        prune.custom_from_mask(modules[module_name], attr, ~mask)
