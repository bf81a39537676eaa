"""The iCBS loop: pick a block, build its QUBO, solve it with any backend, apply the swap.

Everything is validated before the model is touched; a run that fails puts the dense weights
back, and a run with ``checkpoint=`` saves its masks after every step and resumes from them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dimod
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from qubo_prune.block import Block
from qubo_prune.cost import CostEstimate, check_budget, estimate_block_cost
from qubo_prune.decode import decide
from qubo_prune.loss_objective import HESSIANS, LossObjective
from qubo_prune.masks import MaskState
from qubo_prune.registry import Backend, BackendError, get_backend, get_spec
from qubo_prune.scores import GRANULARITIES, SCORES, initial_mask, score, validate_density
from qubo_prune.selection import SELECTIONS, TENSOR_CHOICES, BlockSelector
from qubo_prune.validation import check_choice, check_finite_gradients, resolve_tensors

__all__ = ["ICBSPruner", "PruneResult", "StepRecord", "input_norms"]


@dataclass
class StepRecord:
    """What one step did, in the objective's units."""

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


def input_norms(
    model: nn.Module, X: torch.Tensor, names: list[str], batch_size: int = 1024
) -> dict[str, torch.Tensor]:
    """``||X_col||_2`` of the inputs reaching each ``nn.Linear`` weight ``names`` (for Wanda)."""
    modules = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for name in names:
        module = modules.get(name.rpartition(".")[0])
        if not isinstance(module, nn.Linear) or not name.endswith("weight"):
            raise ValueError(f"Wanda scores need an nn.Linear weight; {name!r} is not one")

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: Any, key: str = name):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
            sums[key] = sums.get(key, 0) + (x**2).sum(0)

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                model(X[start : start + batch_size])
    finally:
        for h in hooks:
            h.remove()
    return {k: v.sqrt().float() for k, v in sums.items()}


class ICBSPruner:
    """iCBS with any registered solver; parameters are validated here, once.

    Args:
        density: fraction of each pruned tensor's weights that stay, in (0, 1).
        solver: registered backend name (``qubo-prune solvers`` lists them).
        solver_options: backend options (sampler parameters, ``penalty``, ``warm_start``...).
        block_size: weights per block; ``pruned_fraction`` of them pruned before the step.
        init: score of the initial mask (``magnitude``, ``wanda``, ``gradient``, ``random``),
            per ``granularity`` (``tensor`` or ``row``).
        selection: score that picks the most doubtful weights (or ``random``).
        hessian: ``fisher`` (per-sample gradients) or ``exact`` (autograd on the block).
        ridge, gradient_scale: ``ridge ||delta||^2`` term and multiplier of the gradient term.
        tabu_fraction, fixed_prune, fixed_keep, tensor_choice: see :class:`BlockSelector`;
            the defaults (with ``gradient_scale=0.75``) are the paper's garment configuration,
            with steps spread over tensors in proportion to their size.
        epochs, steps_per_epoch: the run has ``epochs * steps_per_epoch`` steps.
        samples_per_step: data samples drawn for each step's gradient and Hessian.
        checkpoint: file where masks are saved after every step, and resumed from.
        record_blocks: keep every block (for ``qubo-prune compare``).
        check_loss: apply an accepted swap only if the loss measured on an independent batch
            does not rise (the quadratic model is a second-order approximation; large swaps
            can be mispredicted). The predicted and measured changes are both recorded.
        check_samples: size of that independent batch (a forward pass is cheap; a large batch
            keeps the noise of the measurement below the size of a step's gain).
        max_cost: USD the run may spend on a paid solver; a paid solver without it, or with an
            estimate above it, is refused before anything is sent.
        dry_run: build and price every block, send nothing, and leave the model dense.
    """

    def __init__(
        self,
        density: float,
        solver: str = "neal",
        solver_options: Mapping[str, Any] | None = None,
        *,
        block_size: int = 1024,
        pruned_fraction: float = 0.5,
        init: str = "magnitude",
        granularity: str = "tensor",
        selection: str = "gradient",
        hessian: str = "fisher",
        ridge: float = 1e-3,
        gradient_scale: float = 0.75,
        tabu_fraction: float = 0.4,
        fixed_prune: float = 0.42,
        fixed_keep: float = 0.35,
        tensor_choice: str = "proportional",
        epochs: int = 10,
        steps_per_epoch: int = 3,
        samples_per_step: int = 1024,
        seed: int = 0,
        checkpoint: str | Path | None = None,
        record_blocks: bool = False,
        check_loss: bool = True,
        check_samples: int = 8192,
        max_cost: float | None = None,
        dry_run: bool = False,
        progress: bool = True,
    ):
        self.density = validate_density(density)
        check_choice("init score", init, SCORES)
        check_choice("granularity", granularity, GRANULARITIES)
        check_choice("selection", selection, SELECTIONS)
        check_choice("Hessian method", hessian, HESSIANS)
        check_choice("tensor choice", tensor_choice, TENSOR_CHOICES)
        for label, v in [
            ("epochs", epochs),
            ("steps_per_epoch", steps_per_epoch),
            ("samples_per_step", samples_per_step),
        ]:
            if int(v) < 1:
                raise ValueError(f"{label} must be >= 1, got {v}")
        options = dict(solver_options or {})
        # Priced before any backend is built: building a QPU client already contacts the service.
        self.cost: CostEstimate = check_budget(
            [estimate_block_cost(solver, options)] * int(epochs) * int(steps_per_epoch),
            math.inf if dry_run else max_cost,
        )
        self.dry_run = dry_run
        spec = get_spec(solver)
        Backend(spec, None, options).check_size(int(block_size))
        self.backend: Backend | None = None if dry_run else get_backend(solver, **options)
        self.selector = BlockSelector(
            block_size,
            pruned_fraction,
            tabu_fraction,
            fixed_prune,
            fixed_keep,
            tensor_choice,
            rng=np.random.default_rng(seed),
        )
        self.params = dict(
            density=self.density,
            solver=solver,
            solver_options=dict(solver_options or {}),
            block_size=int(block_size),
            pruned_fraction=pruned_fraction,
            init=init,
            granularity=granularity,
            selection=selection,
            hessian=hessian,
            ridge=ridge,
            gradient_scale=gradient_scale,
            tabu_fraction=tabu_fraction,
            fixed_prune=fixed_prune,
            fixed_keep=fixed_keep,
            tensor_choice=tensor_choice,
            epochs=int(epochs),
            steps_per_epoch=int(steps_per_epoch),
            samples_per_step=int(samples_per_step),
            seed=int(seed),
            check_loss=bool(check_loss),
            check_samples=int(check_samples),
        )
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.record_blocks = record_blocks
        self.progress = progress

    @property
    def steps(self) -> int:
        return self.params["epochs"] * self.params["steps_per_epoch"]

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
        p = self.params
        names = resolve_tensors(model, tensors)
        if len(X) != len(y) or len(X) == 0:
            raise ValueError("X and y must hold the same, non-zero number of samples")
        check_finite_gradients(
            model, loss_fn, X[: p["samples_per_step"]], y[: p["samples_per_step"]], names
        )
        needs_norms = "wanda" in (p["init"], p["selection"])
        norms = input_norms(model, X, names) if needs_norms else {}

        state = MaskState(model, names)
        objective = LossObjective(model, loss_fn, p["hessian"], p["ridge"], p["gradient_scale"])
        rng = np.random.default_rng(p["seed"] + 1)
        result = PruneResult(state=state)
        start = time.perf_counter()
        try:
            first = self._start(state, model, loss_fn, X, y, norms, result, rng)
            bar = tqdm(
                range(first, self.steps),
                initial=first,
                total=self.steps,
                desc=f"iCBS d={self.density:g} [{p['solver']}]",
                disable=not self.progress,
                leave=False,
            )
            for step in bar:
                # the swap is built on one batch and checked on an independent one
                size = min(p["samples_per_step"], len(X))
                extra = min(p["check_samples"], len(X) - size) if p["check_loss"] else 0
                total = size + extra
                idx = torch.as_tensor(rng.choice(len(X), size=total, replace=False))
                build, check = idx[:size], idx[size:] if extra > 0 else idx
                record = self._step(
                    step,
                    state,
                    objective,
                    model,
                    loss_fn,
                    X[build],
                    y[build],
                    norms,
                    result,
                    (X[check], y[check]),
                )
                result.history.append(record)
                bar.set_postfix(
                    accepted=result.accepted_steps,
                    dE=f"{record.energy_after - record.energy_before:.2e}",
                )
                self._save(step + 1, state, result, rng)
                if epoch_callback and (step + 1) % p["steps_per_epoch"] == 0:
                    epoch_callback((step + 1) // p["steps_per_epoch"], state)
        except BaseException:
            state.restore_dense()
            raise
        result.seconds = time.perf_counter() - start
        if self.dry_run:
            state.restore_dense()
        return result

    def _scores(
        self,
        kind: str,
        state: MaskState,
        name: str,
        norms: dict[str, torch.Tensor],
        model: nn.Module,
        loss_fn: Callable,
        X: torch.Tensor,
        y: torch.Tensor,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        grad = _loss_grad(model, loss_fn, X, y, name) if kind == "gradient" else None
        return score(kind, state.dense[name], input_norm=norms.get(name), grad=grad, generator=gen)

    def _start(
        self,
        state: MaskState,
        model: nn.Module,
        loss_fn: Callable,
        X: torch.Tensor,
        y: torch.Tensor,
        norms: dict[str, torch.Tensor],
        result: PruneResult,
        rng: np.random.Generator,
    ) -> int:
        """Initial masks and fixed sets, or everything from the checkpoint; returns first step."""
        p = self.params
        saved = self._load()
        if saved is not None:
            for name in state.names:
                state.set_mask(name, saved["pruned"][name])
            self.selector.fixed, self.selector.tabu = saved["fixed"], saved["tabu"]
            self.selector._turn = saved["turn"]
            self.selector.rng.bit_generator.state = saved["selector_rng"]
            rng.bit_generator.state = saved["rng"]
            result.history = [StepRecord(**r) for r in saved["history"]]
            return int(saved["step"])
        gen = torch.Generator().manual_seed(p["seed"])
        n0 = min(p["samples_per_step"], len(X))
        scores = {
            n: self._scores(p["init"], state, n, norms, model, loss_fn, X[:n0], y[:n0], gen)
            for n in state.names
        }
        for name in state.names:
            state.set_mask(name, initial_mask(scores[name], self.density, p["granularity"]))
        self.selector.fix(state.pruned, scores)
        return 0

    def _step(
        self,
        step: int,
        state: MaskState,
        objective: LossObjective,
        model: nn.Module,
        loss_fn: Callable,
        X: torch.Tensor,
        y: torch.Tensor,
        norms: dict[str, torch.Tensor],
        result: PruneResult,
        check: tuple[torch.Tensor, torch.Tensor],
    ) -> StepRecord:
        t0 = time.perf_counter()
        p = self.params
        name = self.selector.choose_tensor(state.pruned)
        sel = None
        if p["selection"] != "random":
            sel = self._scores(p["selection"], state, name, norms, model, loss_fn, X, y)
        coords = self.selector.select(name, state.pruned[name], sel)
        w0 = state.dense[name].reshape(-1)[torch.as_tensor(coords)].double().numpy()
        current = state.pruned[name].reshape(-1)[torch.as_tensor(coords)].numpy().astype(np.int8)
        block = objective.block(name, coords, w0, current, X, y)
        t1 = time.perf_counter()
        error = ""
        if self.backend is None:  # dry run: the block is built and priced, never sent
            sampleset = dimod.SampleSet.from_samples([], dimod.BINARY, [])
        else:
            try:
                sampleset = self.backend.solve(block)
            except BackendError as err:  # a failed or cancelled task leaves the block unchanged
                sampleset, error = dimod.SampleSet.from_samples([], dimod.BINARY, []), str(err)
        solve_seconds = time.perf_counter() - t1
        decision = decide(block, sampleset)
        to_prune, to_restore = decision.swap(block)
        measured = float("nan")
        if decision.accepted and self.params["check_loss"]:
            with torch.no_grad():
                before = loss_fn(model(check[0]), check[1]).item()
                state.apply_swap(name, coords[to_prune], coords[to_restore])
                measured = loss_fn(model(check[0]), check[1]).item() - before
            if measured > 0:  # the quadratic model mispredicted this swap: take it back
                state.apply_swap(name, coords[to_restore], coords[to_prune])
                decision = decision.rejected(block)
                to_prune = to_restore = to_prune[:0]
        else:
            state.apply_swap(name, coords[to_prune], coords[to_restore])
        if self.record_blocks:
            result.blocks.append(block)
        return StepRecord(
            step=step,
            tensor=name,
            n=block.n,
            k=block.k[0],
            energy_before=decision.current_energy,
            energy_after=decision.energy,
            accepted=decision.accepted,
            repaired=decision.repaired,
            feasible_fraction=decision.feasible_fraction,
            swapped=len(to_prune),
            solve_seconds=solve_seconds,
            step_seconds=time.perf_counter() - t0,
            measured_change=measured,
            error=error,
        )

    def _fingerprint(self) -> str:
        return hashlib.sha256(
            json.dumps(self.params, sort_keys=True, default=str).encode()
        ).hexdigest()

    def _save(
        self, step: int, state: MaskState, result: PruneResult, rng: np.random.Generator
    ) -> None:
        if self.checkpoint is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save(
            {
                "fingerprint": self._fingerprint(),
                "step": step,
                "pruned": state.pruned,
                "fixed": self.selector.fixed,
                "tabu": self.selector.tabu,
                "turn": self.selector._turn,
                "selector_rng": self.selector.rng.bit_generator.state,
                "rng": rng.bit_generator.state,
                "history": [asdict(r) for r in result.history],
            },
            tmp,
        )
        tmp.replace(self.checkpoint)

    def _load(self) -> dict[str, Any] | None:
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        saved = torch.load(self.checkpoint, weights_only=False)
        if saved.get("fingerprint") != self._fingerprint():
            raise ValueError(
                f"checkpoint {self.checkpoint} was written by a run with other settings; "
                "remove it or choose another checkpoint path"
            )
        return saved


def _loss_grad(
    model: nn.Module, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor, name: str
) -> torch.Tensor:
    """Gradient of the loss with respect to one parameter, at the current weights."""
    param = dict(model.named_parameters())[name]
    loss = loss_fn(model(X), y)
    (g,) = torch.autograd.grad(loss, [param])
    return g
