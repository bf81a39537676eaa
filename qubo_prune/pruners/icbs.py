"""The iCBS loop on a model's loss (objective 1): pick a block, build its QUBO, solve, swap.

Every setting lives once, in the frozen :class:`ICBSConfig`, validated when it is made, before
the model is touched; a run that fails puts the dense weights back, and a run with
``checkpoint=`` saves its masks after every step and resumes from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from qubo_prune.backends.cost import CostEstimate
from qubo_prune.backends.gate import admit
from qubo_prune.backends.registry import BackendError, SolveFailed, get_backend, get_spec
from qubo_prune.core.block import Block
from qubo_prune.core.choices import check_choice, close_matches
from qubo_prune.core.masks import MaskState
from qubo_prune.core.scores import (
    GRANULARITIES,
    SCORES,
    initial_mask,
    input_norms,
    score,
    validate_density,
)
from qubo_prune.core.step import Move, step
from qubo_prune.objectives.loss import HESSIANS, LossObjective
from qubo_prune.pruners.checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
from qubo_prune.pruners.selection import SELECTIONS, TENSOR_CHOICES, BlockSelector
from qubo_prune.pruners.validation import (
    check_block_memory,
    check_finite_gradients,
    check_finite_weights,
    resolve_tensors,
)

__all__ = ["ICBSConfig", "ICBSPruner", "PruneResult", "StepRecord"]


@dataclass(frozen=True)
class ICBSConfig:
    """Every setting that decides the masks of an iCBS run on a model's loss.

    Args:
        density: fraction of each pruned tensor's weights that stay, in (0, 1).
        solver: registered backend name (``qubo-prune solvers`` lists them).
        solver_options: backend options (sampler parameters, ``penalty``, ``warm_start``...).
        block_size: weights per block; ``pruned_fraction`` of them pruned before the step.
        init: score of the initial mask (``magnitude``, ``wanda``, ``gradient``, ``random``),
            per ``granularity`` (``tensor`` or ``row``).
        selection: score that picks the most doubtful weights (or ``random``).
        hessian: ``fisher`` (per-sample gradients), ``gauss-newton`` or ``exact`` (autograd).
        ridge, gradient_scale: ``ridge ||delta||^2`` term and multiplier of the gradient term.
        tabu_fraction, fixed_prune, fixed_keep, tensor_choice: see :class:`BlockSelector`;
            the defaults (with ``gradient_scale=0.75``) are the paper's garment configuration,
            with steps spread over tensors in proportion to their size.
        epochs, steps_per_epoch: the run has ``epochs * steps_per_epoch`` steps.
        samples_per_step: data samples drawn for each step's gradient and Hessian.
        check_loss: apply an accepted swap only if the loss measured on an independent batch
            does not rise (the quadratic model is a second-order approximation; large swaps
            can be mispredicted). The predicted and measured changes are both recorded.
        check_samples: size of that independent batch (a forward pass is cheap; a large batch
            keeps the noise of the measurement below the size of a step's gain).
    """

    density: float
    solver: str = "neal"
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    block_size: int = 1024
    pruned_fraction: float = 0.5
    init: str = "magnitude"
    granularity: str = "tensor"
    selection: str = "gradient"
    hessian: str = "fisher"
    ridge: float = 1e-3
    gradient_scale: float = 0.75
    tabu_fraction: float = 0.4
    fixed_prune: float = 0.42
    fixed_keep: float = 0.35
    tensor_choice: str = "proportional"
    epochs: int = 10
    steps_per_epoch: int = 3
    samples_per_step: int = 1024
    seed: int = 0
    check_loss: bool = True
    check_samples: int = 8192

    def __post_init__(self) -> None:
        object.__setattr__(self, "density", validate_density(self.density))
        object.__setattr__(self, "solver_options", dict(self.solver_options))
        check_choice("init score", self.init, SCORES)
        check_choice("granularity", self.granularity, GRANULARITIES)
        check_choice("selection", self.selection, SELECTIONS)
        check_choice("Hessian method", self.hessian, HESSIANS)
        check_choice("tensor choice", self.tensor_choice, TENSOR_CHOICES)
        for label in ("epochs", "steps_per_epoch", "samples_per_step", "block_size"):
            object.__setattr__(self, label, int(getattr(self, label)))
            if getattr(self, label) < 1:
                raise ValueError(f"{label} must be >= 1, got {getattr(self, label)}")
        self.selector()  # the selector's own checks (fractions, block size)

    @classmethod
    def from_settings(cls, density: float, **settings: Any) -> ICBSConfig:
        """``ICBSConfig(density, **settings)`` with a close match suggested for a wrong name."""
        known = {f.name for f in fields(cls)}
        for name in settings:
            if name not in known:
                raise ValueError(f"unknown iCBS setting {name!r}.{close_matches(name, known)}")
        return cls(density, **settings)

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def selector(self) -> BlockSelector:
        return BlockSelector(
            self.block_size,
            self.pruned_fraction,
            self.tabu_fraction,
            self.fixed_prune,
            self.fixed_keep,
            self.tensor_choice,
            rng=np.random.default_rng(self.seed),
        )

    def settings(self) -> dict[str, Any]:
        """Every setting as plain data (what a checkpoint records)."""
        return asdict(self)


@dataclass
class StepRecord:
    """What one step did, in the objective's units; ``k`` counts the block's pruned weights
    over all its cardinality groups."""

    step: int
    tensor: str
    n: int
    k: int
    energy_before: float
    energy_after: float
    accepted: bool
    repaired: bool
    feasible_fraction: float
    swapped: int
    solve_seconds: float
    step_seconds: float
    measured_change: float = float("nan")
    error: str = ""


@dataclass
class PruneResult:
    """The masks (beside the weights, in ``state``), the step history and recorded blocks."""

    state: MaskState
    history: list[StepRecord] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def accepted_steps(self) -> int:
        return sum(r.accepted for r in self.history)


@dataclass
class _Run:
    """What one ``prune`` call works with: the model, its loss and data, and the loop's state."""

    model: nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    X: torch.Tensor
    y: torch.Tensor
    norms: dict[str, torch.Tensor]
    state: MaskState
    objective: LossObjective
    result: PruneResult
    rng: np.random.Generator
    fingerprint: str = ""

    def scores(self, kind: str, name: str, idx: torch.Tensor | None = None, gen=None):
        """Scores of tensor ``name`` (gradient scores on the samples ``idx``)."""
        grad = None
        if kind == "gradient":
            X, y = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
            param = dict(self.model.named_parameters())[name]
            (grad,) = torch.autograd.grad(self.loss_fn(self.model(X), y), [param])
        dense = self.state.dense[name]
        return score(kind, dense, input_norm=self.norms.get(name), grad=grad, generator=gen)


class ICBSPruner:
    """iCBS with any registered solver: the settings of :class:`ICBSConfig` plus how to run.

    Run options (not part of the config): ``checkpoint`` (file where masks are saved after
    every step, and resumed from), ``record_blocks`` (keep every block, for ``qubo-prune
    compare``), ``max_cost`` (USD a paid solver may spend; a paid solver without it, or with an
    estimate above it, is refused before anything is sent), ``dry_run`` (build and price every
    block, send nothing, leave the model dense) and ``progress``.
    """

    def __init__(
        self,
        density: float,
        solver: str = "neal",
        solver_options: Mapping[str, Any] | None = None,
        *,
        checkpoint: str | Path | None = None,
        record_blocks: bool = False,
        max_cost: float | None = None,
        dry_run: bool = False,
        progress: bool = True,
        **settings: Any,
    ):
        config = ICBSConfig.from_settings(
            density, solver=solver, solver_options=dict(solver_options or {}), **settings
        )
        self.config = config
        # Checked and priced before any backend is built: a QPU client contacts its service.
        self.cost: CostEstimate = admit(
            solver, config.solver_options, config.steps, max_cost, dry_run
        )
        get_spec(solver).check_size(config.block_size, config.solver_options)
        self.backend = None if dry_run else get_backend(solver, **config.solver_options)
        self.dry_run = dry_run
        self.selector = config.selector()
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.record_blocks = record_blocks
        self.progress = progress

    @property
    def steps(self) -> int:
        return self.config.steps

    def check_model(self, model: nn.Module, tensors: list[str] | None = None) -> list[str]:
        """The tensors to prune, each checked: it exists, its weights are finite and its blocks
        fit in memory. Needs the model's shapes only, so it can run before any data loads."""
        names = resolve_tensors(model, tensors)
        check_finite_weights(model)
        params = dict(model.named_parameters())
        check_block_memory(min(self.config.block_size, max(params[n].numel() for n in names)))
        return names

    def prune(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        X: torch.Tensor,
        y: torch.Tensor,
        tensors: list[str] | None = None,
        epoch_callback: Callable[[int, MaskState], None] | None = None,
    ) -> PruneResult:
        """Prune ``tensors`` (default: every ``nn.Linear`` weight) of ``model`` in place."""
        c = self.config
        names = self.check_model(model, tensors)
        if len(X) != len(y) or len(X) == 0:
            raise ValueError("X and y must hold the same, non-zero number of samples")
        if not bool(torch.isfinite(X).all()):
            raise FloatingPointError("the input data X hold NaN or inf values; nothing was pruned")
        first = slice(0, c.samples_per_step)
        check_finite_gradients(model, loss_fn, X[first], y[first], names)
        needs_norms = "wanda" in (c.init, c.selection)
        norms = input_norms(model, X, names) if needs_norms else {}
        state = MaskState(model, names)
        objective = LossObjective(model, loss_fn, c.hessian, c.ridge, c.gradient_scale)
        result = PruneResult(state=state)
        rng = np.random.default_rng(c.seed + 1)
        run = _Run(model, loss_fn, X, y, norms, state, objective, result, rng)
        run.fingerprint = run_fingerprint(
            self._settings(names), [*(state.dense[n] for n in names), X, y]
        )
        start = time.perf_counter()
        try:
            done = self._start(run)
            bar = tqdm(
                range(done, self.steps),
                initial=done,
                total=self.steps,
                desc=f"iCBS d={c.density:g} [{c.solver}]",
                disable=not self.progress,
                leave=False,
            )
            for i in bar:
                record = self._step(i, run)
                run.result.history.append(record)
                bar.set_postfix(
                    accepted=run.result.accepted_steps,
                    dE=f"{record.energy_after - record.energy_before:.2e}",
                )
                self._save(i + 1, run)
                if epoch_callback and (i + 1) % c.steps_per_epoch == 0:
                    epoch_callback((i + 1) // c.steps_per_epoch, state)
        except BackendError as err:  # a solver that cannot go on: say what is left
            state.restore_dense()
            raise BackendError(f"{err}; {self._left(len(run.result.history))}") from None
        except BaseException:
            state.restore_dense()
            raise
        run.result.seconds = time.perf_counter() - start
        if self.dry_run:
            state.restore_dense()
        return run.result

    def _left(self, done: int) -> str:
        """What a failed run leaves: the model dense again, and the checkpoint if any."""
        if self.checkpoint is not None and self.checkpoint.exists() and not self.dry_run:
            return (
                f"the model's dense weights are back; the {done} finished steps are in "
                f"{self.checkpoint} (run again to resume)"
            )
        return "the model's dense weights are back"

    def _start(self, run: _Run) -> int:
        """Initial masks and fixed sets, or everything from the checkpoint; returns first step."""
        c = self.config
        saved = load_checkpoint(self.checkpoint, run.fingerprint, self._settings(run.state.names))
        if saved is not None:
            for name in run.state.names:
                run.state.set_mask(name, saved["pruned"][name])
            self.selector.load_state_dict(saved["selector"])
            run.rng.bit_generator.state = saved["rng"]
            run.result.history = [StepRecord(**r) for r in saved["history"]]
            return int(saved["step"])
        gen = torch.Generator().manual_seed(c.seed)
        idx = torch.arange(min(c.samples_per_step, len(run.X)))
        scores = {n: run.scores(c.init, n, idx, gen) for n in run.state.names}
        for name in run.state.names:
            run.state.set_mask(name, initial_mask(scores[name], c.density, c.granularity))
        self.selector.fix(run.state.pruned, scores)
        return 0

    def _batches(self, run: _Run) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample indices to build the step on, and independent ones to check it on."""
        c = self.config
        size = min(c.samples_per_step, len(run.X))
        extra = min(c.check_samples, len(run.X) - size) if c.check_loss else 0
        idx = torch.as_tensor(run.rng.choice(len(run.X), size=size + extra, replace=False))
        return idx[:size], idx[size:] if extra > 0 else idx

    def _step(self, i: int, run: _Run) -> StepRecord:
        t0 = time.perf_counter()
        c, state = self.config, run.state
        build, check = self._batches(run)
        name = self.selector.choose_tensor(state.pruned)
        sel = None if c.selection == "random" else run.scores(c.selection, name, build)
        coords = self.selector.select(name, state.pruned[name], sel)
        at = torch.as_tensor(coords)
        w0 = state.dense[name].reshape(-1)[at].double().numpy()
        current = state.pruned[name].reshape(-1)[at].numpy().astype(np.int8)
        block = run.objective.block(name, coords, w0, current, run.X[build], run.y[build])
        t1 = time.perf_counter()
        error = ""
        try:  # a dry run (no backend) builds and prices the block but sends nothing
            [move] = step([block], self.backend)
        except SolveFailed as err:  # a failed or cancelled task leaves the block unchanged
            [move], error = step([block], None), str(err)
        solve_seconds = time.perf_counter() - t1
        decision, measured = self._apply(move, run, check)
        if self.record_blocks:
            run.result.blocks.append(block)
        return StepRecord(
            step=i,
            tensor=name,
            n=block.n,
            k=sum(block.k),
            energy_before=decision.current_energy,
            energy_after=decision.energy,
            accepted=decision.accepted,
            repaired=decision.repaired,
            feasible_fraction=decision.feasible_fraction,
            swapped=len(decision.swap(block)[0]),
            solve_seconds=solve_seconds,
            step_seconds=time.perf_counter() - t0,
            measured_change=measured,
            error=error,
        )

    def _apply(self, move: Move, run: _Run, check: torch.Tensor):
        """Apply the move; with ``check_loss`` take it back if the measured loss rises."""
        name, (to_prune, to_restore) = move.block.tensor, (move.to_prune, move.to_restore)
        if not (move.decision.accepted and self.config.check_loss):
            run.state.apply_swap(name, to_prune, to_restore)
            return move.decision, float("nan")
        Xc, yc = run.X[check], run.y[check]
        with torch.no_grad():
            before = run.loss_fn(run.model(Xc), yc).item()
            run.state.apply_swap(name, to_prune, to_restore)
            measured = run.loss_fn(run.model(Xc), yc).item() - before
        if measured > 0:  # the quadratic model mispredicted this swap: take it back
            run.state.apply_swap(name, to_restore, to_prune)
            return move.decision.rejected(move.block), measured
        return move.decision, measured

    def _settings(self, names: list[str]) -> dict[str, Any]:
        return {**self.config.settings(), "tensors": list(names)}

    def _save(self, done: int, run: _Run) -> None:
        if self.checkpoint is None or self.dry_run:  # a dry run leaves nothing to resume
            return
        state = {
            "step": done,
            "pruned": run.state.pruned,
            "selector": self.selector.state_dict(),
            "rng": run.rng.bit_generator.state,
            "history": [asdict(r) for r in run.result.history],
        }
        save_checkpoint(self.checkpoint, run.fingerprint, self._settings(run.state.names), state)
