"""The embedded DeiT (deit-fmnist): top-1 accuracy vs density and at 2:4, every method, one run.

Densities 0.1 to 0.7 kept (unstructured) and 2:4, for magnitude, Wanda, SparseGPT, ADMM and
iCBS on the layer objective (masks only, and with ``--refit``), plus iCBS on the model's
classification loss (the paper's objective, unstructured only: the loss loop keeps per-tensor
densities). Each run is its own ``qubo-prune prune-vision`` process (peak RSS per run) and
resumes if interrupted (runs/bench-vision/NAME). Prints one row per run and writes
benchmarks/results/vision.json; ``--table`` prints the accuracy table from that file.

    flock /tmp/qubo-bench.lock python benchmarks/vision.py [--only wanda-0.5,icbs-2:4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "vision.json"
DENSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
PATTERNS = [f"{d}" for d in DENSITIES] + ["2:4"]
METHODS = {
    "magnitude": ["--method", "magnitude"],
    "wanda": ["--method", "wanda"],
    "sparsegpt": ["--method", "sparsegpt"],
    "admm": ["--method", "admm"],
    "icbs": ["--method", "icbs"],
    "icbs-refit": ["--method", "icbs", "--refit"],
    # 1024 images per step's Fisher blocks plus 8192 to check each swap on (ICBSConfig's)
    "icbs-loss": ["--method", "icbs", "--objective", "loss", "--calib-images", "9216"],
}


def runs() -> dict[str, list[str]]:
    """Every run by name (``METHOD-DENSITY`` or ``METHOD-2:4``) and its prune-vision options."""
    out = {}
    for method, args in METHODS.items():
        for pattern in PATTERNS:
            if method == "icbs-loss" and pattern == "2:4":
                continue
            if pattern == "2:4":
                shape = ["--pattern", "2:4", "--sparsity", "0.5"]
            else:
                shape = ["--pattern", "unstructured", "--sparsity", f"{1 - float(pattern):.1f}"]
            out[f"{method}-{pattern}"] = [*args, *shape]
    return out


def table(results: dict) -> str:
    """Accuracy (%) by method and density, the dense line first."""
    dense = next((r["dense_accuracy"] for r in results.values() if "dense_accuracy" in r), None)
    lines = ["| method | " + " | ".join(f"{p} kept" if p != "2:4" else p for p in PATTERNS) + " |"]
    lines.append("|---" * (len(PATTERNS) + 1) + "|")
    if dense is not None:
        lines.append("| dense | " + " | ".join(f"{dense:.2f}" for _ in PATTERNS) + " |")
    for method in METHODS:
        cells = [results.get(f"{method}-{p}", {}).get("accuracy") for p in PATTERNS]
        lines.append(
            f"| {method} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated run names (default: all)")
    parser.add_argument("--solver", default=None, help="iCBS solver (default: the CLI's)")
    parser.add_argument("--solver-opt", action="append", default=[])
    parser.add_argument("--icbs-args", default="", help="extra prune-vision options for iCBS")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-vision"))
    parser.add_argument("--table", action="store_true", help="print the table of saved results")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(RESULTS.read_text())))
        return 0
    every = runs()
    names = [n for n in args.only.split(",") if n] or list(every)
    for name in names:
        folder = args.out / name.replace(":", "-")
        cmd = [sys.executable, "-m", "qubo_prune.apps.cli", "prune-vision", *every[name]]
        cmd += ["--out", str(folder), "--no-progress"]
        if name.startswith("icbs"):
            cmd += ["--solver", args.solver] if args.solver else []
            cmd += args.icbs_args.split()
            cmd += [a for opt in args.solver_opt for a in ("--solver-opt", opt)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        report = json.loads((folder / "report.json").read_text())
        r = {k: v for k, v in report.items() if k != "layers"} | {"command": cmd}
        # re-read before writing: runs of other invocations may have finished meanwhile
        merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(merged | {name: r}, indent=1))
        dense = r["mean_dense_layer_error"]
        print(
            f"{name:18s} top-1 {r['accuracy']:6.2f}% (dense {r['dense_accuracy']:.2f}%)  "
            f"err {r['mean_layer_error']:.4f}"
            + (f" / dense inputs {dense:.4f}" if dense is not None else "")
            + f"  {r['prune_seconds']:6.1f} s  {r['peak_rss_mb']:5.0f} MB",
            flush=True,
        )
    print(table(json.loads(RESULTS.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
