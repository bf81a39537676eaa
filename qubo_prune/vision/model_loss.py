"""iCBS on a vision model's classification loss (objective 1, the paper's own objective).

:class:`~qubo_prune.pruners.icbs.ICBSPruner` over the weights the layer walk prunes (a ViT /
DeiT's encoder linears, a CNN's body convs and linears), with the cross-entropy of the model's
logits on labelled images. Its Fisher blocks come from per-sample gradients factorised through
each linear's token inputs or each conv's patches (:mod:`qubo_prune.objectives.loss`), so no
full per-sample gradient is formed. Every tensor keeps its density exactly (per tensor); N:M
patterns belong to the layer objective (:mod:`qubo_prune.vision.pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from qubo_prune.objectives.reconstruction import layer_error
from qubo_prune.objectives.rows import layer_rows
from qubo_prune.pruners.calibration import GramHooks
from qubo_prune.pruners.icbs import ICBSPruner, PruneResult
from qubo_prune.pruners.walk import LayerReport
from qubo_prune.vision.images import Images
from qubo_prune.vision.model import Logits
from qubo_prune.vision.pipeline import vision_walk

__all__ = ["dense_layer_errors", "prune_vision_loss"]

WRAPPED = "model."  # parameter-name prefix inside the Logits wrapper


def prune_vision_loss(
    model: nn.Module,
    images: Images,
    density: float,
    solver: str = "neal",
    solver_options: Mapping[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    max_cost: float | None = None,
    **settings: Any,
) -> PruneResult:
    """Prune ``model`` in place on ``images``; masks end up in ``model.pruning_masks``.

    ``settings`` are :class:`~qubo_prune.pruners.icbs.ICBSConfig`'s (block size, epochs, ...);
    the run options are :class:`~qubo_prune.pruners.icbs.ICBSPruner`'s.
    """
    names = [WRAPPED + name for name in vision_walk(model).weight_names()]
    pruner = ICBSPruner(
        density,
        solver,
        solver_options,
        checkpoint=checkpoint,
        progress=progress,
        max_cost=max_cost,
        **settings,
    )
    model.eval()
    result = pruner.prune(Logits(model), F.cross_entropy, images.pixels, images.labels, names)
    model.pruning_masks = {
        name.removeprefix(WRAPPED): mask for name, mask in result.state.pruned.items()
    }
    return result


@torch.no_grad()
def dense_layer_errors(
    model: nn.Module, images: Images, batch_size: int = 128
) -> Callable[[], list[LayerReport]]:
    """Record the dense model's Gram of every layer the walk prunes; the returned function
    gives each layer's relative error ``||W0 U - W U||^2 / ||W0 U||^2`` once ``model`` is
    pruned in place (the layer walk's error on dense inputs, for the loss objective)."""
    walk = vision_walk(model)
    layers = [
        (i, name, m) for i, b in enumerate(walk.blocks) for name, m in walk.layers(i, b).items()
    ]
    keys = [f"{i}.{name}" for i, name, _ in layers]
    hooks = GramHooks(dict(zip(keys, (m for _, _, m in layers))))
    device = next(model.parameters()).device
    for pixels in images.batches(batch_size):
        hooks.next_window()
        model(pixels.to(device))
    hooks.remove()
    dense = {key: layer_rows(m).matrix() for key, (_, _, m) in zip(keys, layers)}

    def errors() -> list[LayerReport]:
        reports = []
        for key, (i, name, m) in zip(keys, layers):
            W, G = layer_rows(m).matrix(), hooks.grams[key].G
            error = layer_error(dense[key], W, G)
            sparsity = float(model.pruning_masks[walk.weight_name(i, name)].double().mean())
            reports.append(LayerReport(i, name, sparsity, error, error, error, 0.0))
        return reports

    return errors
