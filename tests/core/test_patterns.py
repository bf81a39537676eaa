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
