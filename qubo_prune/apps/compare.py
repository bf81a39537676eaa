"""Solver quality block by block: the same recorded blocks, several backends, one report.

Each answer is scored against the best energy any solver found for that block (the exact
optimum whenever ``exact`` could take it) by :mod:`qubo_prune.backends.metrics`: its ``gap``
and the share of the best improvement it misses.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qubo_prune.apps.lock import locked
from qubo_prune.backends.gate import admit
from qubo_prune.backends.metrics import gap, missed_improvement
from qubo_prune.backends.registry import BackendError, get_backend, parse_options
from qubo_prune.core.block import Block, load_blocks, save_blocks
from qubo_prune.core.decode import decide

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


def solve_all(
    blocks: Sequence[Block],
    solvers: Mapping[str, str],
    options: Mapping[str, Mapping[str, Any]],
    max_cost: float | None = None,
) -> list[dict[str, Any]]:
    """One row per (block, solver): energy, feasibility before repair, time, cost, status."""
    # Every solver passes the gate over all blocks before any client is built or job sent.
    costs = {
        s: admit(name, options.get(s, {}), len(blocks), max_cost) for s, name in solvers.items()
    }
    backends = {s: get_backend(name, **dict(options.get(s, {}))) for s, name in solvers.items()}
    rows = []
    for i, block in enumerate(blocks):
        for name, backend in backends.items():
            row: dict[str, Any] = {
                "block": i,
                "n": block.n,
                "k": sum(block.k),
                "solver": name,
                "tensor": block.tensor,
            }
            try:
                backend.check_size(block.n)
            except BackendError:
                rows.append(
                    {
                        **row,
                        "status": "too large",
                        "energy": np.nan,
                        "seconds": np.nan,
                        "feasible_fraction": np.nan,
                        "repaired": False,
                    }
                )
                continue
            t0 = time.perf_counter()
            sampleset = backend.solve(block)
            seconds = time.perf_counter() - t0
            d = decide(block, sampleset)
            timing = sampleset.info.get("timing", {}) or {}
            rows.append(
                {
                    **row,
                    "status": "solved",
                    "energy": d.candidate_energy,
                    "current_energy": d.current_energy,
                    "seconds": seconds,
                    "feasible_fraction": d.feasible_fraction,
                    "repaired": d.repaired,
                    "qpu_access_us": timing.get("qpu_access_time", np.nan),
                    "cost_usd": costs[name].usd / max(1, len(blocks)),
                }
            )
    _add_gaps(rows, exact={s for s, name in solvers.items() if name == "exact"})
    return rows


def _add_gaps(rows: list[dict[str, Any]], exact: set[str]) -> None:
    best: dict[int, float] = {}
    for r in rows:
        if r["status"] == "solved":
            best[r["block"]] = min(best.get(r["block"], np.inf), r["energy"])
    exact_blocks = {r["block"] for r in rows if r["solver"] in exact and r["status"] == "solved"}
    for r in rows:
        b = best.get(r["block"], np.nan)
        r["best_known"] = b
        r["reference"] = "exact optimum" if r["block"] in exact_blocks else "best found"
        solved = r["status"] == "solved"
        r["gap"] = gap(r["energy"], b) if solved else np.nan
        r["missed"] = missed_improvement(r["energy"], b, r["current_energy"]) if solved else np.nan


def summarise(rows: list[dict[str, Any]], solvers: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for s in solvers:
        rs = [r for r in rows if r["solver"] == s]
        solved = [r for r in rs if r["status"] == "solved"]
        tol = [1e-9 * max(1.0, abs(r["best_known"])) for r in solved]
        at_best = sum(r["energy"] - r["best_known"] <= t for r, t in zip(solved, tol))
        out.append(
            {
                "solver": s,
                "blocks": len(rs),
                "solved": len(solved),
                "too_large": len(rs) - len(solved),
                "at_best": at_best,
                "mean_gap": float(np.mean([r["gap"] for r in solved])) if solved else np.nan,
                "mean_missed": float(np.nanmean([r["missed"] for r in solved]))
                if solved
                else np.nan,
                "mean_feasible_fraction": float(np.mean([r["feasible_fraction"] for r in solved]))
                if solved
                else np.nan,
                "repaired": sum(r["repaired"] for r in solved),
                "mean_seconds": float(np.mean([r["seconds"] for r in solved]))
                if solved
                else np.nan,
                "qpu_access_us": float(np.nansum([r.get("qpu_access_us", np.nan) for r in solved])),
                "cost_usd": float(np.nansum([r.get("cost_usd", np.nan) for r in solved])),
            }
        )
    return out


def compare_solvers(
    solvers: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    blocks_path: Path | None = None,
    out: Path = Path("runs/compare"),
    record_size: int = 20,
    record_count: int = 12,
    max_cost: float | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Solve every block with every solver; print a table, write CSV, JSON and a PNG to ``out``.

    Every solver passes the budget gate before any block is recorded or sent; ``dry_run``
    prices the comparison and stops there."""
    if not solvers:
        raise ValueError("name at least one solver")
    if record_count < 1 or record_size < 2:
        raise ValueError(
            f"--record-count must be at least 1 and --record-size at least 2, got "
            f"{record_count} and {record_size}"
        )
    variants = split_solvers(solvers)
    solvers = list(variants)
    blocks = load_blocks(blocks_path) if blocks_path is not None else None
    count = len(blocks) if blocks is not None else record_count
    costs = [admit(variants[s], options.get(s, {}), count, max_cost, dry_run) for s in solvers]
    if dry_run:
        total = sum(c.usd for c in costs)
        print(
            f"dry run: {len(solvers)} solvers x {count} blocks, estimated ${total:.2f}; sent nothing"
        )
        return {"dry_run": True, "cost_usd": total}
    with locked(out):
        if blocks is None:
            blocks_path = out / "blocks.npz"
            print(
                f"recording {record_count} blocks of {record_size} weights from the garment "
                f"classifier into {blocks_path}"
            )
            blocks = record_garment_blocks(blocks_path, record_size, record_count)
        return _report(blocks, blocks_path, variants, options, max_cost, out)


def _report(
    blocks: Sequence[Block],
    blocks_path: Path,
    variants: Mapping[str, str],
    options: Mapping[str, Mapping[str, Any]],
    max_cost: float | None,
    out: Path,
) -> dict[str, Any]:
    """Solve, then print the tables and write CSV, JSON and the plot."""
    solvers = list(variants)
    rows = solve_all(blocks, variants, options, max_cost)
    summary = summarise(rows, solvers)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "compare.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    report = {
        "blocks": str(blocks_path),
        "solvers": list(solvers),
        "summary": summary,
        "rows": rows,
    }
    (out / "compare.json").write_text(json.dumps(report, indent=2, default=float))
    _print(rows, summary, solvers)
    _plot(rows, solvers, out / "compare.png")
    print(f"wrote {out / 'compare.csv'}, {out / 'compare.json'} and {out / 'compare.png'}")
    return report


def _print(
    rows: list[dict[str, Any]], summary: list[dict[str, Any]], solvers: Sequence[str]
) -> None:
    print(
        f"\n{'block':>5} {'n':>5} "
        + " ".join(f"{s[:18]:>18}" for s in solvers)
        + "   (energy, gap)"
    )
    for b in sorted({r["block"] for r in rows}):
        cells = []
        for s in solvers:
            r = next(r for r in rows if r["block"] == b and r["solver"] == s)
            cells.append(
                f"{'too large':>18}"
                if r["status"] != "solved"
                else f"{r['energy']:>10.3e} {r['gap']:>7.1%}"
            )
        n = next(r["n"] for r in rows if r["block"] == b)
        print(f"{b:>5} {n:>5} " + " ".join(cells))
    print(
        f"\n{'solver':<18} {'at best':>8} {'mean gap':>9} {'missed gain':>12} {'feasible':>9} "
        f"{'repaired':>9} {'mean s':>8} {'too large':>10} {'cost $':>8} {'QPU us':>8}"
    )
    for s in summary:
        print(
            f"{s['solver']:<18} {s['at_best']:>4}/{s['solved']:<3} {s['mean_gap']:>9.2%} "
            f"{s['mean_missed']:>12.2%} "
            f"{s['mean_feasible_fraction']:>9.0%} {s['repaired']:>9} "
            f"{s['mean_seconds']:>8.3f} {s['too_large']:>10} {s['cost_usd']:>8.2f} "
            f"{s['qpu_access_us']:>8.0f}"
        )


def _plot(rows: list[dict[str, Any]], solvers: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for s in solvers:
        rs = [r for r in rows if r["solver"] == s and r["status"] == "solved"]
        if not rs:
            continue
        ax1.plot([r["block"] for r in rs], [r["gap"] * 100 for r in rs], marker="o", label=s)
        ax2.scatter([r["seconds"] for r in rs], [r["gap"] * 100 for r in rs], label=s)
    ax1.set_xlabel("block")
    ax1.set_ylabel("gap to best known energy (%)")
    ax2.set_xscale("log")
    ax2.set_xlabel("wall time per block (s)")
    ax2.set_ylabel("gap (%)")
    ax1.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
