"""Peak memory and time of ``refit_rows`` by rows per batch, on a real 1536-wide layer.

    python benchmarks/refit_memory.py

SmolLM2-135M's first ``mlp.down_proj`` (Gram over 32 calibration windows), Wanda mask at 2:4.
Batches are measured smallest first in one process, so each peak rise over the starting
resident set (``ru_maxrss``) is that batch size's own. Prints and writes
benchmarks/results/refit_memory.json, with each row's ratio to the smallest batch.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from record_blocks import first_down_proj

from qubo_prune.apps.prune_llm import peak_rss_mb
from qubo_prune.core.patterns import parse_pattern
from qubo_prune.objectives.reconstruction import refit_rows
from qubo_prune.pruners.baselines import wanda_layer

CHUNKS = (16, 64)


def main() -> int:
    W0, gram = first_down_proj(windows=32)
    _, mask = wanda_layer(W0, gram, parse_pattern("2:4"))
    base = peak_rss_mb()
    rows = []
    for chunk in CHUNKS:
        start = time.perf_counter()
        refit_rows(W0, mask, gram.G, chunk=chunk)
        rows.append(
            {
                "chunk": chunk,
                "peak_rise_mb": peak_rss_mb() - base,
                "seconds": time.perf_counter() - start,
            }
        )
    for r in rows:
        r["memory_ratio"] = r["peak_rise_mb"] / rows[0]["peak_rise_mb"]
        r["time_ratio"] = r["seconds"] / rows[0]["seconds"]
        print(
            f"chunk {r['chunk']:3d}: peak rise {r['peak_rise_mb']:7.1f} MB "
            f"({r['memory_ratio']:.2f}x)  {r['seconds']:6.1f} s ({r['time_ratio']:.2f}x)"
        )
    out = Path(__file__).resolve().parent / "results" / "refit_memory.json"
    out.write_text(json.dumps({"layer": "model.layers.0.mlp.down_proj", "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
