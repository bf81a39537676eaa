"""What ``qubo-prune compare`` prints and writes: per-block and summary tables, CSV, JSON and
the quality-vs-time plot (gap against wall time over the budget ladder, one line per backend
and one panel per block size)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["summarise", "write_report"]


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def summarise(rows: list[dict[str, Any]], solvers: Sequence[str]) -> list[dict[str, Any]]:
    """One line per backend at its default budget."""
    out = []
    for s in solvers:
        rs = [r for r in rows if r["solver"] == s and r["budget"] == 1.0]
        solved = [r for r in rs if r["status"] == "solved"]
        at_best = sum(
            r["energy"] - r["best_known"] <= 1e-9 * max(1.0, abs(r["best_known"])) for r in solved
        )
        tts = [r["tts99"] for r in solved]
        out.append(
            {
                "solver": s,
                "blocks": len(rs),
                "solved": len(solved),
                "too_large": len(rs) - len(solved),
                "at_best": at_best,
                "mean_gap": _mean([r["gap"] for r in solved]),
                "mean_missed": _mean([r["missed"] for r in solved]),
                "mean_feasible_fraction": _mean([r["feasible_fraction"] for r in solved]),
                "repaired": sum(r["repaired"] for r in solved),
                "mean_seconds": _mean([r["seconds"] for r in solved]),
                "mean_p_success": _mean([r["p_success"] for r in solved]),
                "mean_seconds_per_read": _mean([r["seconds_per_read"] for r in solved]),
                "median_tts99": float(np.median([t if t is not None else np.inf for t in tts]))
                if tts
                else float("nan"),
                "mean_penalty": _mean([r["penalty"] for r in solved]),
                "qpu_access_us": float(np.nansum([r.get("qpu_access_us", np.nan) for r in solved])),
                "cost_usd": float(np.nansum([r.get("cost_usd", np.nan) for r in solved])),
            }
        )
    return out


def write_report(
    rows: list[dict[str, Any]], solvers: Sequence[str], blocks_path: Path, out: Path
) -> dict[str, Any]:
    """Print the tables; write ``compare.csv``, ``compare.json`` and ``compare.png``."""
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
    default = [r for r in rows if r["budget"] == 1.0]
    print(
        f"\n{'block':>5} {'n':>5} "
        + " ".join(f"{s[:18]:>18}" for s in solvers)
        + "   (energy, gap)"
    )
    for b in sorted({r["block"] for r in default}):
        cells = []
        for s in solvers:
            r = next(r for r in default if r["block"] == b and r["solver"] == s)
            solved = r["status"] == "solved"
            cells.append(
                f"{r['energy']:>10.3e} {r['gap']:>7.1%}" if solved else f"{'too large':>18}"
            )
        n = next(r["n"] for r in default if r["block"] == b)
        print(f"{b:>5} {n:>5} " + " ".join(cells))
    print(
        f"\n{'solver':<18} {'at best':>8} {'mean gap':>9} {'missed gain':>12} {'P(best)/read':>13} "
        f"{'s/read':>9} {'TTS99 s':>9} {'feasible':>9} {'penalty':>9} {'mean s':>8} {'too large':>10} "
        f"{'cost $':>8}"
    )
    for s in summary:
        print(
            f"{s['solver']:<18} {s['at_best']:>4}/{s['solved']:<3} {s['mean_gap']:>9.2%} "
            f"{s['mean_missed']:>12.2%} {s['mean_p_success']:>13.3f} "
            f"{s['mean_seconds_per_read']:>9.2e} {s['median_tts99']:>9.3g} "
            f"{s['mean_feasible_fraction']:>9.0%} {s['mean_penalty']:>9.3g} "
            f"{s['mean_seconds']:>8.3f} {s['too_large']:>10} {s['cost_usd']:>8.2f}"
        )


def _plot(rows: list[dict[str, Any]], solvers: Sequence[str], path: Path) -> None:
    """Per block size: mean gap against mean wall time, one line per backend over its budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["n"] for r in rows})
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
    for ax, n in zip(axes[0], sizes):
        for s in solvers:
            points = []
            for factor in sorted({r["budget"] for r in rows}):
                rs = [
                    r for r in rows
                    if r["solver"] == s and r["n"] == n and r["budget"] == factor and r["status"] == "solved"
                ]  # fmt: skip
                if rs:
                    points.append(
                        (_mean([r["seconds"] for r in rs]), _mean([r["gap"] for r in rs]))
                    )
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, [100 * y for y in ys], marker="o", label=s)
        ax.set_xscale("log")
        ax.set_xlabel("wall time per block (s)")
        ax.set_ylabel("mean gap to best known energy (%)")
        ax.set_title(f"n = {n}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
