"""Prune a model block by block (decoder layers, encoder layers, a CNN's stages), each block's
prunable layers by the per-layer method of the config.

Like SparseGPT and Wanda: the calibration inputs enter block ``i``; one forward pass with hooks
accumulates each prunable layer's Gram matrix ``G = U U^T`` (a conv's over its patches); the
layers are pruned by :data:`qubo_prune.pruners.methods.LAYER_METHODS`; the PRUNED block's
outputs become the next block's inputs. Optionally a second, dense stream gives each layer's
error on the inputs the dense model would feed it; with ``fit_inputs="both"`` the layers are
fitted to its inputs too (the two streams' Grams summed, the same windows held out of both).
After every block its weights and masks are saved, so an interrupted run resumes from the last
finished block; a block that fails goes back to dense. The caller says which modules are the
blocks, what enters the first one and which layers of a block to prune; nothing here knows the
model's kind.

Memory: the model stays where it is (the CPU for a big one); only the block being pruned, its
calibration activations, its Grams and the pruning math go to ``device``, and the block goes
back afterwards. Weights keep their dtype (fp16, bf16) except inside the math.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qubo_prune.backends.registry import BackendError, get_backend
from qubo_prune.core.patterns import check_mask
from qubo_prune.core.step import BlockSolver
from qubo_prune.objectives.reconstruction import GramAccumulator, layer_error
from qubo_prune.objectives.rows import is_prunable, layer_rows
from qubo_prune.pruners.calibration import GramHooks, Stream
from qubo_prune.pruners.methods import LayerInput, LayerwiseConfig, prune_matrix
from qubo_prune.pruners.sparse_checkpoint import (
    load_layer,
    load_progress,
    save_layer,
    save_progress,
)

__all__ = ["LayerReport", "Walk", "module_prefix", "prunable_layers", "prune_blocks"]


@dataclass
class LayerReport:
    """One pruned layer: relative errors ``||W0 U - W U||^2 / ||W0 U||^2`` and what it cost.

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
    regularisation: dict[str, Any] | None = None


def prunable_layers(block: nn.Module) -> dict[str, nn.Module]:
    """Every Linear, GPT-2 Conv1D and ungrouped Conv2d of a block (the block itself, named
    ``""``, when it is one), in order of definition."""
    return {name: m for name, m in block.named_modules() if is_prunable(m)}


def module_prefix(model: nn.Module, module: nn.Module) -> str:
    """Parameter-name prefix of a submodule, e.g. ``model.layers.`` (``""`` for the model)."""
    for name, found in model.named_modules():
        if found is module:
            return f"{name}." if name else ""
    raise ValueError(f"{type(module).__name__} is not a submodule of the model")


@dataclass(frozen=True)
class Walk:
    """What to walk: the ``blocks`` in forward order, their parameter-name ``prefix`` (e.g.
    ``model.layers.``: block ``i``'s layer ``name`` holds ``model.layers.{i}.{name}.weight``)
    and ``layers(i, block)``: the layers of block ``i`` to prune, by name."""

    blocks: Sequence[nn.Module]
    prefix: str
    layers: Callable[[int, nn.Module], dict[str, nn.Module]] = lambda i, block: prunable_layers(
        block
    )
    label: str = "blocks"

    def weight_name(self, index: int, layer: str) -> str:
        return f"{self.prefix}{index}.{layer}.weight" if layer else f"{self.prefix}{index}.weight"

    def weight_names(self) -> list[str]:
        """Every weight the walk prunes, by parameter name, in order."""
        return [
            self.weight_name(i, name)
            for i, block in enumerate(self.blocks)
            for name in self.layers(i, block)
        ]


@torch.no_grad()
def prune_blocks(
    walk: Walk,
    stream: Stream,
    config: LayerwiseConfig,
    out: str | Path | None = None,
    dense_errors: bool = True,
    progress: bool = True,
    on_block_done: Callable[[int], None] | None = None,
    device: torch.device | str | None = None,
) -> tuple[list[LayerReport], dict[str, torch.Tensor]]:
    """Prune the walk's blocks in place from ``stream`` (the first block's inputs); returns one
    report per pruned layer and the masks (parameter name -> bool on the CPU, True = pruned, in
    each parameter's own layout). ``out`` enables resume; ``device``: where each block is
    pruned (default: where the stream is)."""
    from tqdm.auto import tqdm

    solver = (
        get_backend(config.solver, **config.solver_options) if config.method == "icbs" else None
    )
    out = Path(out) if out is not None else None
    done = load_progress(out, config) if out else []
    finished = {r["layer"] for r in done}
    reports = [LayerReport(**r) for r in done]
    masks: dict[str, torch.Tensor] = {}
    _check_finite_inputs(stream, walk.label)
    held_out = config.held_out(len(stream.hidden))
    device = torch.device(device) if device is not None else stream.hidden[0].device
    pruned = stream.to(device)
    both = config.fit_inputs == "both"
    dense = pruned.copy() if dense_errors or both else None
    bar = tqdm(range(len(walk.blocks)), desc=walk.label, disable=not progress)
    for i in bar:
        block = walk.blocks[i]
        home = _device_of(block, device)
        block.to(device)
        layers = walk.layers(i, block)
        dense_grams = {}
        if dense is not None:
            held = held_out if both else frozenset()
            hooks = GramHooks(layers, held) if i not in finished and layers else None
            dense.hidden = dense.run(block, hooks)
            if hooks:
                hooks.remove()
                dense_grams = hooks.grams
        if i in finished:
            saved = load_layer(out, i)
            for name, m in layers.items():
                m.weight.copy_(saved[f"{name}.weight"])
                masks[walk.weight_name(i, name)] = saved[f"{name}.mask"].cpu()
        elif layers:
            dense_weights = {n: m.weight.detach().clone() for n, m in layers.items()}
            try:
                tensors, block_reports = _prune_block(
                    i, block, layers, pruned, dense_grams, config, solver, bar, held_out
                )
            except BaseException as err:  # the block goes back to dense; finished ones stay
                for n, m in layers.items():
                    m.weight.copy_(dense_weights[n])
                block.to(home)
                if isinstance(err, BackendError):
                    raise BackendError(f"{err}; {_left(walk.label, i, out)}") from None
                raise
            reports += block_reports
            for name in layers:
                masks[walk.weight_name(i, name)] = tensors[f"{name}.mask"]
            if out is not None:
                save_layer(out, i, tensors)
                save_progress(out, config, reports)
        pruned.hidden = pruned.run(block)
        block.to(home)
        if on_block_done and i not in finished:
            on_block_done(i)
    return reports, masks


def _device_of(block: nn.Module, default: torch.device) -> torch.device:
    """Where a block's weights live (``default`` for a block without parameters)."""
    return next((p.device for p in block.parameters()), default)


def _check_finite_inputs(stream: Stream, label: str) -> None:
    if not all(bool(torch.isfinite(h).all()) for h in stream.hidden):
        raise FloatingPointError(
            f"the calibration inputs entering the first of the {label} hold NaN or inf; "
            "nothing was pruned"
        )


def _left(label: str, index: int, out: Path | None) -> str:
    """What a run that failed in block ``index`` leaves behind (``label``: the blocks' plural)."""
    kept = f"; {label} 0-{index - 1} are pruned" if index else ""
    if out is not None and index:
        kept += f" and saved in {out} (run the same command again to resume)"
    return f"{label.removesuffix('s')} {index} is dense again{kept}"


def _prune_block(
    index: int,
    block: nn.Module,
    layers: dict[str, nn.Module],
    stream: Stream,
    dense_grams: dict[str, Any],
    config: LayerwiseConfig,
    solver: BlockSolver | None,
    bar: Any,
    held_out: frozenset[int],
) -> tuple[dict[str, torch.Tensor], list[LayerReport]]:
    """Prune every given layer of one block in place; its weights and masks to save, and one
    report per layer. ``held_out``: the windows that choose the refit's damping, not fit it."""
    hooks = GramHooks(layers, held_out)
    stream.run(block, hooks)
    hooks.remove()
    for name, acc in hooks.grams.items():
        if not bool(torch.isfinite(acc.G).all()):
            raise FloatingPointError(
                f"the calibration inputs of {name} in block {index} hold NaN or inf"
            )
    fit = _pooled(hooks.grams, dense_grams) if config.fit_inputs == "both" else hooks.grams
    tensors: dict[str, torch.Tensor] = {}
    reports = []
    for j, (name, m) in enumerate(layers.items()):
        bar.set_postfix_str(name)
        start = time.perf_counter()
        rows = layer_rows(m)
        W0 = rows.matrix()
        acc = hooks.grams[name]
        res = prune_matrix(
            LayerInput(W0, fit[name], config.seed + 1000 * index + j, name), config, solver
        )
        check_mask(res.mask, config.guaranteed_pattern())
        rows.write(res.weights)
        tensors[f"{name}.weight"] = m.weight.detach().cpu().contiguous()
        tensors[f"{name}.mask"] = rows.param_mask(res.mask).cpu()
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
                regularisation=res.regularisation,
            )
        )
    return tensors, reports


def _pooled(
    pruned: dict[str, GramAccumulator], dense: dict[str, GramAccumulator]
) -> dict[str, GramAccumulator]:
    """Each layer's accumulator over both streams' inputs; layers that share one in the pruned
    stream (q/k/v, gate/up) share the pooled one, so its derived matrices are computed once."""
    pooled: dict[int, GramAccumulator] = {}
    for name, acc in pruned.items():
        if id(acc) not in pooled:
            pooled[id(acc)] = acc.pooled(dense[name])
    return {name: pooled[id(acc)] for name, acc in pruned.items()}
