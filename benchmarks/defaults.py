"""How each classical backend's defaults were chosen: gap and time per block, defaults against
the other settings tried, on blocks recorded from this project's own runs.

    python benchmarks/record_blocks.py --out runs/blocks --sizes 16 20 24 64 256 1024 4096
    OMP_NUM_THREADS=1 python benchmarks/defaults.py runs/blocks/*.npz

Blocks: objective 1 (Fisher-Hessian blocks of the garment classifier) and objective 2 (Gram row
blocks of SmolLM2-135M's first ``mlp.down_proj``), n = 16 to 4096. The best known energy of a
block is the exact optimum for n <= 24, else the best of every run here and of long reference
runs. Every run goes through the registry exactly as the pruners call it and is scored by the
decoder (repair, never-worse), with ``qubo_prune.backends.metrics``: gap ``(E - E*) / |E*|``
and the missed share of the best improvement. Torch and BLAS use one thread ("one core").
Prints a table and writes benchmarks/results/defaults.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qubo_prune.backends.metrics import gap, missed_improvement
from qubo_prune.backends.registry import get_backend, get_spec
from qubo_prune.core.block import Block, load_blocks
from qubo_prune.core.decode import decide

# (solver, label, options beside the defaults); "default" runs with none.
SETTINGS: list[tuple[str, str, dict[str, Any]]] = [
    ("neal", "default", {}),
    ("neal", "safe penalty", {"penalty": "safe"}),
    ("neal", "0.01 x bound", {"penalty_scale": 0.01}),
    ("neal", "200 sweeps", {"num_sweeps": 200}),
    ("tabu", "default", {}),
    ("tabu", "safe penalty", {"penalty": "safe"}),
    ("tabu", "random start", {"warm_start": False}),
    ("tabu", "16 restarts", {"num_restarts": 16}),
    ("steepest-descent", "default", {}),
    ("steepest-descent", "8 reads", {"num_reads": 8}),
    ("steepest-descent", "0.01 x bound", {"penalty_scale": 0.01}),
    ("gpu-anneal", "default", {}),
    ("gpu-anneal", "no polish", {"polish": False}),
    ("gpu-anneal", "random start", {"warm_start": False}),
    ("gpu-anneal", "24 sweeps", {"num_sweeps": 24}),
    ("gpu-anneal", "1 candidate x 50 sweeps", {"candidates": 1, "num_sweeps": 50}),
]
REFERENCE = [  # long runs that only tighten the best known energy of n > 24 blocks
    ("tabu", {"num_restarts": 64, "penalty": "safe"}),
    ("tabu", {"num_restarts": 32}),
    ("gpu-anneal", {"num_reads": 8, "num_sweeps": 200, "candidates": 32}),
]
EXACT_MAX = 24
TARGETS = {"neal": 0.02, "steepest-descent": 0.05, "tabu": 0.005, "gpu-anneal": 0.005}


def load(paths: list[Path], per_file: int) -> list[tuple[str, Block]]:
    """``(family, block)`` of the first ``per_file`` blocks of each file."""
    out = []
    for path in paths:
        family = path.stem.split("-")[0]
        out += [(family, b) for b in load_blocks(path)[:per_file]]
    return out


def run(solver: str, options: dict[str, Any], blocks: list[tuple[str, Block]]) -> list[dict]:
    """Decoded energy and wall time of every block, one registry backend for all."""
    backend = get_backend(solver, **options)
    rows = []
    for family, block in blocks:
        start = time.perf_counter()
        sampleset = backend.solve(block)
        seconds = time.perf_counter() - start
        d = decide(block, sampleset)
        rows.append(
            {"family": family, "n": block.n, "energy": d.candidate_energy, "seconds": seconds}
        )
    return rows


def best_known(blocks: list[tuple[str, Block]], runs: list[list[dict]]) -> np.ndarray:
    """Exact optimum for n <= EXACT_MAX, else the lowest energy any run (reference too) found."""
    best = np.min([[r["energy"] for r in rs] for rs in runs], axis=0)
    exact = get_backend("exact")
    for i, (_, block) in enumerate(blocks):
        if block.n <= EXACT_MAX:
            best[i] = decide(block, exact.solve(block)).candidate_energy
    return best


def score(rows: list[dict], blocks, best: np.ndarray) -> dict[str, Any]:
    """Per block size and overall (n <= 1024): gap, missed improvement, hits, time."""
    current = np.array([b.energy(b.current) for _, b in blocks])
    energy = np.array([r["energy"] for r in rows])
    gaps = gap(energy, best)
    missed = np.nan_to_num(missed_improvement(energy, best, current))
    hits = energy <= best + 1e-9 * np.maximum(1.0, np.abs(best))
    sizes = np.array([b.n for _, b in blocks])
    seconds = np.array([r["seconds"] for r in rows])
    per_n = {
        int(n): {
            "blocks": int((sizes == n).sum()),
            "mean_gap": float(gaps[sizes == n].mean()),
            "mean_missed": float(missed[sizes == n].mean()),
            "at_best": int(hits[sizes == n].sum()),
            "mean_seconds": float(seconds[sizes == n].mean()),
        }
        for n in sorted(set(sizes))
    }
    judged = sizes <= 1024
    small = sizes <= EXACT_MAX
    return {
        "per_n": per_n,
        "mean_gap": float(gaps[judged].mean()),
        "mean_missed": float(missed[judged].mean()),
        "exact_share": float(hits[small].mean()) if small.any() else float("nan"),
        "seconds_n1024": per_n.get(1024, {}).get("mean_seconds", float("nan")),
    }


def seconds_by_n(rows: list[dict]) -> dict[int, float]:
    """Mean wall seconds per block, by block size."""
    sizes = sorted({r["n"] for r in rows})
    return {int(n): float(np.mean([r["seconds"] for r in rows if r["n"] == n])) for n in sizes}


def time_defaults(solvers: list[str], blocks: list[tuple[str, Block]], out: Path) -> int:
    """Mean seconds per block at each size for each solver's defaults, with the machine's load
    average before and after (the 2 s target is for an idle core)."""
    report = {"machine": {"cpu_count": os.cpu_count(), "load_before": os.getloadavg()}}
    for solver in solvers:
        report[solver] = seconds_by_n(run(solver, {}, blocks))
        print(solver, {n: f"{t:.3f} s" for n, t in report[solver].items()}, flush=True)
    report["machine"]["load_after"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float))
    print(
        f"load average before {report['machine']['load_before']}, after "
        f"{report['machine']['load_after']}; wrote {out}"
    )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("blocks", nargs="+", type=Path, help=".npz files of benchmarks/record_blocks.py")
    p.add_argument("--per-file", type=int, default=8, help="blocks taken from each file")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "defaults.json")
    p.add_argument("--solvers", default=None, help="comma-separated: only these solvers' settings")
    p.add_argument(
        "--time-only",
        action="store_true",
        help="only time each chosen solver's defaults per block (run it on an idle machine)",
    )
    args = p.parse_args()
    chosen = [s for s in SETTINGS if args.solvers is None or s[0] in args.solvers.split(",")]
    torch.set_num_threads(1)
    blocks = load(args.blocks, args.per_file)
    if args.time_only:
        return time_defaults(sorted({s for s, _, _ in chosen}), blocks, args.out)
    judged = [b for b in blocks if b[1].n <= 1024]  # the targets' range; larger ones: time only
    larger = [b for b in blocks if b[1].n > 1024]
    runs = {}
    for solver, label, extra in chosen:
        print(f"{solver} {label} ...", flush=True)
        runs[(solver, label, json.dumps(extra))] = run(solver, extra, judged)
    reference = [run(s, o, judged) for s, o in REFERENCE]
    best = best_known(judged, [*runs.values(), *reference])
    report = {"machine": {"cpu_count": os.cpu_count(), "load": os.getloadavg()}, "settings": []}
    for (solver, label, extra), rows in runs.items():
        s = score(rows, judged, best)
        if label == "default" and larger:  # time per block of n > 1024, by n
            s["seconds_larger"] = seconds_by_n(run(solver, {}, larger))
        options = get_spec(solver).options(json.loads(extra))
        report["settings"].append({"solver": solver, "label": label, "options": options, **s})
        print(
            f"{solver:17} {label:14} gap {s['mean_gap']:8.3%} (target {TARGETS[solver]:.1%}) "
            f"missed {s['mean_missed']:7.2%} exact {s['exact_share']:5.0%} "
            f"n=1024 {s['seconds_n1024']:6.2f} s",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
