"""``qubo-prune``: list solvers, run the garment demo, compare solvers, prune an LLM or a
vision model."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qubo_prune.backends.registry import BackendError, parse_options

if TYPE_CHECKING:
    from qubo_prune.pruners.methods import LayerwiseConfig

__all__ = ["main"]


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err


def _add_cost_args(p: argparse.ArgumentParser, dry_run: str) -> None:
    p.add_argument(
        "--max-cost",
        type=float,
        default=None,
        metavar="USD",
        help="budget a paid solver may spend; required for QPUs and cloud solvers",
    )
    p.add_argument("--dry-run", action="store_true", help=dry_run)


def _add_solver_args(p: argparse.ArgumentParser, solver: str) -> None:
    _add_cost_args(p, "build and price every block, send nothing")
    p.add_argument("--solver", default=solver, help="backend name (see `qubo-prune solvers`)")
    p.add_argument(
        "--solver-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend option, repeatable (e.g. num_reads=4, penalty_scale=0.5)",
    )


def _add_icbs_args(p: argparse.ArgumentParser, block_size: int, epochs: int, steps: int) -> None:
    p.add_argument("--block-size", type=int, default=block_size)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--steps-per-epoch", type=int, default=steps)
    p.add_argument("--samples-per-step", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=512, help="width of the garment MLP")
    p.add_argument(
        "--train-subset",
        type=int,
        default=0,
        help="train/prune on the first N training images only (0: all)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qubo-prune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    solvers = sub.add_parser(
        "solvers", help="list every backend, installed or not, and whether usable here"
    )
    solvers.add_argument("-v", "--verbose", action="store_true", help="describe each backend")

    demo = sub.add_parser("demo", help="prune the garment classifier: magnitude, Wanda, iCBS")
    _add_solver_args(demo, "neal")
    _add_icbs_args(demo, block_size=1024, epochs=10, steps=3)
    demo.add_argument("--densities", type=_floats, default=[0.1, 0.2, 0.3])
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument(
        "--record-blocks",
        type=Path,
        default=None,
        help="save every iCBS block to this .npz (for `qubo-prune compare`)",
    )
    demo.add_argument("--no-progress", action="store_true")

    cmp_ = sub.add_parser("compare", help="solve the same recorded blocks with several backends")
    cmp_.add_argument(
        "--solvers",
        default="exact,neal,tabu,steepest-descent",
        help="comma-separated; LABEL=SOLVER adds a variant, e.g. neal-low=neal with "
        "--solver-opt neal-low:penalty_scale=0.01",
    )
    cmp_.add_argument(
        "--solver-opt",
        action="append",
        default=[],
        metavar="SOLVER:KEY=VALUE",
        help="option for one solver, repeatable (e.g. neal:num_reads=20)",
    )
    cmp_.add_argument(
        "--blocks",
        type=Path,
        default=None,
        help=".npz of recorded blocks (default: record them from the garment demo)",
    )
    cmp_.add_argument(
        "--record-size", type=int, default=20, help="block size when recording fresh blocks"
    )
    cmp_.add_argument("--record-count", type=int, default=12)
    cmp_.add_argument("--out", type=Path, default=Path("runs/compare"))
    cmp_.add_argument(
        "--budgets",
        type=_floats,
        default=[0.25, 1.0, 4.0],
        help="multiples of each backend's default work (sweeps, restarts, reads) for the "
        "quality-vs-time plot; the tables use 1",
    )
    _add_cost_args(cmp_, "price every solver on the blocks, send nothing")
    _add_prune_llm_parser(sub)
    _add_prune_vision_parser(sub)
    return parser


def _add_layerwise_args(p: argparse.ArgumentParser) -> None:
    """The options of :class:`~qubo_prune.pruners.methods.LayerwiseConfig` but the block size."""
    from qubo_prune.pruners.methods import FIT_INPUTS, LAYER_METHODS, STARTS

    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument(
        "--pattern", default="unstructured", help="unstructured (per row), layer, 2:4, 4:8"
    )
    p.add_argument("--method", default="icbs", choices=list(LAYER_METHODS))
    _add_solver_args(p, "gpu-anneal")  # batched: one call solves every row of a layer
    p.add_argument("--iterations", type=int, default=4, help="iCBS steps per layer")
    p.add_argument("--rows-per-batch", type=int, default=4096, help="iCBS blocks per solver call")
    p.add_argument(
        "--refit",
        action="store_true",
        help="least-squares refit of the kept weights (icbs then searches masks for the refit error)",
    )
    p.add_argument(
        "--refit-iterations",
        type=int,
        nargs=2,
        default=(2, 6),
        metavar=("PER_STEP", "FINAL"),
        help="conjugate-gradient iterations of the refit before each iCBS step and at the end",
    )
    p.add_argument(
        "--refit-damping",
        default="0",
        help="pull of the refit toward the dense weights, x the mean Gram diagonal: a number "
        ">= 0, or 'auto' to choose it per layer on held-out calibration windows",
    )
    p.add_argument(
        "--held-out-windows",
        type=int,
        default=8,
        help="calibration windows held back from the fit to choose the damping (with auto)",
    )
    p.add_argument(
        "--fit-inputs",
        default="pruned",
        choices=list(FIT_INPUTS),
        help="inputs each layer is fitted to: the pruned model's (as SparseGPT), or both the "
        "pruned and the dense model's (the dense model then runs even with --no-dense-errors)",
    )
    p.add_argument(
        "--precision",
        default="float32",
        choices=["float32", "float64"],
        help="precision of the layer-sized products (Grams and blocks are always float64)",
    )
    p.add_argument(
        "--start",
        default="wanda",
        choices=list(STARTS),
        help="the mask iCBS starts from (sparsegpt, admm, alps: per-layer counts when unstructured)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds iCBS's random block draws, made from the second iteration on (the "
        "solver's own draws: --solver-opt seed=N)",
    )


def _add_prune_llm_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune-llm", help="prune a causal LM's decoder layers; perplexity + checkpoint"
    )
    p.add_argument("--model", default="smollm2", help="'smollm2' or a local HF model folder")
    _add_layerwise_args(p)
    p.add_argument("--block-size", type=int, default=64, help="iCBS weights per row and step")
    p.add_argument(
        "--device",
        default="cpu",
        help="where each decoder layer runs and is pruned: cpu, cuda, cuda:1 (model stays on CPU)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (resumes if interrupted)")
    p.add_argument("--calib-windows", type=int, default=32)
    p.add_argument("--eval-windows", type=int, default=64)
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument(
        "--calib-text",
        type=Path,
        nargs="+",
        default=None,
        help="files or folders; the windows are shared out among them (default: the Python "
        "tutorial)",
    )
    p.add_argument(
        "--eval-text",
        type=Path,
        nargs="+",
        default=None,
        help="files or folders, one perplexity each (default: the Python library docs and, "
        "out of domain, the fortunes package's songs and poems)",
    )
    p.add_argument("--no-dense-errors", action="store_true", help="skip errors on dense inputs")
    p.add_argument("--no-progress", action="store_true")


def _add_prune_vision_parser(sub: argparse._SubParsersAction) -> None:
    from qubo_prune.apps.prune_vision import OBJECTIVES

    p = sub.add_parser(
        "prune-vision", help="prune a DeiT / ViT image classifier; top-1 accuracy + checkpoint"
    )
    p.add_argument(
        "--model", default="deit-fmnist", help="'deit-fmnist' or a local DeiT / ViT folder"
    )
    p.add_argument(
        "--images",
        type=Path,
        default=None,
        help="dataset folder with train/ and val/ (ImageFolder layout); "
        "default: Fashion-MNIST for deit-fmnist",
    )
    _add_layerwise_args(p)
    p.add_argument(
        "--objective",
        default="layer",
        choices=list(OBJECTIVES),
        help="layer: each layer's output error (any method); loss: iCBS on the model's "
        "classification loss (the paper's objective)",
    )
    p.add_argument(
        "--block-size",
        type=int,
        default=None,
        help="iCBS weights per block (default: 64 per row for layer, 1024 for loss)",
    )
    p.add_argument("--epochs", type=int, default=10, help="loss objective: 3 block steps each")
    p.add_argument("--calib-images", type=int, default=1024)
    p.add_argument("--eval-images", type=int, default=0, help="0: the whole evaluation split")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", type=Path, required=True, help="output folder (resumes if interrupted)")
    p.add_argument("--no-dense-errors", action="store_true", help="skip errors on dense inputs")
    p.add_argument("--no-progress", action="store_true")


def cmd_solvers(args: argparse.Namespace) -> int:
    """Every backend: installed and usable here (credentials found, never verified offline), the
    largest block its default options take, how it keeps the cardinality, its defaults."""
    from qubo_prune.backends.registry import available_backends

    rows = []
    for name, spec in available_backends().items():
        options = spec.options()
        limit = spec.max_variables(options)
        kind = (
            "native"
            if spec.keeps_cardinality(options)
            else f"penalty {options.get('penalty', 'auto')}"
        )
        defaults = " ".join(f"{k}={v}" for k, v in spec.defaults.items()) or "-"
        rows.append(
            (name, spec.status()[0], "any" if limit is None else str(limit), kind, defaults)
        )
    header = ("solver", "status", "max vars", "cardinality", "defaults")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    for name, spec in available_backends().items():
        todo = spec.status()[1]
        if args.verbose or todo:
            print(f"\n{name}: {spec.description}" if args.verbose else f"\n{name}:", end="")
            print(f"\n  to use it: {todo}" if todo else "")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from qubo_prune.apps.demo import DemoSettings, run_demo

    settings = DemoSettings(
        solver=args.solver,
        solver_options=parse_options(args.solver_opt),
        densities=tuple(args.densities),
        block_size=args.block_size,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        samples_per_step=args.samples_per_step,
        seed=args.seed,
        hidden=args.hidden,
        train_subset=args.train_subset,
    )
    run_demo(
        settings,
        out=args.out,
        record_blocks=args.record_blocks,
        progress=not args.no_progress,
        max_cost=args.max_cost,
        dry_run=args.dry_run,
    )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from qubo_prune.apps.compare import compare_solvers, per_solver_options, split_solvers

    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    compare_solvers(
        solvers,
        per_solver_options(args.solver_opt, list(split_solvers(solvers))),
        blocks_path=args.blocks,
        out=args.out,
        record_size=args.record_size,
        record_count=args.record_count,
        max_cost=args.max_cost,
        dry_run=args.dry_run,
        budgets=args.budgets,
    )
    return 0


def layerwise_config(args: argparse.Namespace, block_size: int | None = None) -> LayerwiseConfig:
    """The per-layer config the options of ``prune-llm`` or ``prune-vision`` describe."""
    from qubo_prune.pruners.methods import LayerwiseConfig

    return LayerwiseConfig(
        method=args.method,
        sparsity=args.sparsity,
        pattern=args.pattern,
        solver=args.solver,
        solver_options=parse_options(args.solver_opt),
        block_size=args.block_size if block_size is None else block_size,
        iterations=args.iterations,
        rows_per_batch=args.rows_per_batch,
        refit=args.refit,
        refit_iterations=tuple(args.refit_iterations),
        start=args.start,
        precision=args.precision,
        seed=args.seed,
        refit_damping=args.refit_damping,
        held_out_windows=args.held_out_windows,
        fit_inputs=args.fit_inputs,
    )


def cmd_prune_llm(args: argparse.Namespace) -> int:
    from qubo_prune.apps.prune_llm import (
        CALIB_TEXTS,
        EVAL_TEXTS,
        LLMJob,
        format_summary,
        run_prune_llm,
    )

    config = layerwise_config(args)
    job = LLMJob(
        model=args.model,
        calib_texts=tuple(args.calib_text or CALIB_TEXTS),
        eval_texts=tuple(args.eval_text or EVAL_TEXTS),
        calib_windows=args.calib_windows,
        eval_windows=args.eval_windows,
        seqlen=args.seqlen,
        dense_errors=not args.no_dense_errors,
        device=args.device,
    )
    summary = run_prune_llm(
        job, config, args.out, args.max_cost, args.dry_run, progress=not args.no_progress
    )
    if summary.get("dry_run"):
        return 0
    print(format_summary(summary))
    return 0


def cmd_prune_vision(args: argparse.Namespace) -> int:
    from qubo_prune.apps.prune_vision import VisionJob, format_vision_summary, run_prune_vision

    if args.dry_run:
        raise ValueError("prune-vision has no dry run; a paid solver needs --max-cost")
    loss = args.objective == "loss"
    config = layerwise_config(args, args.block_size or 64)
    job = VisionJob(
        model=args.model,
        images=args.images,
        objective=args.objective,
        calib_images=args.calib_images,
        eval_images=args.eval_images,
        batch_size=args.batch_size,
        epochs=args.epochs,
        block_size=args.block_size or (1024 if loss else 64),
        dense_errors=not args.no_dense_errors,
        progress=not args.no_progress,
        max_cost=args.max_cost,
    )
    print(format_vision_summary(run_prune_vision(job, config, args.out)))
    return 0


AFTER_INTERRUPT = {
    "demo": "finished densities and the checkpoint of the one in progress are kept in {out}: "
    "run the same command again to resume",
    "prune-llm": "finished decoder layers are kept in {out}: run the same command again to resume",
    "prune-vision": "finished layers are kept in {out}: run the same command again to resume",
    "compare": "nothing was written to {out}",
}


def main(argv: Sequence[str] | None = None) -> int:
    from qubo_prune.apps.lock import FolderBusy

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    args = build_parser().parse_args(argv)
    commands = {
        "solvers": cmd_solvers,
        "demo": cmd_demo,
        "prune-llm": cmd_prune_llm,
        "prune-vision": cmd_prune_vision,
    }
    try:
        return commands.get(args.command, cmd_compare)(args)
    except (BackendError, ValueError, FloatingPointError, OSError, FolderBusy) as err:
        print(f"qubo-prune {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = AFTER_INTERRUPT.get(args.command, "").format(out=getattr(args, "out", ""))
        print(f"qubo-prune {args.command}: interrupted; {kept}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
