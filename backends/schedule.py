"""An annealer's temperature range from the sizes of the moves it will make on this BQM.

dwave-samplers' simulated annealing derives its default ``beta_range`` from the largest and
smallest biases. On a dense block that is wrong twice: the range spans ten decades, so most
sweeps are spent frozen or boiling, and computing it walks every one of the n^2/2 couplings in
Python (1.1 s of a 1.3 s solve at n = 1024, once per penalty round). :func:`flip_beta_range`
measures a range instead, in milliseconds: the same rule as gpu-anneal's swap moves, here for
single flips of the (penalised) BQM.
"""

from __future__ import annotations

import math

import dimod
import numpy as np

__all__ = ["COLD_ACCEPT", "COLD_QUANTILE", "HOT_ACCEPT", "flip_beta_range"]

# Hot end: the median flip is accepted with probability 1/2, so the first sweeps mix. Cold end:
# the 1%-smallest flip is accepted with probability 1/100, so the last sweeps only descend.
# gpu-anneal's swap moves follow the same rule.
HOT_ACCEPT = 0.5
COLD_QUANTILE = 0.01
COLD_ACCEPT = 0.01
_PROBES = 4


def flip_beta_range(bqm: dimod.BinaryQuadraticModel, seed: int = 0) -> tuple[float, float]:
    """``(hot, cold)`` inverse temperatures from single-flip energy changes at random states.

    Changes are measured, not applied, at ``_PROBES`` uniformly random states (the same ones
    for the same BQM: the schedule does not depend on the sampler's seed).
    """
    # a flip of x_i changes E by (1 - 2 x_i) (a_i + sum_j b_ij x_j), in BINARY biases
    lin, (row, col, quad), _ = bqm.binary.to_numpy_vectors()  # (the SPIN view's: ~180x slower)
    n = len(lin)
    if n == 0:
        return 0.1, 1.0
    X = np.random.default_rng(seed).integers(0, 2, size=(_PROBES, n)).astype(float)
    fields = np.stack(
        [lin + np.bincount(row, quad * x[col], n) + np.bincount(col, quad * x[row], n) for x in X]
    )
    sizes = np.abs((1.0 - 2.0 * X) * fields).ravel()
    sizes = sizes[sizes > 1e-12 * sizes.max()] if sizes.max() > 0 else sizes[:0]
    if not len(sizes):
        return 0.1, 1.0  # every state has the same energy: no signal
    hot = math.log(1.0 / HOT_ACCEPT) / float(np.median(sizes))
    cold = math.log(1.0 / COLD_ACCEPT) / float(np.quantile(sizes, COLD_QUANTILE))
    return hot, max(hot, cold)
