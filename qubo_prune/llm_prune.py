"""Prune every linear layer inside a causal LM's decoder layers, one decoder layer at a time.

Like SparseGPT and Wanda: the calibration windows' hidden states enter decoder layer ``i``; one
forward pass with hooks accumulates each linear's Gram matrix ``G = U U^T``; the layer's linears
are pruned (iCBS on objective 2, Wanda, SparseGPT or magnitude); the PRUNED layer's outputs
become the next layer's inputs. Only one layer's activations are held at a time. Optionally a
second, dense stream gives each layer's error on the inputs the dense model would feed it (the
error docs/anchors.md reports). After every decoder layer its weights and masks are saved, so an
interrupted run resumes from the last finished layer. Embeddings and ``lm_head`` stay dense.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qubo_prune.patterns import Pattern, check_mask, parse_pattern, pattern_mask
from qubo_prune.reconstruction import GramAccumulator, icbs_layer, layer_error, refit_rows
from qubo_prune.sparsegpt import sparsegpt

__all__ = [
    "METHODS",
    "LayerReport",
    "PruneConfig",
    "attach_masks",
    "decoder_layers",
    "load_pruned",
    "prune_causal_lm",
    "save_pruned",
]

METHODS = ("icbs", "wanda", "sparsegpt", "magnitude")
STARTS = ("wanda", "sparsegpt")  # the mask iCBS starts from
PROGRESS = "progress.json"


@dataclass
class PruneConfig:
    """Everything that decides the pruned weights (a resumed run must use the same)."""

    method: str = "wanda"
    sparsity: float = 0.5
    pattern: str = "unstructured"
    solver: str = "neal"
    solver_options: dict[str, Any] = field(default_factory=dict)
    block_size: int = 64
    iterations: int = 4
    rows_per_batch: int = 512
    refit: bool = False
    start: str = "wanda"
    seed: int = 0

    def parsed_pattern(self) -> Pattern:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.start not in STARTS:
            raise ValueError(
                f"unknown start mask {self.start!r}; choose one of {', '.join(STARTS)}"
            )
        return parse_pattern(self.pattern, self.sparsity)

    def mask_rule(self) -> str:
        """The method whose rule chooses the first mask (iCBS refines its start's)."""
        return self.start if self.method == "icbs" else self.method


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


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of Llama/Mistral/Qwen (``model.layers``), GPT-2 (``transformer.h``), OPT."""
    for path in ("model.layers", "transformer.h", "model.decoder.layers"):
        obj: Any = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(
        f"{type(model).__name__} is not a supported causal LM: no model.layers, transformer.h "
        "or model.decoder.layers"
    )


def _is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")  # GPT-2: weight (in, out)


def linear_layers(layer: nn.Module) -> dict[str, nn.Module]:
    """Prunable linears of one decoder layer, in forward order of definition."""
    return {
        name: m
        for name, m in layer.named_modules()
        if name and (isinstance(m, nn.Linear) or _is_conv1d(m))
    }


def _matrix(module: nn.Module) -> torch.Tensor:
    """The weight as ``(out, in)`` (a view; GPT-2's Conv1D stores it transposed)."""
    return module.weight.T if _is_conv1d(module) else module.weight


class _GramHooks:
    """Forward pre-hooks accumulating each linear's input Gram; linears fed the same tensor
    (q/k/v, gate/up) share one accumulator, so each product is computed once."""

    def __init__(self, modules: dict[str, nn.Module]):
        self.grams: dict[str, GramAccumulator] = {}
        self._window: list[tuple[torch.Tensor, GramAccumulator]] = []
        self._handles = [m.register_forward_pre_hook(self._hook(n)) for n, m in modules.items()]

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]
            for seen, acc in self._window:
                if seen is x:
                    self.grams.setdefault(name, acc)
                    if self.grams[name] is acc:
                        return
            acc = self.grams.setdefault(name, GramAccumulator(x.shape[-1], x.device))
            acc.add(x)
            self._window.append((x, acc))

        return hook

    def next_window(self) -> None:
        self._window = []

    def remove(self) -> None:
        """Detach the hooks and bring the Grams to the CPU, where the pruning math runs."""
        for h in self._handles:
            h.remove()
        for acc in self.grams.values():
            acc.G = acc.G.cpu()


class _StopForward(Exception):
    pass


@dataclass
class _Stream:
    """Hidden states entering the current decoder layer, one per window, plus the layer's
    other call arguments (attention mask, position embeddings, ...), shared by all windows."""

    hidden: list[torch.Tensor]
    args: tuple
    kwargs: dict[str, Any]

    def run(self, layer: nn.Module, hooks: _GramHooks | None = None) -> list[torch.Tensor]:
        outs = []
        for h in self.hidden:
            if hooks:
                hooks.next_window()
            out = layer(h, *self.args, **self.kwargs)
            outs.append(out[0] if isinstance(out, tuple) else out)
        return outs


@torch.no_grad()
def _first_inputs(model: nn.Module, windows: torch.Tensor) -> _Stream:
    """Inputs of decoder layer 0 for every window: a pre-hook stores them and stops the forward."""
    first = decoder_layers(model)[0]
    device = next(model.parameters()).device
    caught: dict[str, Any] = {}

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        caught["args"], caught["kwargs"] = args, kwargs
        raise _StopForward

    handle = first.register_forward_pre_hook(hook, with_kwargs=True)
    hidden = []
    try:
        for ids in windows:
            try:
                model(ids[None, :].to(device), use_cache=False)
            except _StopForward:
                pass
            hidden.append(
                caught["args"][0] if caught["args"] else caught["kwargs"].pop("hidden_states")
            )
    finally:
        handle.remove()
    kwargs = {k: v for k, v in caught["kwargs"].items() if k != "hidden_states"}
    kwargs["use_cache"] = False
    kwargs.pop("past_key_values", None)
    kwargs.pop("past_key_value", None)
    kwargs.pop("layer_past", None)
    return _Stream(hidden, tuple(caught["args"][1:]), kwargs)


def _prune_matrix(
    W0: torch.Tensor,
    acc: GramAccumulator,
    config: PruneConfig,
    pattern: Pattern,
    backend: Any,
    seed: int,
    name: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any] | None]:
    """``(weights before refit, final weights, mask True = pruned, iCBS stats)`` of one
    ``(out, in)`` weight; without ``config.refit`` both weights are the same."""
    G = acc.G
    if config.mask_rule() == "sparsegpt":
        W, mask = sparsegpt(W0, G, acc.tokens, pattern)
        W = W.to(W0.dtype)
    elif config.method == "magnitude":
        mask = pattern_mask(W0.abs(), pattern)
        W = W0 * ~mask
    else:
        wanda = W0.abs().double() * G.diagonal().clamp(min=0).sqrt()
        mask = pattern_mask(wanda, pattern)
        W = W0 * ~mask
    if config.method == "icbs":  # with refit, the search itself targets the refit error
        final, mask, s = icbs_layer(
            W0,
            G,
            mask,
            pattern,
            backend,
            block_size=config.block_size,
            iterations=config.iterations,
            rows_per_batch=config.rows_per_batch,
            seed=seed,
            tensor=name,
            refit=config.refit,
            start_weights=W,
        )
        return W0 * ~mask, final.to(W0.dtype), mask, asdict(s)
    final = refit_rows(W0, mask, G, current=W) if config.refit else W
    return W, final.to(W0.dtype), mask, None


def _layer_file(out: Path, index: int) -> Path:
    return out / "layers" / f"layer_{index:03d}.safetensors"


def _load_progress(out: Path, config: PruneConfig) -> list[dict[str, Any]]:
    """Reports of finished layers of an earlier run with the same config (else none)."""
    path = out / PROGRESS
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    # options added since that run was saved take their defaults
    saved["config"] = asdict(PruneConfig(**saved["config"]))
    if saved["config"] != json.loads(json.dumps(asdict(config))):
        raise ValueError(
            f"{out} holds an interrupted run with other options ({saved['config']}); "
            "use the same options to resume or another --out"
        )
    return saved["reports"]


@torch.no_grad()
def prune_causal_lm(
    model: nn.Module,
    calibration: torch.Tensor,
    config: PruneConfig,
    out: str | Path | None = None,
    dense_errors: bool = True,
    progress: bool = True,
    on_layer_done: Callable[[int], None] | None = None,
) -> list[LayerReport]:
    """Prune ``model`` in place; returns one report per linear. ``out`` enables resume.

    ``calibration``: ``(windows, seqlen)`` token ids. Masks end up in ``model.pruning_masks``
    (parameter name -> bool, True = pruned), in each parameter's own layout.
    """
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    pattern = config.parsed_pattern()
    # SparseGPT chooses unstructured masks per block of 128 columns: exact per layer, not per row
    # (iCBS keeps every row's count of its start mask)
    unstructured_gpt = config.mask_rule() == "sparsegpt" and pattern.kind == "row"
    guaranteed = Pattern("layer", pattern.sparsity) if unstructured_gpt else pattern
    backend = None
    if config.method == "icbs":
        from qubo_prune.registry import get_backend

        backend = get_backend(config.solver, **config.solver_options)
    model.eval()
    out = Path(out) if out is not None else None
    done = _load_progress(out, config) if out else []
    finished = {r["layer"] for r in done}
    reports = [LayerReport(**r) for r in done]
    layers = decoder_layers(model)
    prefix = _layer_prefix(model, layers)
    masks: dict[str, torch.Tensor] = {}
    pruned = _first_inputs(model, calibration)
    dense = _Stream(list(pruned.hidden), pruned.args, pruned.kwargs) if dense_errors else None
    bar = tqdm(range(len(layers)), desc="decoder layers", disable=not progress)
    for i in bar:
        layer = layers[i]
        linears = linear_layers(layer)
        dense_grams = {}
        if dense is not None:
            hooks = _GramHooks(linears) if i not in finished else None
            dense.hidden = dense.run(layer, hooks)
            if hooks:
                hooks.remove()
                dense_grams = hooks.grams
        if i in finished:
            saved = load_file(str(_layer_file(out, i)))
            for name, m in linears.items():
                m.weight.copy_(saved[f"{name}.weight"])
                masks[f"{prefix}{i}.{name}.weight"] = saved[f"{name}.mask"]
            pruned.hidden = pruned.run(layer)
            continue
        hooks = _GramHooks(linears)
        pruned.run(layer, hooks)
        hooks.remove()
        tensors = {}
        for j, (name, m) in enumerate(linears.items()):
            bar.set_postfix_str(name)
            start = time.perf_counter()
            W0 = _matrix(m).detach().to("cpu", copy=True, memory_format=torch.contiguous_format)
            acc = hooks.grams[name]
            before, W, mask, stats = _prune_matrix(
                W0, acc, config, pattern, backend, config.seed + 1000 * i + j, name
            )
            check_mask(mask, guaranteed)
            mask_error = layer_error(W0, before, acc.G)
            _matrix(m).copy_(W)
            param_mask = mask.T.contiguous() if _is_conv1d(m) else mask
            masks[f"{prefix}{i}.{name}.weight"] = param_mask
            tensors[f"{name}.weight"] = m.weight.detach().cpu().contiguous()
            tensors[f"{name}.mask"] = param_mask
            reports.append(
                LayerReport(
                    layer=i,
                    name=name,
                    sparsity=float(mask.double().mean()),
                    error=layer_error(W0, W, acc.G),
                    mask_error=mask_error,
                    dense_error=layer_error(W0, W, dense_grams[name].G) if dense_grams else None,
                    seconds=time.perf_counter() - start,
                    icbs=stats,
                )
            )
        pruned.hidden = pruned.run(layer)
        if out is not None:
            _layer_file(out, i).parent.mkdir(parents=True, exist_ok=True)
            save_file(tensors, str(_layer_file(out, i)))
            state = {"config": asdict(config), "reports": [asdict(r) for r in reports]}
            (out / PROGRESS).write_text(json.dumps(state, indent=1))
        if on_layer_done:
            on_layer_done(i)
    model.pruning_masks = masks
    return reports


def _layer_prefix(model: nn.Module, layers: nn.ModuleList) -> str:
    """Parameter-name prefix of the decoder layers, e.g. ``model.layers.``."""
    for name, module in model.named_modules():
        if module is layers:
            return f"{name}."
    raise ValueError("decoder layers are not a submodule of the model")


def save_pruned(model: nn.Module, tokenizer: Any, out: str | Path) -> Path:
    """``out/model`` (save_pretrained, safetensors, tokenizer) and ``out/masks.safetensors``."""
    from safetensors.torch import save_file

    out = Path(out)
    model.save_pretrained(out / "model")
    if tokenizer is not None:
        tokenizer.save_pretrained(out / "model")
    save_file(
        {k: v.contiguous() for k, v in model.pruning_masks.items()}, str(out / "masks.safetensors")
    )
    return out


def load_pruned(out: str | Path) -> tuple[nn.Module, Any, dict[str, torch.Tensor]]:
    """A saved sparse checkpoint with its masks; fails if a pruned weight is not zero."""
    from safetensors.torch import load_file

    from qubo_prune.llm_model import load_causal_lm

    out = Path(out)
    if not (out / "masks.safetensors").exists():
        raise FileNotFoundError(f"{out} is not a pruned checkpoint (no masks.safetensors)")
    model, tokenizer = load_causal_lm(out / "model")
    masks = load_file(str(out / "masks.safetensors"))
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params or params[name].shape != mask.shape:
            raise ValueError(f"mask {name!r} does not match a parameter of the saved model")
        if bool(params[name].detach()[mask].ne(0).any()):
            raise ValueError(f"{name}: weights under the mask are not zero; checkpoint is damaged")
    model.pruning_masks = masks
    return model, tokenizer, masks


def attach_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Register the masks as ``torch.nn.utils.prune`` custom masks (1 = kept there)."""
    from torch.nn.utils import prune

    modules = dict(model.named_modules())
    for name, mask in masks.items():
        module_name, _, attr = name.rpartition(".")
        prune.custom_from_mask(modules[module_name], attr, ~mask)
