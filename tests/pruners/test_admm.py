"""ADMM (Boža 2024) on layers small enough to compute by hand, and its pattern guarantees."""

import pytest
import torch

from qubo_prune.core.patterns import check_mask, parse_pattern
from qubo_prune.objectives.reconstruction import layer_error
from qubo_prune.pruners.admm import admm
from qubo_prune.pruners.baselines import wanda_layer
from qubo_prune.pruners.methods import LayerInput, LayerwiseConfig, prune_matrix
from tests.helpers import layer_problem

# One row, two inputs with unit norms (so preconditioning changes nothing) and correlation 0.5.
W0 = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
G = torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
HALF = parse_pattern("layer", 0.5)


def test_one_admm_iteration_by_hand():
    # G' = G + 0.1 I; target = W0 G' = (2.7, 2.1); A = G' + rho I = [[2.1, .5], [.5, 2.1]].
    # Mask prunes input 1 (score 1 < 2). Z = (2, 0); V = W - Z = (0, 1);
    # W = (target + Z - V) A^-1 = (4.7, 1.1) A^-1 = (9.32, -0.04) / 4.16.
    # Result Z = (W + V) masked = (9.32 / 4.16, 0).
    weights, mask = admm(W0, G, HALF, iterations=1, prune_iterations=1)
    assert mask.tolist() == [[False, True]]
    assert weights[0, 0].item() == pytest.approx(9.32 / 4.16)
    assert weights[0, 1].item() == 0.0


def test_admm_converges_to_the_damped_least_squares_weight():
    # With the mask fixed, the kept weight minimises e^T (G + 0.1 I) e, e = (2 - w, 1):
    # 2.2 (2 - w) + 1 = 0, so w = 2 + 1 / 2.2. Twenty iterations (the default) reach it.
    weights, mask = admm(W0, G, HALF)
    assert mask.tolist() == [[False, True]]
    assert weights[0, 0].item() == pytest.approx(2 + 1 / 2.2, abs=1e-4)


def test_gradual_mask_keeps_the_pattern_and_beats_wanda():
    W, _, acc = layer_problem(rows=8, cols=32, seed=3)
    for text, sparsity in (("unstructured", 0.6), ("layer", 0.5), ("2:4", 0.5), ("4:8", 0.5)):
        config = LayerwiseConfig(method="admm", pattern=text, sparsity=sparsity)
        result = prune_matrix(LayerInput(W, acc), config)
        check_mask(result.mask, config.guaranteed_pattern())
        assert bool((result.weights[result.mask] == 0).all())
        _, wanda_mask = wanda_layer(W, acc, config.guaranteed_pattern())
        assert layer_error(W, result.weights, acc.G) < layer_error(W, W * ~wanda_mask, acc.G)


def test_admm_unstructured_is_per_matrix():
    config = LayerwiseConfig(method="admm", pattern="unstructured", sparsity=0.5)
    assert config.guaranteed_pattern().kind == "layer"
    W, _, acc = layer_problem(rows=6, cols=16, seed=1)
    result = prune_matrix(LayerInput(W, acc), config)
    assert int(result.mask.sum()) == 48
    assert len(set(result.mask.sum(dim=1).tolist())) > 1  # rows differ: chosen per matrix


def test_admm_refuses_a_pattern_that_does_not_fit():
    with pytest.raises(ValueError, match="multiple of 4"):
        admm(torch.ones(2, 6), torch.eye(6), parse_pattern("2:4"))


def test_inputs_never_seen_are_pruned_first_and_nothing_breaks():
    W, U, _ = layer_problem(rows=4, cols=8, seed=2)
    U[[2, 5]] = 0  # two inputs never active in calibration
    weights, mask = admm(W, U @ U.T, parse_pattern("layer", 0.5))
    assert bool(torch.isfinite(weights).all()) and bool(mask[:, [2, 5]].all())
    weights, mask = admm(W, torch.zeros(8, 8, dtype=torch.float64), parse_pattern("2:4"))
    assert bool(torch.isfinite(weights).all()) and int(mask.sum()) == 16
