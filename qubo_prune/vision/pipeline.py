"""Prune a vision model block by block: a DeiT / ViT's encoder layers, or a CNN's modules.

The walk itself is :func:`qubo_prune.pruners.walk.prune_blocks`; this module says what it walks.
A Hugging Face ViT or DeiT: its encoder layers, entered by the embeddings' output; every linear
inside (attention query/key/value/output, MLP fc1/fc2) is pruned, the patch embedding and the
classifier head stay dense, as the paper does. An ``nn.Sequential`` (a CNN): its children in
order, entered by the images; every Linear and ungrouped Conv2d is pruned except the first (the
stem, as the patch embedding) and the last (the head).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from qubo_prune.objectives.rows import is_prunable
from qubo_prune.pruners.calibration import block_inputs
from qubo_prune.pruners.methods import LayerwiseConfig
from qubo_prune.pruners.walk import LayerReport, Walk, module_prefix, prunable_layers, prune_blocks
from qubo_prune.vision.images import Images

__all__ = ["prune_vision_model", "vision_walk"]


def _encoder_layers(model: nn.Module) -> nn.ModuleList | None:
    base = getattr(model, "base_model", None)
    for path in ("layers", "encoder.layer"):
        obj = base
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    return None


def vision_walk(model: nn.Module) -> Walk:
    """The blocks of a ViT / DeiT (encoder layers) or of an ``nn.Sequential`` CNN (children)."""
    layers = _encoder_layers(model)
    if layers is not None:
        return Walk(layers, module_prefix(model, layers), label="encoder layers")
    if not isinstance(model, nn.Sequential):
        raise ValueError(
            f"{type(model).__name__} is neither a ViT / DeiT image classifier nor an "
            "nn.Sequential; give one of those"
        )
    every = [m for m in model.modules() if is_prunable(m)]
    if len(every) < 3:
        raise ValueError("the CNN has no prunable layer besides its stem and head")
    ends = {id(every[0]), id(every[-1])}  # stem and head stay dense

    def body(i: int, block: nn.Module) -> dict[str, nn.Module]:
        return {n: m for n, m in prunable_layers(block).items() if id(m) not in ends}

    return Walk(list(model), "", body, label="modules")


@torch.no_grad()
def prune_vision_model(
    model: nn.Module,
    calibration: Images,
    config: LayerwiseConfig,
    out: str | Path | None = None,
    dense_errors: bool = True,
    progress: bool = True,
    batch_size: int = 128,
    on_block_done: Callable[[int], None] | None = None,
) -> list[LayerReport]:
    """Prune ``model`` in place from calibration images; one report per pruned layer. Masks end
    up in ``model.pruning_masks`` (parameter name -> bool, True = pruned). ``out`` enables
    resume."""
    model.eval()
    walk = vision_walk(model)
    device = next(model.parameters()).device
    stream = block_inputs(
        walk.blocks[0],
        (lambda b=b: model(b.to(device)) for b in calibration.batches(batch_size)),
    )
    reports, model.pruning_masks = prune_blocks(
        walk, stream, config, out, dense_errors, progress, on_block_done
    )
    return reports
