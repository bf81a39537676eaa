"""iCBS on one layer: never worse, every count of the pattern kept."""

import pytest
import torch

from qubo_prune.backends.registry import get_backend
from qubo_prune.core.patterns import check_mask, parse_pattern, pattern_mask
from qubo_prune.objectives.reconstruction import layer_error
from qubo_prune.pruners.layerwise import icbs_layer
from tests.helpers import layer_problem


def test_icbs_layer_never_worse_and_keeps_nm_groups():
    W0, _, acc = layer_problem(rows=8, cols=16)
    backend = get_backend("exact")
    for text in ("unstructured", "2:4", "4:8"):
        pattern = parse_pattern(text, 0.5)
        mask = pattern_mask(W0.abs(), pattern)
        W, new, stats = icbs_layer(W0, acc.G, mask, pattern, backend, block_size=8, iterations=3)
        check_mask(new, pattern)
        assert torch.equal(W, W0 * ~new)
        before = layer_error(W0, W0 * ~mask, acc.G)
        after = layer_error(W0, W0 * ~new, acc.G)
        assert after <= before + 1e-12
        assert stats.accepted > 0 and after < before
        dense = float(((W0 @ acc.G) * W0).sum())
        assert stats.predicted_gain == pytest.approx((before - after) * dense, rel=1e-6)


def test_icbs_layer_with_a_per_layer_pattern_keeps_each_rows_count():
    W0, _, acc = layer_problem(rows=8, cols=16)
    mask = pattern_mask(W0.abs(), parse_pattern("layer", 0.5))
    mask[0], mask[1] = torch.arange(16) < 3, torch.arange(16) >= 3  # 3 and 13 pruned
    backend = get_backend("exact")
    _, new, stats = icbs_layer(
        W0, acc.G, mask, parse_pattern("layer", 0.5), backend, block_size=8, iterations=4
    )
    assert torch.equal(new.sum(dim=1), mask.sum(dim=1)) and stats.accepted > 0
