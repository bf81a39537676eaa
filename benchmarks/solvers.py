"""Compare gpu-anneal with neal on the same blocks: energy, wall time, time-to-target, batch speed.

Blocks come from ``.npz`` files written by ``qubo_prune.core.block.save_blocks`` or, with
``--synthetic``, from the layer-reconstruction objective (objective 2 of the math note) on
random calibration data. Both solvers go through the registry exactly as iCBS calls them
(gpu-anneal keeps the cardinality natively, neal anneals the penalised BQM), and every answer
is scored by ``decode.decide``: energies recomputed in the objective's units, infeasible
samples repaired, so a solver gets no credit for what the loop could not use.

Time-to-target: each solver climbs a ladder of sweep counts; the target is to come within
``--target`` (relative) of the best known energy of every block of a size (the exact optimum
when n <= 20, else the best any run found), and the time reported is that of the first rung
that reaches it. A rung is skipped when the previous one, scaled by the sweep ratio, predicts
more than ``--rung-budget`` seconds, so the default synthetic run stays within minutes.

    python benchmarks/solvers.py --synthetic
    python benchmarks/solvers.py runs/blocks/*.npz --out benchmarks/results/recorded.json

The quantum backends have their own benchmark, ``benchmarks/quantum.py`` (docs/quantum.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qubo_prune.backends.metrics import gap as energy_gap
from qubo_prune.backends.registry import get_backend
from qubo_prune.core.block import Block, load_blocks
from qubo_prune.core.decode import decide

SOLVERS = ("gpu-anneal", "neal")
EXACT_MAX_N = 20


def synthetic_blocks(
    n: int, count: int, rng: np.random.Generator, samples: int = 128
) -> list[Block]:
    """``count`` blocks of ``n`` weights, each from another row of one random linear layer.

    The layer has ``2n`` inputs and Gram matrix ``G = U U^T / N`` of ``N = samples`` random
    calibration inputs (rank-deficient, so the weights interact as in a real layer); each row
    starts from its magnitude mask at 50% density and the block is ``n`` random coordinates
    of the row, so the pruned weights outside it give the linear term and the constant.
    """
    d_in = 2 * n
    U = rng.standard_normal((d_in, samples))
    G = U @ U.T / samples
    blocks = []
    for _ in range(count):
        w0 = rng.standard_normal(d_in)
        pruned = np.zeros(d_in, dtype=np.int8)
        pruned[np.argsort(np.abs(w0))[: d_in // 2]] = 1
        B = np.sort(rng.choice(d_in, size=n, replace=False))
        out = np.setdiff1d(np.arange(d_in), B)
        e_out = np.zeros(d_in)
        e_out[out] = pruned[out] * w0[out]
        D = np.diag(w0[B])
        Q = D @ G[np.ix_(B, B)] @ D + np.diag(2.0 * w0[B] * (G @ e_out)[B])
        blocks.append(Block(Q=Q, constant=float(e_out @ G @ e_out), current=pruned[B], coords=B))
    return blocks


def solve(
    name: str,
    blocks: list[Block],
    num_reads: int,
    num_sweeps: int,
    seed: int,
    penalty_scale: float | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """One ``solve_many`` call: wall time and the decoded (usable) energy of every block."""
    options: dict[str, Any] = {"num_reads": num_reads, "num_sweeps": num_sweeps, "seed": seed}
    if penalty_scale is not None:
        options["penalty_scale"] = penalty_scale
    if name == "gpu-anneal" and threads is not None:
        options["num_threads"] = threads
    backend = get_backend(name, **options)
    started = time.perf_counter()
    samplesets = backend.solve_many(blocks)
    seconds = time.perf_counter() - started
    decisions = [decide(b, ss) for b, ss in zip(blocks, samplesets)]
    return {
        "sweeps": num_sweeps,
        "seconds": seconds,
        "energy": [d.candidate_energy for d in decisions],
        "feasible_fraction": float(np.mean([d.feasible_fraction for d in decisions])),
        "repaired": int(sum(d.repaired for d in decisions)),
    }


def bench_size(blocks: list[Block], args: argparse.Namespace) -> dict[str, Any]:
    """Sweep ladders of every solver on one size group, scored against the best known."""
    n = blocks[0].n
    ladders: dict[str, list[dict[str, Any]]] = {}
    for name in args.solvers:
        rungs: list[dict[str, Any]] = []
        for sweeps in args.sweeps:
            if rungs and rungs[-1]["seconds"] * sweeps / rungs[-1]["sweeps"] > args.rung_budget:
                break
            rungs.append(
                solve(
                    name,
                    blocks,
                    args.num_reads,
                    sweeps,
                    args.seed,
                    args.penalty_scale,
                    args.threads,
                )
            )
            print(
                f"  n={n:5d} {name:11s} sweeps={sweeps:5d} {rungs[-1]['seconds']:8.2f}s", flush=True
            )
        ladders[name] = rungs

    found = np.array([r["energy"] for rungs in ladders.values() for r in rungs])
    best = found.min(axis=0)
    exact = None
    if n <= EXACT_MAX_N:
        backend = get_backend("exact")
        exact = np.array([backend.solve(b).first.energy for b in blocks])
        best = np.minimum(best, exact)

    result: dict[str, Any] = {
        "n": n,
        "blocks": len(blocks),
        "best_known": best.tolist(),
        "exact": exact is not None,
        "solvers": {},
    }
    for name, rungs in ladders.items():
        for r in rungs:
            gap = energy_gap(np.array(r["energy"]), best)
            r["mean_gap"] = float(gap.mean())
            r["max_gap"] = float(gap.max())
            r["reached"] = float(np.mean(gap <= args.target))
        hit = next((r for r in rungs if r["reached"] == 1.0), None)
        last = rungs[-1]
        result["solvers"][name] = {
            "rungs": rungs,
            "final_mean_gap": last["mean_gap"],
            "final_seconds": last["seconds"],
            "time_to_target": None if hit is None else hit["seconds"],
            "sweeps_to_target": None if hit is None else hit["sweeps"],
        }
    return result


def bench_batch(blocks: list[Block], args: argparse.Namespace) -> dict[str, Any]:
    """Same sweeps and reads for every solver on one batch: throughput ratio and energies."""
    runs = {
        name: solve(
            name,
            blocks,
            args.batch_reads,
            args.batch_sweeps,
            args.seed,
            args.penalty_scale,
            args.threads,
        )
        for name in args.solvers
    }
    out: dict[str, Any] = {
        "n": blocks[0].n,
        "blocks": len(blocks),
        "sweeps": args.batch_sweeps,
        "num_reads": args.batch_reads,
        "runs": {k: {**v, "mean_energy": float(np.mean(v["energy"]))} for k, v in runs.items()},
    }
    if "neal" in runs and "gpu-anneal" in runs:
        out["neal_over_gpu_time"] = runs["neal"]["seconds"] / runs["gpu-anneal"]["seconds"]
    return out


def print_table(sizes: list[dict[str, Any]], batch: dict[str, Any] | None, target: float) -> None:
    print()
    print(
        f"{'n':>5} {'blocks':>6} {'solver':>11} {'sweeps':>6} {'wall s':>8} {'mean gap':>10} "
        f"{'max gap':>10} {'reached':>8} {'feasible':>8}"
    )
    for size in sizes:
        for name, s in size["solvers"].items():
            for r in s["rungs"]:
                print(
                    f"{size['n']:5d} {size['blocks']:6d} {name:>11} {r['sweeps']:6d} "
                    f"{r['seconds']:8.2f} {r['mean_gap']:10.2e} {r['max_gap']:10.2e} "
                    f"{r['reached']:8.2f} {r['feasible_fraction']:8.2f}"
                )
    print(
        f"\ntime to target (every block within {target:.1%} of best known; "
        "'exact' when the optimum is enumerated):"
    )
    for size in sizes:
        ref = "exact" if size["exact"] else "best found"
        cells = []
        for name, s in size["solvers"].items():
            ttt = s["time_to_target"]
            cells.append(
                f"{name} "
                + ("not reached" if ttt is None else f"{ttt:.2f}s ({s['sweeps_to_target']} sweeps)")
            )
        print(f"  n={size['n']:5d} vs {ref:10s}: " + "; ".join(cells))
    if batch:
        print(
            f"\nbatch of {batch['blocks']} blocks of n={batch['n']}, {batch['num_reads']} reads, "
            f"{batch['sweeps']} sweeps:"
        )
        for name, r in batch["runs"].items():
            print(
                f"  {name:11s} {r['seconds']:8.2f}s  mean energy {r['mean_energy']:.6g}  "
                f"feasible {r['feasible_fraction']:.2f}"
            )
        if "neal_over_gpu_time" in batch:
            print(f"  neal / gpu-anneal wall time: {batch['neal_over_gpu_time']:.1f}x")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("blocks", nargs="*", type=Path, help=".npz files written by save_blocks")
    p.add_argument("--synthetic", action="store_true", help="random Gram-objective blocks")
    p.add_argument(
        "--sizes", type=int, nargs="+", default=[64, 256, 1024], help="block sizes of --synthetic"
    )
    p.add_argument("--per-size", type=int, default=4, help="blocks per size in the ladders")
    p.add_argument("--num-reads", type=int, default=8)
    p.add_argument(
        "--sweeps",
        type=int,
        nargs="+",
        default=[10, 30, 100, 300, 1000],
        help="ladder of sweep counts",
    )
    p.add_argument(
        "--rung-budget",
        type=float,
        default=15.0,
        help="skip a rung predicted to take longer (seconds)",
    )
    p.add_argument("--target", type=float, default=1e-3, help="relative gap of time-to-target")
    p.add_argument("--batch", type=int, default=64, help="blocks in the throughput batch")
    p.add_argument("--batch-sweeps", type=int, default=10)
    p.add_argument("--batch-reads", type=int, default=4)
    p.add_argument(
        "--penalty-scale",
        type=float,
        default=None,
        help="penalty of penalty-based solvers as a multiple of the provable bound",
    )
    p.add_argument("--solvers", nargs="+", default=list(SOLVERS))
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of gpu-anneal on CPU (its default: 1)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/solvers.json"))
    args = p.parse_args(argv)
    if not args.synthetic and not args.blocks:
        p.error("give .npz files of recorded blocks or --synthetic")

    rng = np.random.default_rng(args.seed)
    by_size: dict[int, list[Block]] = defaultdict(list)
    if args.synthetic:
        for n in args.sizes:
            by_size[n] = synthetic_blocks(
                n, max(args.per_size, args.batch if n == max(args.sizes) else 0), rng
            )
    for path in args.blocks:
        for b in load_blocks(path):
            by_size[b.n].append(b)

    sizes = []
    for n in sorted(by_size):
        print(f"size {n}: {len(by_size[n])} blocks", flush=True)
        sizes.append(bench_size(by_size[n][: args.per_size], args))
    largest = by_size[max(by_size)]
    batch = bench_batch(largest[: args.batch], args) if args.batch > 0 else None

    print_table(sizes, batch, args.target)
    report = {
        "args": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "blocks"
        },
        "inputs": [str(p) for p in args.blocks] or ["synthetic"],
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "sizes": sizes,
        "batch": batch,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
