"""The per-layer methods a layer-walking pipeline can apply, by name, and their one config.

A method takes one linear layer's dense weight ``(out, in)`` and its calibration Gram matrix and
returns a :class:`MatrixResult`. The pipelines (LLM decoder layers, and any other model walked
layer by layer) look methods up in :data:`LAYER_METHODS` and never branch on their names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from qubo_prune.core.choices import check_choice, check_counts
from qubo_prune.core.patterns import Pattern, parse_pattern
from qubo_prune.core.step import BlockSolver
from qubo_prune.objectives.reconstruction import GramAccumulator
from qubo_prune.objectives.regularisation import choose_damping, damped
from qubo_prune.pruners.admm import admm_layer, alps_layer
from qubo_prune.pruners.baselines import BASELINES
from qubo_prune.pruners.layerwise import RefitSchedule, icbs_layer, refit_layer

__all__ = [
    "FIT_INPUTS",
    "LAYER_METHODS",
    "PRECISIONS",
    "STARTS",
    "LayerInput",
    "LayerwiseConfig",
    "MatrixResult",
    "prune_matrix",
]

# per-layer rules: (W0, Gram, pattern, dtype) -> (W, mask)
RULES = {**BASELINES, "admm": admm_layer, "alps": alps_layer}
STARTS = ("wanda", "sparsegpt", "admm", "alps")  # the masks iCBS can start from
PRECISIONS = {"float32": torch.float32, "float64": torch.float64}
# whose inputs each layer is fitted to: the pruned model's (as SparseGPT), or those and the
# dense model's together (docs/benchmarks.md: lower error on dense inputs, perplexity as before)
FIT_INPUTS = ("pruned", "both")


@dataclass(frozen=True)
class LayerwiseConfig:
    """Everything that decides a layer's pruned weights (a resumed run must use the same)."""

    method: str = "wanda"
    sparsity: float = 0.5
    pattern: str = "unstructured"
    solver: str = "gpu-anneal"
    solver_options: dict[str, Any] = field(default_factory=dict)
    block_size: int = 64
    iterations: int = 4
    rows_per_batch: int = 4096
    refit: bool = False
    refit_iterations: tuple[int, int] = (2, 6)
    start: str = "wanda"
    precision: str = "float32"
    seed: int = 0
    refit_damping: float | str = 0.0
    held_out_windows: int = 8
    fit_inputs: str = "pruned"

    def __post_init__(self) -> None:
        check_choice("method", self.method, LAYER_METHODS)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("fit inputs", self.fit_inputs, FIT_INPUTS)
        self._check_damping()
        if self.start not in STARTS:
            raise ValueError(
                f"unknown start mask {self.start!r}; choose one of {', '.join(STARTS)}"
            )
        its = tuple(int(v) for v in self.refit_iterations)
        if len(its) != 2 or min(its) < 0:
            raise ValueError(
                "refit_iterations must be two counts >= 0 (per iCBS iteration, final), "
                f"got {self.refit_iterations!r}"
            )
        object.__setattr__(self, "refit_iterations", its)
        object.__setattr__(self, "solver_options", dict(self.solver_options))
        check_counts(
            ("--block-size", self.block_size, 2),
            ("--iterations", self.iterations, 1),
            ("--rows-per-batch", self.rows_per_batch, 1),
            ("--held-out-windows", self.held_out_windows, 1),
        )
        self.parsed_pattern()

    def _check_damping(self) -> None:
        """``refit_damping``: ``"auto"`` (chosen per layer on held-out windows) or a number >= 0;
        anything but 0 needs ``refit``, the weight update it regularises."""
        damping = self.refit_damping
        if damping != "auto":
            try:
                damping = float(damping)
            except (TypeError, ValueError):
                raise ValueError(
                    f"refit damping must be 'auto' or a number >= 0, got {damping!r}"
                ) from None
            if not damping >= 0:
                raise ValueError(f"refit damping must be 'auto' or a number >= 0, got {damping}")
            object.__setattr__(self, "refit_damping", damping)
        if damping != 0 and not self.refit:
            raise ValueError("--refit-damping regularises the refit: it needs --refit")

    def held_out(self, windows: int) -> frozenset[int]:
        """The calibration windows held back from fitting (evenly spread, so a mix of texts
        is held out in proportion); none unless the damping is chosen on them."""
        if self.refit_damping != "auto":
            return frozenset()
        held = self.held_out_windows
        if held >= windows:
            raise ValueError(
                f"--refit-damping auto holds out {held} of the {windows} calibration windows "
                "(batches): none would be left to fit (calibrate on more, or lower "
                "--held-out-windows)"
            )
        return frozenset((2 * i + 1) * windows // (2 * held) for i in range(held))

    @property
    def dtype(self) -> torch.dtype:
        """The precision of the layer-sized products (the Gram and the blocks stay float64)."""
        return PRECISIONS[self.precision]

    def refit_schedule(self) -> RefitSchedule | None:
        return RefitSchedule(*self.refit_iterations) if self.refit else None

    def parsed_pattern(self) -> Pattern:
        return parse_pattern(self.pattern, self.sparsity)

    def mask_rule(self) -> str:
        """The baseline whose rule chooses the first mask (iCBS refines its start's)."""
        return self.start if self.method == "icbs" else self.method

    def guaranteed_pattern(self) -> Pattern:
        """The counts every mask of this config keeps exactly.

        SparseGPT chooses unstructured masks per block of 128 columns and ADMM and ALPS per
        matrix: exact per layer, not per row (and iCBS keeps every row's count of its start mask).
        """
        pattern = self.parsed_pattern()
        if self.mask_rule() in ("sparsegpt", "admm", "alps") and pattern.kind == "row":
            return Pattern("layer", pattern.sparsity)
        return pattern

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON stores it (lists, not tuples), for reports and resume checks."""
        return asdict(self) | {"refit_iterations": list(self.refit_iterations)}


@dataclass(frozen=True)
class LayerInput:
    """One linear layer to prune: its dense weight ``(out, in)``, its calibration Gram, the
    seed of its random draws and its name (for the blocks it records)."""

    W0: torch.Tensor
    acc: GramAccumulator
    seed: int = 0
    name: str = ""


@dataclass
class MatrixResult:
    """One pruned ``(out, in)`` weight: before the refit (equal to ``weights`` without one),
    final weights, mask (True = pruned) and, for iCBS, what its iterations did."""

    before: torch.Tensor
    weights: torch.Tensor
    mask: torch.Tensor
    stats: dict[str, Any] | None = None
    regularisation: dict[str, Any] | None = None


LayerMethod = Callable[[LayerInput, LayerwiseConfig, "BlockSolver | None"], MatrixResult]


def _baseline(name: str) -> LayerMethod:
    rule = RULES[name]

    def method(
        layer: LayerInput, config: LayerwiseConfig, solver: BlockSolver | None
    ) -> MatrixResult:
        W, mask = rule(layer.W0, layer.acc, config.parsed_pattern(), config.dtype)
        final, choice = W, None
        if config.refit:
            acc, choice = _refit_gram(layer, config, mask, W)
            final = refit_layer(layer.W0, mask, acc, W, config.refit_iterations[1], config.dtype)
        return MatrixResult(W, final.to(layer.W0.dtype), mask, regularisation=choice)

    method.__doc__ = f"{name} mask (and least-squares refit with ``refit``)."
    return method


def _icbs(layer: LayerInput, config: LayerwiseConfig, solver: BlockSolver | None) -> MatrixResult:
    """iCBS from the start rule's mask; with ``refit`` the search targets the refit error."""
    if solver is None:
        raise ValueError("the icbs layer method needs a solver")
    pattern = config.parsed_pattern()
    W0 = layer.W0
    W, mask = RULES[config.start](W0, layer.acc, pattern, config.dtype)
    acc, choice = _refit_gram(layer, config, mask, W) if config.refit else (layer.acc, None)
    final, mask, stats = icbs_layer(
        W0,
        acc,
        mask,
        pattern,
        solver,
        block_size=config.block_size,
        iterations=config.iterations,
        rows_per_batch=config.rows_per_batch,
        seed=layer.seed,
        tensor=layer.name,
        refit_schedule=config.refit_schedule(),
        start_weights=W,
        dtype=config.dtype,
    )
    W0 = W0.to(mask.device)
    return MatrixResult(W0 * ~mask, final.to(W0.dtype), mask, asdict(stats), choice)


def _refit_gram(
    layer: LayerInput, config: LayerwiseConfig, mask: torch.Tensor, start: torch.Tensor
) -> tuple[GramAccumulator, dict[str, Any] | None]:
    """The Gram the refit (and iCBS's search with it) fits, damped as configured; with
    ``"auto"`` the damping is chosen on the held-out windows from the start mask's refit."""
    if config.refit_damping != "auto":
        return damped(layer.acc, config.refit_damping), None
    choice = choose_damping(
        layer.W0, mask, start, layer.acc, config.refit_iterations[1], config.dtype
    )
    return damped(layer.acc, choice.damping), asdict(choice)


LAYER_METHODS: dict[str, LayerMethod] = {
    "icbs": _icbs,
    **{name: _baseline(name) for name in RULES},
}


def prune_matrix(
    layer: LayerInput, config: LayerwiseConfig, solver: BlockSolver | None = None
) -> MatrixResult:
    """Prune one layer's weight with ``config.method``."""
    return LAYER_METHODS[config.method](layer, config, solver)
