"""The one gate every entry point passes before anything is built or sent.

The demo, ``compare``, ``prune-llm`` and the Python pruners all call :func:`admit` with the
solver, its options and how many block solves the run plans: the options are checked against
what the sampler declares, the run is priced, and a billed run without a budget, or over it, is
refused. Nothing has been built, loaded or sent when it raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from qubo_prune.backends.cost import CostEstimate, check_budget, estimate_block_cost
from qubo_prune.backends.registry import check_options, get_spec

__all__ = ["admit"]


def admit(
    solver: str,
    options: Mapping[str, Any],
    solves: int,
    max_cost: float | None = None,
    dry_run: bool = False,
) -> CostEstimate:
    """The estimated cost of ``solves`` block solves; raises before anything is sent when the
    options are wrong or a billed run is not covered by ``max_cost`` (a dry run sends nothing,
    so it is priced but never refused for its price)."""
    get_spec(solver).require()
    check_options(solver, options)
    estimate = estimate_block_cost(solver, options).times(int(solves))
    return check_budget([estimate], math.inf if dry_run else max_cost)
