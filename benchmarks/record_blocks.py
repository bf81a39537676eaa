"""Record real blocks for the solver benchmarks.

    python benchmarks/record_blocks.py --out runs/blocks

Writes ``garment-n{N}.npz`` (objective 1: Fisher-Hessian blocks from an iCBS run on the garment
classifier, density 0.2) and ``smollm2-n{N}.npz`` (objective 2: Gram-matrix row blocks of
SmolLM2-135M's first ``mlp.down_proj``, Wanda 50% per row as the current mask, calibration on
the first tutorial windows), ready for ``benchmarks/solvers.py`` and ``qubo-prune compare``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from qubo_prune.apps.compare import record_garment_blocks
from qubo_prune.core.block import save_blocks
from qubo_prune.core.patterns import parse_pattern, pattern_mask
from qubo_prune.core.scores import gram_input_norms, score
from qubo_prune.objectives.reconstruction import GramAccumulator, build_blocks
from qubo_prune.pruners.selection import select_row_blocks


def first_down_proj(windows: int) -> tuple[torch.Tensor, GramAccumulator]:
    """SmolLM2-135M's first ``mlp.down_proj`` weight and its Gram over the first windows."""
    from qubo_prune.apps.smollm2 import smollm2_dir
    from qubo_prune.llm.model import load_causal_lm
    from qubo_prune.llm.text import PYTHON_DOCS, calibration_windows, token_stream

    model, tokenizer = load_causal_lm(smollm2_dir())
    layer = model.model.layers[0].mlp.down_proj
    gram = GramAccumulator(layer.in_features)
    handle = layer.register_forward_hook(lambda m, inp, o: gram.add(inp[0]))
    stream = token_stream(tokenizer, PYTHON_DOCS / "tutorial")
    with torch.no_grad():
        for w in calibration_windows(stream, windows):
            model(w[None])
    handle.remove()
    return layer.weight.detach().float(), gram


def smollm2_row_blocks(sizes: list[int], rows: int, windows: int, out: Path) -> None:
    W0, gram = first_down_proj(windows)
    scores = score("wanda", W0, input_norm=gram_input_norms(gram.G))
    pattern = parse_pattern("unstructured", 0.5)
    mask = pattern_mask(scores, pattern)
    rng = np.random.default_rng(0)
    chosen = torch.as_tensor(rng.choice(W0.shape[0], size=rows, replace=False))
    generator = torch.Generator().manual_seed(0)
    for n in sizes:
        if n > W0.shape[1]:
            print(f"skip smollm2 n={n}: rows have {W0.shape[1]} weights")
            continue
        idx, groups, k = select_row_blocks(
            scores[chosen], mask[chosen], pattern, n, generator, False
        )
        batch = build_blocks(
            W0, gram.G, mask, chosen, idx, groups, k, tensor="model.layers.0.mlp.down_proj.weight"
        )
        blocks = batch.blocks()
        print(
            f"smollm2 n={n}: {len(blocks)} row blocks -> {save_blocks(blocks, out / f'smollm2-n{n}.npz')}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/blocks"))
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    p.add_argument("--garment-count", type=int, default=4)
    p.add_argument("--rows", type=int, default=64, help="SmolLM2 rows per size")
    p.add_argument("--windows", type=int, default=8, help="SmolLM2 calibration windows")
    p.add_argument("--skip-llm", action="store_true")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        path = args.out / f"garment-n{n}.npz"
        blocks = record_garment_blocks(path, n, args.garment_count)
        print(f"garment n={n}: {len(blocks)} blocks -> {path}")
    if not args.skip_llm:
        smollm2_row_blocks(args.sizes, args.rows, args.windows, args.out)


if __name__ == "__main__":
    main()
