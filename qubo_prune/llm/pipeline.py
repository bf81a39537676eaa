"""Prune every linear layer inside a causal LM's decoder layers, one decoder layer at a time.

Like SparseGPT and Wanda: the calibration windows' hidden states enter decoder layer ``i``; one
forward pass with hooks accumulates each linear's Gram matrix ``G = U U^T``; the layer's linears
are pruned by the per-layer method of the config (:data:`qubo_prune.pruners.methods.LAYER_METHODS`);
the PRUNED layer's outputs become the next layer's inputs. Optionally a second, dense stream
gives each layer's error on the inputs the dense model would feed it (the error docs/anchors.md
reports). After every decoder layer its weights and masks are saved, so an interrupted run
resumes from the last finished layer. Embeddings and ``lm_head`` stay dense.

Memory: the model stays where it is (the CPU for a big one); only the decoder layer being
pruned, its calibration activations, its Grams and the pruning math go to ``device``, and the
layer goes back afterwards. Weights keep their dtype (fp16, bf16) except inside the math.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qubo_prune.backends.registry import BackendError, get_backend
from qubo_prune.core.patterns import check_mask
from qubo_prune.core.step import BlockSolver
from qubo_prune.llm.calibration import first_inputs
from qubo_prune.llm.checkpoint import load_layer, load_progress, save_layer, save_progress
from qubo_prune.llm.layers import (
    decoder_layers,
    is_conv1d,
    layer_prefix,
    linear_layers,
    weight_matrix,
)
from qubo_prune.objectives.reconstruction import layer_error
from qubo_prune.pruners.calibration import GramHooks, Stream
from qubo_prune.pruners.methods import LayerInput, LayerwiseConfig, prune_matrix

__all__ = ["LayerReport", "prune_causal_lm"]


@dataclass
class LayerReport:
    """One pruned linear: relative errors ``||W0 U - W U||^2 / ||W0 U||^2`` and what it cost.

    ``error``: on the inputs it saw while pruning (pruned earlier layers); ``dense_error``: on
    the dense model's inputs; ``mask_error``: before the refit (equal to ``error`` without one).
    """

    layer: int
    name: str
    sparsity: float
    error: float
    mask_error: float
    dense_error: float | None
    seconds: float
    icbs: dict[str, Any] | None = None


@torch.no_grad()
def prune_causal_lm(
    model: nn.Module,
    calibration: torch.Tensor,
    config: LayerwiseConfig,
    out: str | Path | None = None,
    dense_errors: bool = True,
    progress: bool = True,
    on_layer_done: Callable[[int], None] | None = None,
    device: torch.device | str | None = None,
) -> list[LayerReport]:
    """Prune ``model`` in place; returns one report per linear. ``out`` enables resume.

    ``calibration``: ``(windows, seqlen)`` token ids. ``device``: where each decoder layer is
    pruned (default: where the model is). Masks end up in ``model.pruning_masks`` (parameter
    name -> bool on the CPU, True = pruned), in each parameter's own layout.
    """
    from tqdm.auto import tqdm

    solver = (
        get_backend(config.solver, **config.solver_options) if config.method == "icbs" else None
    )
    model.eval()
    out = Path(out) if out is not None else None
    done = load_progress(out, config) if out else []
    finished = {r["layer"] for r in done}
    reports = [LayerReport(**r) for r in done]
    layers = decoder_layers(model)
    prefix = layer_prefix(model, layers)
    masks: dict[str, torch.Tensor] = {}
    device = torch.device(device) if device is not None else next(model.parameters()).device
    pruned = first_inputs(model, calibration)
    if not all(bool(torch.isfinite(h).all()) for h in pruned.hidden):
        raise FloatingPointError(
            "the calibration activations entering decoder layer 0 hold NaN or inf; nothing was "
            "pruned"
        )
    pruned = pruned.to(device)
    dense = pruned.copy() if dense_errors else None
    bar = tqdm(range(len(layers)), desc="decoder layers", disable=not progress)
    for i in bar:
        layer = layers[i]
        home = next(layer.parameters()).device
        layer.to(device)
        linears = linear_layers(layer)
        dense_grams = {}
        if dense is not None:
            hooks = GramHooks(linears) if i not in finished else None
            dense.hidden = dense.run(layer, hooks)
            if hooks:
                hooks.remove()
                dense_grams = hooks.grams
        if i in finished:
            saved = load_layer(out, i)
            for name, m in linears.items():
                m.weight.copy_(saved[f"{name}.weight"])
                masks[f"{prefix}{i}.{name}.weight"] = saved[f"{name}.mask"].cpu()
        else:
            dense_weights = {n: m.weight.detach().clone() for n, m in linears.items()}
            try:
                tensors = _prune_layer(i, layer, pruned, dense_grams, config, solver, bar, reports)
            except BaseException as err:  # the layer goes back to dense; finished ones stay
                for n, m in linears.items():
                    m.weight.copy_(dense_weights[n])
                layer.to(home)
                if isinstance(err, BackendError):
                    raise BackendError(f"{err}; {_left(i, out)}") from None
                raise
            for name in linears:
                masks[f"{prefix}{i}.{name}.weight"] = tensors[f"{name}.mask"]
            if out is not None:
                save_layer(out, i, tensors)
                save_progress(out, config, reports)
        pruned.hidden = pruned.run(layer)
        layer.to(home)
        if on_layer_done and i not in finished:
            on_layer_done(i)
    model.pruning_masks = masks
    return reports


def _left(index: int, out: Path | None) -> str:
    """What a run that failed in decoder layer ``index`` leaves behind."""
    kept = f"; layers 0-{index - 1} are pruned" if index else ""
    if out is not None and index:
        kept += f" and saved in {out} (run the same command again to resume)"
    return f"decoder layer {index} is dense again{kept}"


def _prune_layer(
    index: int,
    layer: nn.Module,
    stream: Stream,
    dense_grams: dict[str, Any],
    config: LayerwiseConfig,
    solver: BlockSolver | None,
    bar: Any,
    reports: list[LayerReport],
) -> dict[str, torch.Tensor]:
    """Prune every linear of one decoder layer in place; its weights and masks to save."""
    linears = linear_layers(layer)
    hooks = GramHooks(linears)
    stream.run(layer, hooks)
    hooks.remove()
    for name, acc in hooks.grams.items():
        if not bool(torch.isfinite(acc.G).all()):
            raise FloatingPointError(
                f"the calibration inputs of {name} in decoder layer {index} hold NaN or inf"
            )
    tensors = {}
    for j, (name, m) in enumerate(linears.items()):
        bar.set_postfix_str(name)
        start = time.perf_counter()
        W0 = weight_matrix(m).detach().clone(memory_format=torch.contiguous_format)
        acc = hooks.grams[name]
        res = prune_matrix(
            LayerInput(W0, acc, config.seed + 1000 * index + j, name), config, solver
        )
        check_mask(res.mask, config.guaranteed_pattern())
        weight_matrix(m).copy_(res.weights)
        mask = (res.mask.T.contiguous() if is_conv1d(m) else res.mask).cpu()
        tensors[f"{name}.weight"] = m.weight.detach().cpu().contiguous()
        tensors[f"{name}.mask"] = mask
        reports.append(
            LayerReport(
                layer=index,
                name=name,
                sparsity=float(res.mask.double().mean()),
                error=layer_error(W0, res.weights, acc.G),
                mask_error=layer_error(W0, res.before, acc.G),
                dense_error=layer_error(W0, res.weights, dense_grams[name].G)
                if dense_grams
                else None,
                seconds=time.perf_counter() - start,
                icbs=res.stats,
            )
        )
    return tensors
