"""Garment classifier benchmark: accuracy vs density for magnitude, Wanda and iCBS.

    python benchmarks/garment.py                       # densities 0.1..0.5, tabu, 40 epochs x 3
    python benchmarks/garment.py --solver neal --densities 0.1 --epochs 10

Prints the table and saves JSON (per density: magnitude, Wanda, iCBS accuracy, iCBS accuracy
and wall time after each epoch) to benchmarks/results/garment.json, plus a plot beside it.
The dense accuracy and every baseline are measured in the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qubo_prune.apps.demo import run_demo
from qubo_prune.backends.registry import parse_options

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", default="tabu")
    parser.add_argument("--solver-opt", action="append", default=[])
    parser.add_argument("--densities", default="0.1,0.2,0.3,0.4,0.5")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--steps-per-epoch", type=int, default=3)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--granularity", default="tensor")
    parser.add_argument("--out", type=Path, default=RESULTS / "garment.json")
    args = parser.parse_args()

    report = run_demo(
        solver=args.solver,
        solver_options=parse_options(args.solver_opt),
        densities=[float(d) for d in args.densities.split(",")],
        block_size=args.block_size,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        granularity=args.granularity,
        out=args.out.parent / "garment",
        progress=False,
    )
    print("\niCBS test accuracy after each epoch (epoch: seconds, accuracy)")
    for row in report["rows"]:
        curve = ", ".join(f"{e}: {s:.0f}s {a:.2f}" for e, s, a in row["icbs_epochs"])
        print(f"  density {row['density']:g}: {curve}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
