"""The main job on an embedded default: prune the garment classifier three ways, side by side.

Every setting is checked before the data load (:class:`DemoSettings`, the pruner's own checks,
the budget gate). Each finished density's row is kept in ``OUT/densities/`` with the settings
that made it, and the density in progress keeps its iCBS checkpoint, so an interrupted demo run
again with the same command redoes neither; a dry run writes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from qubo_prune.apps.garment import (
    Dataset,
    evaluate,
    garment_mlp,
    load_fashion_mnist,
    trained_classifier,
)
from qubo_prune.apps.lock import locked
from qubo_prune.core.block import load_blocks, save_blocks
from qubo_prune.core.choices import check_counts
from qubo_prune.core.masks import MaskState
from qubo_prune.core.scores import initial_mask, input_norms, score, validate_density
from qubo_prune.pruners.icbs import ICBSPruner
from qubo_prune.pruners.validation import resolve_tensors

__all__ = ["DemoSettings", "baseline_accuracy", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    """Everything that decides the demo's numbers; ``icbs`` holds further ICBSConfig settings."""

    solver: str = "neal"
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    densities: tuple[float, ...] = (0.1, 0.2, 0.3)
    block_size: int = 1024
    epochs: int = 10
    steps_per_epoch: int = 3
    samples_per_step: int = 1024
    seed: int = 0
    hidden: int = 512
    train_subset: int = 0
    icbs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        densities = tuple(validate_density(d) for d in self.densities)
        if not densities:
            raise ValueError("give at least one density")
        object.__setattr__(self, "densities", densities)
        check_counts(("--hidden", self.hidden, 1))
        if int(self.train_subset) < 0:
            raise ValueError(f"--train-subset must be 0 (all) or positive, got {self.train_subset}")

    def pruner(self, density: float, **run: Any) -> ICBSPruner:
        return ICBSPruner(
            density,
            self.solver,
            self.solver_options,
            block_size=self.block_size,
            epochs=self.epochs,
            steps_per_epoch=self.steps_per_epoch,
            samples_per_step=self.samples_per_step,
            seed=self.seed,
            **self.icbs,
            **run,
        )

    def record(self) -> dict[str, Any]:
        """The settings as plain data, stored beside each finished density's row."""
        return json.loads(json.dumps(asdict(self), default=str))


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
    settings: DemoSettings,
    out: Path = Path("runs/demo"),
    record_blocks: Path | None = None,
    progress: bool = True,
    max_cost: float | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Train (once) and prune the garment MLP; print the table, write JSON and a plot to ``out``."""
    first = settings.pruner(settings.densities[0], max_cost=max_cost, dry_run=dry_run)
    first.check_model(garment_mlp(settings.hidden))  # blocks must fit before any data loads
    densities = len(settings.densities)
    if first.cost.paid:
        print(
            f"solver {settings.solver} is billed: estimated ${first.cost.usd * densities:.2f} "
            f"({first.cost.qpu_seconds * densities:.1f} QPU s) for the whole demo"
        )
    if dry_run:
        return _dry_run(settings, first)
    with locked(out):
        data, model, names = _garment(settings)
        norms = input_norms(model, data.X_train[:4096], names)
        dense = evaluate(model, data.X_test, data.y_test)
        print(f"garment classifier on {data.name}: dense test accuracy {dense:.2f}%")
        rows = [
            _density(settings, d, out, (model, data, names, norms), record_blocks, progress)
            for d in settings.densities
        ]
        report = {"dataset": data.name, "dense": dense, **settings.record(), "rows": rows}
        _write(report, out, record_blocks)
    return report


def _dry_run(settings: DemoSettings, first: ICBSPruner) -> dict[str, Any]:
    """Build and price every block of every density without sending one; writes nothing."""
    data, model, names = _garment(settings)
    for density in settings.densities:
        pruner = (
            first if density == settings.densities[0] else settings.pruner(density, dry_run=True)
        )
        result = pruner.prune(model, F.cross_entropy, data.X_train, data.y_train, names)
        print(
            f"  dry run, density {density:g}: built {len(result.history)} blocks of "
            f"{settings.block_size} weights, nothing sent"
        )
    return {"dry_run": True, "cost_usd": first.cost.usd * len(settings.densities)}


def _garment(settings: DemoSettings):
    """The data (optionally its first ``train_subset`` training images) and the trained MLP."""
    data = load_fashion_mnist()
    if settings.train_subset:
        data = Dataset(
            data.name,
            data.X_train[: settings.train_subset],
            data.y_train[: settings.train_subset],
            data.X_test,
            data.y_test,
        )
    model = trained_classifier(data, seed=settings.seed, hidden=settings.hidden)
    return data, model, resolve_tensors(model, None)


def _density(
    settings: DemoSettings,
    density: float,
    out: Path,
    job: tuple,
    record_blocks: Path | None,
    progress: bool,
) -> dict[str, Any]:
    """One density's row: from its saved result when the same settings made it, else run."""
    model, data, names, norms = job
    saved = out / "densities" / f"d{density:g}.json"
    if saved.exists():
        kept = json.loads(saved.read_text())
        if kept.get("settings") == settings.record():
            print(f"  density {density:g}: kept from {saved}")
            return kept["row"]
    row = {"density": density}
    for method in ("magnitude", "wanda"):
        t0 = time.perf_counter()
        row[method] = baseline_accuracy(model, data, names, method, density, norms)
        row[f"{method}_seconds"] = time.perf_counter() - t0
    checkpoint = out / "checkpoints" / f"icbs-d{density:g}.pt"
    pruner = settings.pruner(
        density, checkpoint=checkpoint, record_blocks=record_blocks is not None, progress=progress
    )
    icbs, blocks = _icbs(pruner, model, data, names)
    row.update(icbs)
    if record_blocks is not None:
        save_blocks(blocks, saved.with_suffix(".blocks.npz"))
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"settings": settings.record(), "row": row}, indent=1))
    print(
        f"  density {density:g}: magnitude {row['magnitude']:.2f}%  wanda "
        f"{row['wanda']:.2f}%  iCBS[{settings.solver}] {row['icbs']:.2f}% "
        f"({row['icbs_seconds']:.1f} s, {row['accepted_steps']}/{row['steps']} steps accepted)",
        flush=True,
    )
    return row


def _icbs(pruner: ICBSPruner, model, data: Dataset, names: list[str]) -> tuple[dict, list]:
    """Prune with iCBS (test accuracy after every epoch), then put the dense weights back;
    the row's iCBS figures and the blocks it recorded."""
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
    result.state.restore_dense()
    return row, result.blocks


def _write(report: dict[str, Any], out: Path, record_blocks: Path | None) -> None:
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    _print_table(report)
    _plot(report, out / "demo.png")
    if record_blocks is not None:
        blocks = [
            b
            for d in report["densities"]
            for b in load_blocks(out / "densities" / f"d{d:g}.blocks.npz")
        ]
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
