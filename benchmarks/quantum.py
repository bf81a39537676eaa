"""What quantum hardware buys on real pruning blocks: the table of docs/quantum.md.

    python benchmarks/record_blocks.py --out runs/quantum-blocks --sizes 8 12 16 20 \\
        --garment-count 4 --rows 4
    flock /tmp/qubo-bench.lock python benchmarks/quantum.py --blocks runs/quantum-blocks

Blocks are recorded by this project's own runs: Fisher-Hessian blocks of an iCBS run on the
garment classifier (objective 1) and Gram-matrix row blocks of SmolLM2-135M's first
``mlp.down_proj`` (objective 2). Every backend gets them through the registry exactly as iCBS
does, and every answer is scored against the exact optimum (the ``exact`` backend):

- ``p_opt``: the share of shots (reads) that are feasible and optimal (ties included);
- ``feasible``: the share of shots meeting every cardinality before any repair;
- ``gap``: ``(E - E*) / |E*|`` of the decoded answer (``decode.decide``'s best candidate,
  repaired if need be, whether or not it beats the block's current mask);
- ``seconds``: wall time of the local run (simulators, mocks) on this shared machine;
- ``usd`` / ``qpu_seconds``: the cost guard's estimate for the same options on the real device
  (IBM Kingston for qiskit, IonQ Forte for Braket, an Advantage QPU for D-Wave).

Runs are the plan in :data:`PLAN`. Each finished (run, block) is appended to
``benchmarks/results/quantum-rows.jsonl`` at once, so an interrupted run resumes where it stopped;
``benchmarks/results/quantum.json`` holds the summary and the D-Wave embedding report, and
``benchmarks/results/quantum/gap.png`` the plot of mean gap against n.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qubo_prune.backends.cost import estimate_block_cost
from qubo_prune.backends.metrics import gap as energy_gap
from qubo_prune.backends.registry import get_backend
from qubo_prune.core.block import Block, load_blocks
from qubo_prune.core.decode import decide, sample_matrix

RESULTS = Path("benchmarks/results")
KINDS = ("garment", "smollm2")
IONQ_FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
HERON = "fake_kingston"  # Heron r2, snapshot 2026-04-15
EAGLE = "fake_brisbane"  # Eagle r3, snapshot 2025-02-26


@dataclass(frozen=True)
class Run:
    """One row family of the table: a backend with options on some sizes of blocks."""

    label: str
    solver: str
    options: dict[str, Any]
    sizes: tuple[int, ...]
    per_kind: int  # blocks of each kind (garment, smollm2) per size
    priced: dict[str, Any] = field(default_factory=dict)  # options naming the real device

    def key(self, n: int, kind: str, index: int) -> str:
        return f"{self.label}|{n}|{kind}|{index}"


def _qaoa(label: str, solver: str, options: dict, sizes: tuple, per_kind: int) -> Run:
    device = {"ibm_backend": "ibm_kingston"} if solver == "qaoa-qiskit" else {}
    if solver == "braket":
        device = {"device_arn": IONQ_FORTE}
    return Run(label, solver, {"seed": 0, **options}, sizes, per_kind, device)


def _plan() -> list[Run]:
    plan = []
    for p in (1, 2, 3):  # noiseless, Aer
        for mixer, name in (("xy", "XY"), ("x", "X")):
            plan.append(
                _qaoa(
                    f"{name}-QAOA p={p}", "qaoa-qiskit", {"reps": p, "mixer": mixer}, (8, 12, 16), 2
                )
            )
    for mixer, name in (("xy", "XY"), ("x", "X")):
        plan.append(_qaoa(f"{name}-QAOA p=1", "qaoa-qiskit", {"reps": 1, "mixer": mixer}, (20,), 1))
        plan.append(
            _qaoa(f"{name}-QAOA p=2 braket", "braket", {"reps": 2, "mixer": mixer}, (8,), 2)
        )
        plan.append(
            _qaoa(f"{name}-QAOA p=2 braket", "braket", {"reps": 2, "mixer": mixer}, (12,), 1)
        )
    for fake, device in ((HERON, "Heron"), (EAGLE, "Eagle")):  # noisy, trained noiselessly
        for p in (1, 2, 3):
            for mixer, name in (("xy", "XY"), ("x", "X")):
                options = {"reps": p, "mixer": mixer, "fake_backend": fake, "optimize_on": "local"}
                plan.append(_qaoa(f"{name}-QAOA p={p} {device}", "qaoa-qiskit", options, (8,), 1))
    for mixer, name in (("xy", "XY"), ("x", "X")):
        options = {"reps": 1, "mixer": mixer, "fake_backend": HERON, "optimize_on": "local"}
        options["shots"] = 256  # a noisy shot at n = 12 costs ~0.5 s here
        plan.append(_qaoa(f"{name}-QAOA p=1 Heron 256 shots", "qaoa-qiskit", options, (12,), 1))
        options = {"reps": 2, "mixer": mixer, "noise_model": "ionq-forte", "optimize_on": "local"}
        plan.append(_qaoa(f"{name}-QAOA p=2 IonQ Forte", "braket", options, (8,), 1))
    session = {"reps": 1, "fake_backend": HERON, "optimizer": "differential_evolution"}
    session |= {"maxiter": 3, "popsize": 4}  # 4 generations of 8 angle sets: 5 jobs, 1 session
    plan.append(_qaoa("XY-QAOA p=1 Heron, trained on it", "qaoa-qiskit", session, (8,), 1))
    for topology in ("advantage", "advantage2"):
        plan.append(
            Run(f"D-Wave mock {topology}", "dwave", {"topology": topology}, (8, 12, 16, 20), 2)
        )
    for solver in ("exact", "neal", "tabu", "steepest-descent", "gpu-anneal"):
        plan.append(Run(solver, solver, {}, (8, 12, 16, 20), 2))
    return plan


PLAN = _plan()


def load(folder: Path, n: int, kind: str, count: int) -> list[Block]:
    path = folder / f"{kind}-n{n}.npz"
    if not path.exists():
        raise SystemExit(f"no {path}: record blocks first (see this script's docstring)")
    return load_blocks(path)[:count]


def backend_for(run: Run):
    """The registry's backend for a run; a D-Wave run gets a mock QPU of its topology."""
    options = dict(run.options)
    if run.solver == "dwave":
        from qubo_prune.backends.dwave import mock_qpu

        options = {"qpu_sampler": mock_qpu(options.pop("topology"), substitute_kwargs={"seed": 0})}
    return get_backend(run.solver, **options)


def score(block: Block, sampleset, optimum: float, seconds: float) -> dict[str, Any]:
    """The table's figures for one answer."""
    X = sample_matrix(sampleset, block.n)
    counts = sampleset.record.num_occurrences
    feasible = block.is_feasible(X)
    optimal = feasible & (block.energy(X) <= optimum + 1e-9 * max(1.0, abs(optimum)))
    info = sampleset.info
    return {
        "p_opt": float(counts[optimal].sum() / counts.sum()),
        "feasible": float(counts[feasible].sum() / counts.sum()),
        "gap": float(energy_gap(decide(block, sampleset).candidate_energy, optimum)),
        "seconds": seconds,
        "depth": info.get("depth"),
        "two_qubit_gates": info.get("two_qubit_gates"),
        "chain_break_fraction": info.get("chain_break_fraction"),
        "chain_max": info.get("chain_length", {}).get("max"),
    }


def price(run: Run) -> dict[str, float]:
    if not run.priced and run.solver != "dwave":
        return {"usd": 0.0, "qpu_seconds": 0.0}
    options = {
        k: v for k, v in run.options.items() if k not in ("fake_backend", "noise_model", "topology")
    }
    estimate = estimate_block_cost(run.solver, {**options, **run.priced})
    return {"usd": estimate.usd, "qpu_seconds": estimate.qpu_seconds}


def run_plan(plan: list[Run], folder: Path, rows_path: Path) -> list[dict[str, Any]]:
    """Every (run, block) not yet in ``rows_path``, appended as soon as it is done."""
    done = {}
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            row = json.loads(line)
            done[row["key"]] = row
    optima: dict[tuple[str, int, int], float] = {}
    exact = get_backend("exact")
    for run in plan:
        todo = [
            (n, kind, i)
            for n in run.sizes
            for kind in KINDS
            for i in range(run.per_kind)
            if run.key(n, kind, i) not in done
        ]
        if not todo:
            continue
        backend, cost = backend_for(run), price(run)
        if "fake_backend" in run.options:  # its noise model is built once, on the first run
            backend.solve(Block(Q=np.eye(2), constant=0.0, current=np.array([1, 0])))
        for n, kind, i in todo:
            block = load(folder, n, kind, run.per_kind)[i]
            if (kind, n, i) not in optima:
                optima[kind, n, i] = float(exact.solve(block).first.energy)
            start = time.perf_counter()
            sampleset = backend.solve(block)
            seconds = time.perf_counter() - start
            row = {
                "key": run.key(n, kind, i),
                "label": run.label,
                "solver": run.solver,
                "n": n,
                "kind": kind,
                "block": i,
                **score(block, sampleset, optima[kind, n, i], seconds),
                **cost,
            }
            done[row["key"]] = row
            with rows_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{run.label:34s} n={n:2d} {kind:7s} #{i}: gap {row['gap']:8.2%} "
                f"P(opt) {row['p_opt']:.4f} feasible {row['feasible']:.3f} {seconds:6.1f}s",
                flush=True,
            )
    keys = {
        run.key(n, kind, i)
        for run in plan
        for n in run.sizes
        for kind in KINDS
        for i in range(run.per_kind)
    }
    return [row for key, row in done.items() if key in keys]


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means per (label, n), in plan order."""
    order: dict[str, int] = {}
    for i, run in enumerate(PLAN):
        order.setdefault(run.label, i)
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["label"], row["n"]), []).append(row)
    out = []
    for (label, n), rs in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        mean = {
            f: float(np.mean([r[f] for r in rs]))
            for f in ("p_opt", "feasible", "gap", "seconds", "usd", "qpu_seconds")
        }
        for f in ("depth", "two_qubit_gates", "chain_max", "chain_break_fraction"):
            values = [r[f] for r in rs if r.get(f) is not None]
            mean[f] = float(np.mean(values)) if values else None
        out.append({"label": label, "n": n, "blocks": len(rs), **mean})
    return out


def targets(summary: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets for noiseless XY-QAOA, from the summary."""
    by = {(s["label"], s["n"]): s for s in summary}
    noiseless = [
        s
        for s in summary
        if s["label"].startswith("XY-QAOA")
        and s["label"].split()[-1] in ("p=1", "p=2", "p=3", "braket")
    ]
    out: dict[str, Any] = {"xy_noiseless_feasible_min": min(s["feasible"] for s in noiseless)}
    for p in (1, 2, 3):
        xy, x = by.get((f"XY-QAOA p={p}", 12)), by.get((f"X-QAOA p={p}", 12))
        if xy and x:
            out[f"n12_p{p}_p_opt_xy_over_x"] = xy["p_opt"] / x["p_opt"] if x["p_opt"] else None
        if (f"XY-QAOA p={p}", 16) in by:
            out[f"n16_p{p}_xy_mean_gap"] = by[f"XY-QAOA p={p}", 16]["gap"]
    return out


def dwave_report(folder: Path) -> dict[str, Any]:
    """Per topology: the largest clique, chain lengths per n, the first embedding's time, and
    chain breaks against chain strength (multiples of uniform torque compensation) at n = 16."""
    from dwave.embedding.chain_strength import uniform_torque_compensation

    from qubo_prune.backends.dwave import DWaveCliqueQPUSampler, mock_qpu

    report: dict[str, Any] = {}
    blocks = load(folder, 16, "garment", 2) + load(folder, 16, "smollm2", 2)
    optima = [float(get_backend("exact").solve(b).first.energy) for b in blocks]
    for topology in ("advantage", "advantage2"):
        mock = mock_qpu(topology, substitute_kwargs={"seed": 0})
        sampler = DWaveCliqueQPUSampler(qpu_sampler=mock)
        start = time.perf_counter()
        largest = sampler.largest_clique_size
        chains = {}
        for n in (8, 12, 16, 20, 32, 64, largest):
            lengths = [len(c) for c in sampler.clique_embedding(n).values()]
            chains[n] = {
                "max": max(lengths),
                "mean": float(np.mean(lengths)),
                "qubits": sum(lengths),
            }
        strength = []
        for scale in (0.25, 0.5, 1.0, 2.0, 4.0):
            backend = get_backend(
                "dwave",
                qpu_sampler=mock,
                chain_strength=lambda bqm, emb, s=scale: s * uniform_torque_compensation(bqm, emb),
            )
            figures = [score(b, backend.solve(b), e, 0.0) for b, e in zip(blocks, optima)]
            strength.append(
                {
                    "scale": scale,
                    "chain_break_fraction": float(
                        np.mean([f["chain_break_fraction"] for f in figures])
                    ),
                    "feasible": float(np.mean([f["feasible"] for f in figures])),
                    "gap": float(np.mean([f["gap"] for f in figures])),
                }
            )
        report[topology] = {
            "graph": mock.properties["topology"],
            "qubits": len(mock.nodelist),
            "couplers": len(mock.edgelist),
            "largest_clique": largest,
            "embedding_seconds": time.perf_counter() - start,
            "chains": chains,
            "chain_strength": strength,
        }
        print(f"{topology}: largest clique {largest}, chains {chains}", flush=True)
        for s in strength:
            print(f"  chain strength x{s['scale']}: {s}", flush=True)
    return report


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    """Mean gap against n per backend (noiseless QAOA at p = 1, D-Wave mocks, classical)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [
        "XY-QAOA p=1",
        "X-QAOA p=1",
        "XY-QAOA p=2",
        "X-QAOA p=2",
        "D-Wave mock advantage",
        "D-Wave mock advantage2",
        "neal",
        "tabu",
        "steepest-descent",
        "gpu-anneal",
    ]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in shown:
        points = sorted((s["n"], s["gap"]) for s in summary if s["label"] == label)
        if points:
            n, g = zip(*points)
            ax.plot(n, np.asarray(g) * 100, marker="o", label=label)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("block size n (variables)")
    ax.set_ylabel("mean gap of the decoded answer (%)")
    ax.set_title("Gap to the exact optimum on recorded garment and SmolLM2 blocks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def table(summary: list[dict[str, Any]]) -> str:
    """The markdown table of docs/quantum.md."""
    lines = [
        "| backend | n | blocks | P(opt) | feasible | mean gap | s / block | $ / block (device) | depth | 2q gates |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        depth = "" if s["depth"] is None else f"{s['depth']:.0f}"
        two = "" if s["two_qubit_gates"] is None else f"{s['two_qubit_gates']:.0f}"
        lines.append(
            f"| {s['label']} | {s['n']} | {s['blocks']} | {s['p_opt']:.4f} | {s['feasible']:.3f} "
            f"| {max(s['gap'], 0.0):.3%} | {s['seconds']:.1f} | {s['usd']:.2f} | {depth} | {two} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=Path, default=Path("runs/quantum-blocks"))
    p.add_argument("--out", type=Path, default=RESULTS / "quantum.json")
    p.add_argument("--only", nargs="*", default=None, help="labels of the plan to run")
    args = p.parse_args(argv)
    plan = [r for r in PLAN if args.only is None or r.label in args.only]
    rows_path = args.out.with_name(args.out.stem + "-rows.jsonl")
    rows = run_plan(plan, args.blocks, rows_path)
    summary = summarise(rows)
    report = dwave_report(args.blocks)
    print(table(summary))
    goals = targets(summary)
    print(json.dumps(goals, indent=1))
    plot(summary, args.out.with_suffix("") / "gap.png")
    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "note": "shared machine: several agents' jobs ran at the same time",
    }
    payload = {
        "machine": machine,
        "targets": goals,
        "summary": summary,
        "dwave": report,
        "rows": rows,
    }
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
