"""Sparsity patterns: parsing and the masks that keep their counts."""

import pytest
import torch

from qubo_prune.core.patterns import parse_pattern, pattern_mask


def test_pattern_parsing_and_masks():
    with pytest.raises(ValueError, match="sparsity"):
        parse_pattern("unstructured", 1.0)
    with pytest.raises(ValueError, match="unknown sparsity pattern"):
        parse_pattern("2-4", 0.5)
    with pytest.raises(ValueError, match="prunes 0.5"):
        parse_pattern("2:4", 0.3)
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.5, 0.1, 0.2, 0.3]])
    mask = pattern_mask(scores, parse_pattern("2:4"))
    assert mask.tolist() == [[False, True, False, True, False, True, True, False]]


@pytest.mark.parametrize("nm", ["2:4", "1:4", "3:4", "4:8", "16:32"])
def test_nm_masks_prune_the_lowest_with_ties_in_index_order(nm):
    """Narrow groups are ranked by pairwise comparisons, wide ones sorted: both must give what
    a stable ascending sort of every group gives (ties pruned in index order, as the row and
    layer masks prune them), on scores with many ties and a NaN (ranked above everything)."""
    n, m = (int(v) for v in nm.split(":"))
    generator = torch.Generator().manual_seed(m + n)
    scores = torch.randint(0, 4, (9, 4 * m), generator=generator).float()
    scores[2, 1] = float("nan")
    groups = scores.reshape(9, 4, m)
    order = torch.sort(groups, dim=2, stable=True).indices[..., : m - n]
    expected = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, order, True)
    mask = pattern_mask(scores, parse_pattern(nm, 1 - n / m))
    assert torch.equal(mask, expected.reshape(9, 4 * m))
    assert not mask[2, 1]
    ties = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 2.0, 0.0, 0.0]])
    assert pattern_mask(ties, parse_pattern("2:4")).tolist() == [
        [True, True, False, False, True, False, True, False]
    ]
