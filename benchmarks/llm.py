"""SmolLM2-135M at 50% unstructured and 2:4: dense, magnitude, Wanda, SparseGPT, ADMM, ALPS, iCBS.

Prints one row per run (perplexity on each evaluation text: the Python library docs, in
domain, and the fortunes package's songs and poems, out of domain; mean layer error on dense
inputs as docs/anchors.md reports it; pruning time; peak RSS) and writes
benchmarks/results/llm.json. Each run is its own process, so peak RSS is per run, and each
resumes if interrupted (runs/bench-llm/NAME).

    python benchmarks/llm.py [--only wanda,sparsegpt] [--solver gpu-anneal --solver-opt ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FROM_SPARSEGPT = ("--method", "icbs", "--refit", "--start", "sparsegpt")
FROM_ADMM = ("--method", "icbs", "--refit", "--start", "admm")
FROM_ALPS = ("--method", "icbs", "--refit", "--start", "alps")
AUTO = ("--refit-damping", "auto")
BOTH = ("--fit-inputs", "both")  # fitted to the dense model's inputs as well as the pruned one's
RUNS = {
    "magnitude-50": ["--method", "magnitude", "--pattern", "unstructured"],
    "wanda-50": ["--method", "wanda", "--pattern", "unstructured"],
    "sparsegpt-50": ["--method", "sparsegpt", "--pattern", "unstructured"],
    "admm-50": ["--method", "admm", "--pattern", "unstructured"],
    "alps-50": ["--method", "alps", "--pattern", "unstructured"],
    "icbs-50": ["--method", "icbs", "--pattern", "unstructured"],
    "icbs-50-refit": ["--method", "icbs", "--pattern", "unstructured", "--refit"],
    "icbs-50-refit-from-sparsegpt": [*FROM_SPARSEGPT, "--pattern", "unstructured"],
    "icbs-50-refit-auto-from-sparsegpt": [*FROM_SPARSEGPT, "--pattern", "unstructured", *AUTO],
    # per-matrix counts from Wanda's per-matrix mask (SparseGPT's unstructured one already is)
    "icbs-layer-refit": ["--method", "icbs", "--refit", "--pattern", "layer"],
    "sparsegpt-50-refit-auto": ["--method", "sparsegpt", "--refit", *AUTO],
    "icbs-50-refit-auto-from-admm": [*FROM_ADMM, "--pattern", "unstructured", *AUTO],
    "icbs-layer-refit-auto-from-admm": [*FROM_ADMM, "--pattern", "layer", *AUTO],
    "icbs-layer-refit-auto-from-alps": [*FROM_ALPS, "--pattern", "layer", *AUTO],
    "alps-50-both": ["--method", "alps", "--pattern", "unstructured", *BOTH],
    "icbs-layer-refit-auto-from-alps-both": [*FROM_ALPS, "--pattern", "layer", *AUTO, *BOTH],
    "magnitude-2:4": ["--method", "magnitude", "--pattern", "2:4"],
    "wanda-2:4": ["--method", "wanda", "--pattern", "2:4"],
    "sparsegpt-2:4": ["--method", "sparsegpt", "--pattern", "2:4"],
    "admm-2:4": ["--method", "admm", "--pattern", "2:4"],
    "alps-2:4": ["--method", "alps", "--pattern", "2:4"],
    "icbs-2:4": ["--method", "icbs", "--pattern", "2:4"],
    "icbs-2:4-refit": ["--method", "icbs", "--pattern", "2:4", "--refit"],
    "icbs-2:4-refit-from-sparsegpt": [*FROM_SPARSEGPT, "--pattern", "2:4"],
    "icbs-2:4-refit-auto-from-sparsegpt": [*FROM_SPARSEGPT, "--pattern", "2:4", *AUTO],
    "icbs-2:4-refit-auto-from-admm": [*FROM_ADMM, "--pattern", "2:4", *AUTO],
    "icbs-2:4-refit-auto-from-alps": [*FROM_ALPS, "--pattern", "2:4", *AUTO],
    "alps-2:4-both": ["--method", "alps", "--pattern", "2:4", *BOTH],
    "icbs-2:4-refit-auto-from-alps-both": [*FROM_ALPS, "--pattern", "2:4", *AUTO, *BOTH],
}


def dense_perplexities(eval_windows: int) -> dict[str, float]:
    """The dense model's perplexity on each of ``prune-llm``'s default evaluation texts."""
    from qubo_prune.apps.prune_llm import EVAL_TEXTS, text_name
    from qubo_prune.apps.smollm2 import smollm2_dir
    from qubo_prune.llm.model import load_causal_lm
    from qubo_prune.llm.perplexity import perplexity
    from qubo_prune.llm.text import evaluation_windows, token_stream

    model, tokenizer = load_causal_lm(smollm2_dir())
    return {
        text_name(t): perplexity(
            model, evaluation_windows(token_stream(tokenizer, t), eval_windows)
        )
        for t in EVAL_TEXTS
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated run names (default: all)")
    parser.add_argument("--solver", default="gpu-anneal")
    parser.add_argument("--solver-opt", action="append", default=[])
    parser.add_argument("--icbs-args", default="--iterations 2 --block-size 64")
    parser.add_argument("--eval-windows", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-llm"))
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "llm.json")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or ["dense", *RUNS]
    result_file = args.results
    for name in names:
        if name == "dense":
            ppl = dense_perplexities(args.eval_windows)
            r = {"perplexity": next(iter(ppl.values())), "perplexities": ppl}
        else:
            cmd = [sys.executable, "-m", "qubo_prune.apps.cli", "prune-llm", "--model", "smollm2"]
            cmd += [*RUNS[name], "--out", str(args.out / name.replace(":", "-"))]
            cmd += ["--eval-windows", str(args.eval_windows), "--no-progress"]
            if name.startswith("icbs"):
                cmd += ["--solver", args.solver, *args.icbs_args.split()]
                cmd += [a for opt in args.solver_opt for a in ("--solver-opt", opt)]
            subprocess.run(cmd, check=True)
            report = json.loads((args.out / name.replace(":", "-") / "report.json").read_text())
            r = {k: v for k, v in report.items() if k != "layers"} | {"command": cmd}
        # re-read before writing: runs of other invocations may have finished meanwhile
        merged = json.loads(result_file.read_text()) if result_file.exists() else {}
        result_file.parent.mkdir(parents=True, exist_ok=True)
        result_file.write_text(json.dumps(merged | {name: r}, indent=1))
        print(
            f"{name:34s} ppl "
            + "  ".join(f"{text} {ppl:8.3f}" for text, ppl in r["perplexities"].items())
            + "  "
            + (
                f"err {r['mean_dense_layer_error']:.4f}  {r['prune_seconds']:7.1f} s  "
                f"{r['peak_rss_mb']:6.0f} MB"
                if "prune_seconds" in r
                else ""
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
