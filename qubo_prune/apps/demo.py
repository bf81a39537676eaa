"""The main job on an embedded default: prune the garment classifier three ways, side by side."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from qubo_prune.apps.garment import Dataset, evaluate, load_fashion_mnist, trained_classifier
from qubo_prune.core.block import save_blocks
from qubo_prune.core.masks import MaskState
from qubo_prune.core.scores import initial_mask, input_norms, score, validate_density
from qubo_prune.pruners.icbs import ICBSPruner
from qubo_prune.pruners.validation import resolve_tensors

__all__ = ["DEMO_SOLVER_OPTIONS", "baseline_accuracy", "run_demo"]

# Options the demo uses when none are given, measured on real 1024-weight garment blocks
# (docs/benchmarks.md): with the provable-bound penalty, annealers and greedy descent mostly
# return answers worse than the current mask; a small multiplier plus decoding's repair does not.
DEMO_SOLVER_OPTIONS: dict[str, dict[str, Any]] = {
    "neal": {"num_reads": 2, "num_sweeps": 100, "penalty_scale": 0.01, "seed": 0},
    "tabu": {"timeout": 500, "seed": 0},
    "steepest-descent": {"num_reads": 4, "penalty_scale": 0.01, "seed": 0},
    "gpu-anneal": {"num_reads": 4, "num_sweeps": 30, "seed": 0},
}


def baseline_accuracy(
    model: torch.nn.Module,
    data: Dataset,
    names: list[str],
    method: str,
    density: float,
    norms: Mapping[str, torch.Tensor],
    granularity: str = "tensor",
) -> float:
    """Test accuracy after one-shot magnitude or Wanda pruning; the model is restored after."""
    state = MaskState(model, names)
    try:
        for n in names:
            s = score(method, state.dense[n], input_norm=norms.get(n))
            state.set_mask(n, initial_mask(s, density, granularity))
        return evaluate(model, data.X_test, data.y_test)
    finally:
        state.restore_dense()


def run_demo(
    solver: str = "neal",
    solver_options: Mapping[str, Any] | None = None,
    densities: Sequence[float] = (0.1, 0.2, 0.3),
    block_size: int = 1024,
    epochs: int = 10,
    steps_per_epoch: int = 3,
    samples_per_step: int = 1024,
    seed: int = 0,
    hidden: int = 512,
    train_subset: int = 0,
    out: Path = Path("runs/demo"),
    record_blocks: Path | None = None,
    progress: bool = True,
    **icbs_params: Any,
) -> dict[str, Any]:
    """Train (once) and prune the garment MLP; print the table, write JSON and a plot to ``out``."""
    densities = [validate_density(d) for d in densities]
    if not densities:
        raise ValueError("give at least one density")
    if not solver_options:
        solver_options = DEMO_SOLVER_OPTIONS.get(solver, {})
        if solver_options:
            opts = " ".join(f"--solver-opt {k}={v}" for k, v in solver_options.items())
            print(f"solver {solver} with the demo's default options: {opts}")

    def pruner(density: float) -> ICBSPruner:
        return ICBSPruner(
            density,
            solver,
            solver_options,
            block_size=block_size,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            samples_per_step=samples_per_step,
            seed=seed,
            checkpoint=out / "checkpoints" / f"icbs-d{density:g}.pt",
            record_blocks=record_blocks is not None,
            progress=progress,
            **icbs_params,
        )

    first = pruner(densities[0])  # every setting, the solver and the budget are checked first
    if first.cost.paid:
        print(
            f"solver {solver} is billed: estimated ${first.cost.usd * len(densities):.2f} "
            f"({first.cost.qpu_seconds * len(densities):.1f} QPU s) for the whole demo"
        )
    data, model, names = _garment(seed, hidden, train_subset)
    norms = input_norms(model, data.X_train[:4096], names)
    dense = evaluate(model, data.X_test, data.y_test)
    print(f"garment classifier on {data.name}: dense test accuracy {dense:.2f}%")
    if icbs_params.get("dry_run"):
        for density in densities:
            result = pruner(density).prune(model, F.cross_entropy, data.X_train, data.y_train)
            print(
                f"  dry run, density {density:g}: built {len(result.history)} blocks of "
                f"{block_size} weights, nothing sent"
            )
        return {"dry_run": True, "cost_usd": first.cost.usd * len(densities)}

    rows, blocks = [], []
    for density in densities:
        row = _baselines(model, data, names, density, norms)
        row.update(_icbs(pruner(density), model, data, names, blocks))
        rows.append(row)
        print(
            f"  density {density:g}: magnitude {row['magnitude']:.2f}%  wanda "
            f"{row['wanda']:.2f}%  iCBS[{solver}] {row['icbs']:.2f}% "
            f"({row['icbs_seconds']:.1f} s, {row['accepted_steps']}/{row['steps']} steps "
            "accepted)",
            flush=True,
        )
    report = {
        "dataset": data.name,
        "dense": dense,
        "solver": solver,
        "solver_options": dict(solver_options or {}),
        "block_size": block_size,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "rows": rows,
    }
    _write(report, out, blocks, record_blocks)
    return report


def _garment(seed: int, hidden: int, train_subset: int):
    """The data (optionally its first ``train_subset`` training images) and the trained MLP."""
    data = load_fashion_mnist()
    if train_subset:
        data = Dataset(
            data.name,
            data.X_train[:train_subset],
            data.y_train[:train_subset],
            data.X_test,
            data.y_test,
        )
    model = trained_classifier(data, seed=seed, hidden=hidden)
    return data, model, resolve_tensors(model, None)


def _baselines(model, data: Dataset, names: list[str], density: float, norms) -> dict[str, Any]:
    """Test accuracy and time of magnitude and Wanda at ``density``."""
    row: dict[str, Any] = {"density": density}
    for method in ("magnitude", "wanda"):
        t0 = time.perf_counter()
        row[method] = baseline_accuracy(model, data, names, method, density, norms)
        row[f"{method}_seconds"] = time.perf_counter() - t0
    return row


def _icbs(pruner: ICBSPruner, model, data: Dataset, names: list[str], blocks: list) -> dict:
    """Prune with iCBS (test accuracy after every epoch), then put the dense weights back."""
    curve: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()

    def after_epoch(epoch: int, _state: MaskState) -> None:
        curve.append((epoch, time.perf_counter() - t0, evaluate(model, data.X_test, data.y_test)))

    result = pruner.prune(
        model, F.cross_entropy, data.X_train, data.y_train, names, epoch_callback=after_epoch
    )
    row = {
        "icbs": evaluate(model, data.X_test, data.y_test),
        "icbs_seconds": time.perf_counter() - t0,
        "icbs_epochs": curve,
        "accepted_steps": result.accepted_steps,
        "steps": len(result.history),
        "tensor_density": {n: result.state.density(n) for n in names},
    }
    blocks.extend(result.blocks)
    result.state.restore_dense()
    pruner.checkpoint.unlink(missing_ok=True)
    return row


def _write(report: dict[str, Any], out: Path, blocks: list, record_blocks: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    _print_table(report)
    _plot(report, out / "demo.png")
    if record_blocks is not None:
        save_blocks(blocks, record_blocks)
        print(f"recorded {len(blocks)} blocks to {record_blocks}")
    print(f"wrote {out / 'demo.json'} and {out / 'demo.png'}")


def _print_table(report: dict[str, Any]) -> None:
    print(f"\ntest accuracy (%), dense {report['dense']:.2f}; iCBS solver {report['solver']}")
    print(f"{'density':>8} {'magnitude':>10} {'wanda':>8} {'iCBS':>8} {'iCBS time (s)':>14}")
    for r in report["rows"]:
        print(
            f"{r['density']:>8g} {r['magnitude']:>10.2f} {r['wanda']:>8.2f} {r['icbs']:>8.2f} "
            f"{r['icbs_seconds']:>14.1f}"
        )


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = [r["density"] for r in report["rows"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (
        ("magnitude", "magnitude"),
        ("wanda", "Wanda"),
        ("icbs", f"iCBS ({report['solver']})"),
    ):
        ax.plot(d, [r[key] for r in report["rows"]], marker="o", label=label)
    ax.axhline(report["dense"], color="k", ls="--", lw=1, label="no pruning")
    ax.set_xlabel("density")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"garment classifier ({report['dataset']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
