"""Solver quality block by block: the same recorded blocks, several backends, one report.

Each backend runs at its measured defaults unless told otherwise (``LABEL=SOLVER`` variants
with ``--solver-opt LABEL:key=value`` compare settings), so the comparison measures solvers,
not option choices. Each answer is scored against the best energy any run found for its block
(the exact optimum whenever ``exact`` could take it) with the figures of
:mod:`qubo_prune.backends.metrics`: the decoded answer's gap, the success probability per read
of reaching the best known energy, the time per read and the time to solution at 99%
confidence. With ``budgets`` every backend that has a work knob (``BackendSpec.budget``) also
runs at multiples of its default work, for the quality-vs-time plot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qubo_prune.apps.compare_report import write_report
from qubo_prune.apps.lock import locked
from qubo_prune.backends.gate import admit
from qubo_prune.backends.metrics import (
    gap,
    missed_improvement,
    success_probability,
    time_to_solution,
)
from qubo_prune.backends.registry import Backend, BackendError, get_backend, get_spec, parse_options
from qubo_prune.core.block import Block, load_blocks, save_blocks
from qubo_prune.core.decode import decide, sample_matrix

__all__ = [
    "compare_solvers",
    "per_solver_options",
    "record_garment_blocks",
    "solve_all",
    "split_solvers",
]


def split_solvers(entries: Sequence[str]) -> dict[str, str]:
    """``["neal", "neal-low=neal"]`` -> ``{"neal": "neal", "neal-low": "neal"}`` (label: solver)."""
    out = {}
    for entry in entries:
        label, _, name = entry.partition("=")
        if label in out:
            raise ValueError(f"solver label {label!r} appears twice; name variants LABEL=SOLVER")
        out[label] = name or label
    return out


def per_solver_options(pairs: Sequence[str], solvers: Sequence[str]) -> dict[str, dict]:
    """``["neal:num_reads=20"]`` -> ``{"neal": {"num_reads": 20}}``; solver names are checked."""
    out: dict[str, list[str]] = {s: [] for s in solvers}
    for pair in pairs:
        name, sep, rest = pair.partition(":")
        if not sep:
            raise BackendError(f"--solver-opt {pair!r} must look like SOLVER:key=value")
        if name not in out:
            raise BackendError(f"--solver-opt names {name!r}, which is not among --solvers")
        out[name].append(rest)
    return {s: parse_options(v) for s, v in out.items()}


def record_garment_blocks(path: Path, block_size: int, count: int, seed: int = 0) -> list[Block]:
    """Record ``count`` real blocks from an iCBS run on the garment classifier (density 0.2)."""
    from torch.nn import functional as F

    from qubo_prune.apps.garment import load_fashion_mnist, trained_classifier
    from qubo_prune.pruners.icbs import ICBSPruner

    data = load_fashion_mnist()
    model = trained_classifier(data, seed=seed)
    pruner = ICBSPruner(
        0.2,
        "neal",
        block_size=block_size,
        epochs=count,
        steps_per_epoch=1,
        seed=seed,
        record_blocks=True,
        progress=False,
    )
    result = pruner.prune(model, F.cross_entropy, data.X_train, data.y_train)
    result.state.restore_dense()
    save_blocks(result.blocks, path)
    return result.blocks


def scaled(name: str, options: Mapping[str, Any], factor: float) -> dict[str, Any] | None:
    """``options`` with the backend's work knob at ``factor`` times its value (``None`` when
    the backend has no knob)."""
    spec = get_spec(name)
    current = spec.options(options).get(spec.budget) if spec.budget else None
    if current is None:
        return None
    return {**options, spec.budget: max(1, int(round(current * factor)))}


def plan_runs(
    solvers: Mapping[str, str],
    options: Mapping[str, Mapping[str, Any]],
    budgets: Sequence[float] = (1.0,),
) -> list[tuple[str, str, float, dict[str, Any]]]:
    """``(label, solver, budget factor, options)`` of every run: each backend at its options,
    and at the other budgets where it has a work knob."""
    runs = []
    for label, name in solvers.items():
        given = dict(options.get(label, {}))
        for factor in budgets:
            opts = given if factor == 1 else scaled(name, given, factor)
            if opts is not None:
                runs.append((label, name, float(factor), opts))
    return runs


def solve_all(
    blocks: Sequence[Block],
    solvers: Mapping[str, str],
    options: Mapping[str, Mapping[str, Any]],
    max_cost: float | None = None,
    budgets: Sequence[float] = (1.0,),
) -> list[dict[str, Any]]:
    """One row per (block, solver, budget): energy, gap, success per read, time to solution."""
    runs = plan_runs(solvers, options, budgets)
    # Every run passes the gate over all blocks before any client is built or job sent.
    costs = [admit(name, opts, len(blocks), max_cost) for _, name, _, opts in runs]
    backends = [get_backend(name, **opts) for _, name, _, opts in runs]
    rows = [
        _solve(i, block, backend, label, factor, cost.usd / max(1, len(blocks)))
        for i, block in enumerate(blocks)
        for (label, _, factor, _), backend, cost in zip(runs, backends, costs)
    ]
    _score(rows, exact={label for label, name in solvers.items() if name == "exact"})
    return rows


def _solve(
    index: int, block: Block, backend: Backend, label: str, factor: float, usd: float
) -> dict[str, Any]:
    """One block with one backend: the decoded answer and what every read reached."""
    row: dict[str, Any] = {
        "block": index,
        "n": block.n,
        "k": sum(block.k),
        "solver": label,
        "budget": factor,
        "tensor": block.tensor,
        "current_energy": block.energy(block.current),
    }
    try:
        backend.check_size(block.n)
    except BackendError:
        return {**row, "status": "too large", "energy": np.nan, "seconds": np.nan}
    t0 = time.perf_counter()
    sampleset = backend.solve(block)
    seconds = time.perf_counter() - t0
    d = decide(block, sampleset)
    X = sample_matrix(sampleset, block.n)
    occurrences = sampleset.record.num_occurrences
    timing = sampleset.info.get("timing", {}) or {}
    return {
        **row,
        "status": "solved",
        "energy": d.candidate_energy,
        "seconds": seconds,
        "reads": int(occurrences.sum()),
        "seconds_per_read": seconds / max(1, int(occurrences.sum())),
        "feasible_fraction": d.feasible_fraction,
        "repaired": d.repaired,
        "penalty": sampleset.info.get("penalty", np.nan),
        "qpu_access_us": timing.get("qpu_access_time", np.nan),
        "cost_usd": usd,
        "_reads": (block.energy(X), block.is_feasible(X), occurrences),
    }


def _score(rows: list[dict[str, Any]], exact: set[str]) -> None:
    """Gaps, success per read and time to solution against each block's best known energy."""
    best: dict[int, float] = {}
    for r in rows:
        if r["status"] == "solved":
            best[r["block"]] = min(best.get(r["block"], np.inf), r["energy"])
    exact_blocks = {r["block"] for r in rows if r["solver"] in exact and r["status"] == "solved"}
    for r in rows:
        b = best.get(r["block"], np.nan)
        r["best_known"] = b
        r["reference"] = "exact optimum" if r["block"] in exact_blocks else "best found"
        if r["status"] != "solved":
            continue
        r["gap"] = gap(r["energy"], b)
        r["missed"] = missed_improvement(r["energy"], b, r["current_energy"])
        r["p_success"] = success_probability(*r.pop("_reads"), best=b)
        tts = time_to_solution(r["seconds_per_read"], r["p_success"])
        r["tts99"] = tts if np.isfinite(tts) else None


def compare_solvers(
    solvers: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    blocks_path: Path | None = None,
    out: Path = Path("runs/compare"),
    record_size: int = 20,
    record_count: int = 12,
    max_cost: float | None = None,
    dry_run: bool = False,
    budgets: Sequence[float] = (0.25, 1.0, 4.0),
) -> dict[str, Any]:
    """Solve every block with every solver; print tables, write CSV, JSON and plots to ``out``.

    Every solver passes the budget gate before any block is recorded or sent; ``dry_run``
    prices the comparison and stops there."""
    if not solvers:
        raise ValueError("name at least one solver")
    if record_count < 1 or record_size < 2:
        raise ValueError(
            f"--record-count must be at least 1 and --record-size at least 2, got "
            f"{record_count} and {record_size}"
        )
    if not budgets or any(not f > 0 for f in budgets):
        raise ValueError(f"--budgets must be positive factors, got {list(budgets)}")
    budgets = sorted({1.0, *map(float, budgets)})
    variants = split_solvers(solvers)
    blocks = load_blocks(blocks_path) if blocks_path is not None else None
    count = len(blocks) if blocks is not None else record_count
    runs = plan_runs(variants, options, budgets)
    costs = [admit(name, opts, count, max_cost, dry_run) for _, name, _, opts in runs]
    if dry_run:
        total = sum(c.usd for c in costs)
        print(f"dry run: {len(runs)} runs x {count} blocks, estimated ${total:.2f}; sent nothing")
        return {"dry_run": True, "cost_usd": total}
    with locked(out):
        if blocks is None:
            blocks_path = out / "blocks.npz"
            print(
                f"recording {record_count} blocks of {record_size} weights from the garment "
                f"classifier into {blocks_path}"
            )
            blocks = record_garment_blocks(blocks_path, record_size, record_count)
        rows = solve_all(blocks, variants, options, max_cost, budgets)
        return write_report(rows, list(variants), blocks_path, out)
