"""What the backend examples share: one real small block, the cost guard, and the report."""

from __future__ import annotations

import argparse

import numpy as np

from qubo_prune.backends.cost import check_budget, estimate_block_cost
from qubo_prune.backends.exact import ExactCardinalitySampler
from qubo_prune.backends.registry import Backend
from qubo_prune.core.block import Block
from qubo_prune.core.decode import decide


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--hardware", action="store_true", help="run on the real device (billed)")
    p.add_argument("--n", type=int, default=8, help="block size (variables)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-cost", type=float, default=None, help="USD allowed on hardware")
    return p


def gram_block(n: int, seed: int) -> Block:
    """A layer-reconstruction block: 8 weights of one output row, half of them pruned now."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, 64))  # calibration activations of the block's input features
    w0 = np.diag(rng.normal(size=n))
    current = np.zeros(n, dtype=np.int8)
    current[rng.permutation(n)[: n // 2]] = 1
    return Block(Q=w0 @ (inputs @ inputs.T) @ w0, constant=0.0, current=current)


def guard(name: str, options: dict, max_cost: float | None) -> None:
    """Refuse before anything is sent if the block would cost more than allowed."""
    total = check_budget([estimate_block_cost(name, options)], max_cost)
    print(f"estimated cost: ${total.usd:.2f} ({total.detail or 'free'})")


def solve_and_report(backend: Backend, block: Block) -> None:
    sampleset = backend.solve(block)
    decision = decide(block, sampleset)
    exact = ExactCardinalitySampler().sample(block.to_bqm(0.0), cardinality=block.cardinality())
    print(f"solver {backend.name}: {len(sampleset)} distinct states returned")
    print(f"current mask energy {decision.current_energy:.4f}")
    print(f"best decoded energy {decision.energy:.4f} (exact optimum {exact.first.energy:.4f})")
    print(f"swap accepted: {decision.accepted}, repaired: {decision.repaired}")
    shown = {k: v for k, v in sampleset.info.items() if k != "embedding_context"}
    print(f"info: {shown}")
