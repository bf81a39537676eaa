"""The layer-wise baselines by hand: Wanda's scores, SparseGPT's OBS update, N:M validity."""

import pytest
import torch

from qubo_prune.core.patterns import check_mask, parse_pattern
from qubo_prune.objectives.reconstruction import GramAccumulator
from qubo_prune.pruners.baselines import sparsegpt, sparsegpt_layer, wanda_layer
from tests.helpers import exact_refit, layer_problem


def test_wanda_by_hand():
    W = torch.tensor([[1.0, -2.0, 0.5, 3.0], [2.0, 0.1, -1.0, 0.2]])
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [4.0, 0.0], [0.0, 0.1]])  # (in, tokens)
    acc = GramAccumulator(4)
    acc.add(X.T)
    # ||X_j|| = 1, 1, 4, 0.1 -> scores row 0: 1, 2, 2, 0.3; row 1: 2, 0.1, 4, 0.02
    weights, mask = wanda_layer(W, acc, parse_pattern("unstructured"))
    assert mask.tolist() == [[True, False, False, True], [False, True, False, True]]
    assert torch.equal(weights, W * ~mask)


def test_sparsegpt_by_hand():
    # Two inputs; H = 2/N X X^T. Pruning w_0 of a row moves the OBS update onto w_1:
    # delta w_1 = -w_0 [H^-1]_01 / [H^-1]_00 = w_0 H_01 / H_11.
    X = torch.tensor([[1.0, 2.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)  # (in, tokens)
    acc = GramAccumulator(2)
    acc.add(X.T)
    H = 2.0 / 3 * acc.G
    H = H + 0.01 * H.diagonal().mean() * torch.eye(2, dtype=torch.float64)
    W = torch.tensor([[1.0, 5.0]], dtype=torch.float64)
    new, mask = sparsegpt(W, acc.inverse_hessian(torch.float64), parse_pattern("unstructured", 0.5))
    assert mask.tolist() == [[True, False]]
    assert new[0, 0] == 0
    assert new[0, 1].item() == pytest.approx(5.0 + 1.0 * H[0, 1].item() / H[1, 1].item())
    # the update is the least-squares optimum of the kept weight on the damped Hessian
    ls = exact_refit(W, mask, H)
    assert ls[0, 1].item() == pytest.approx(new[0, 1].item())
    # float32, as the reference code runs, gives the same answer to float32's precision
    new32, mask32 = sparsegpt_layer(W.float(), acc, parse_pattern("unstructured", 0.5))
    assert torch.equal(mask32, mask) and new32.dtype == torch.float32
    assert new32[0, 1].item() == pytest.approx(new[0, 1].item(), rel=1e-6)


def test_sparsegpt_nm_valid():
    W0, _, acc = layer_problem(rows=5, cols=16)
    for text in ("2:4", "4:8"):
        pattern = parse_pattern(text)
        new, mask = sparsegpt(W0, acc.inverse_hessian(torch.float64), pattern, blocksize=8)
        check_mask(mask, pattern)
        assert bool((new[mask] == 0).all())


@pytest.mark.parametrize("sparsity", [0.3, 0.7])
def test_sparsegpt_unstructured_count_is_exact_per_layer_whatever_the_blocks(sparsity):
    # 3 blocks of 128 columns x 7 rows at 0.7: round(627.2) = 627 pruned each, 1881 in all,
    # but the layer's exact count is 2688 - round(0.3 * 2688) = 1882 (0.3: 807 against 806)
    W0, _, acc = layer_problem(rows=7, cols=384)
    _, mask = sparsegpt(
        W0, acc.inverse_hessian(torch.float64), parse_pattern("unstructured", sparsity)
    )
    check_mask(mask, parse_pattern("layer", sparsity))
