"""Objective 1: for a least-squares model the block QUBO is the exact loss change."""

import numpy as np
import pytest
import torch
from torch import nn

from qubo_prune.backends.registry import get_backend
from qubo_prune.core.decode import decide
from qubo_prune.core.masks import MaskState
from qubo_prune.objectives.loss import LossObjective, taylor_block


def least_squares(seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(6, 3, bias=True).double()
    X = torch.randn(64, 6, dtype=torch.float64)
    Y = X @ torch.randn(6, 3, dtype=torch.float64) + 0.1 * torch.randn(64, 3, dtype=torch.float64)
    return model, X, Y


def mse(out, y):
    return ((out - y) ** 2).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decoded_swap_energy_equals_measured_loss_change(seed):
    model, X, Y = least_squares(seed)
    state = MaskState(model, ["weight"])
    rng = np.random.default_rng(seed)
    mask = torch.zeros(18, dtype=torch.bool)
    mask[torch.as_tensor(rng.choice(18, 9, replace=False))] = True
    state.set_mask("weight", mask.view(3, 6))
    coords = np.sort(rng.choice(18, 12, replace=False))
    w0 = state.dense["weight"].reshape(-1)[coords].numpy()
    current = mask[coords].numpy().astype(np.int8)
    block = LossObjective(model, mse, hessian="exact").block("weight", coords, w0, current, X, Y)

    with torch.no_grad():
        before = mse(model(X), Y).item()
    decision = decide(block, get_backend("exact").solve(block))
    assert decision.accepted
    to_prune, to_restore = decision.swap(block)
    state.apply_swap("weight", coords[to_prune], coords[to_restore])
    with torch.no_grad():
        after = mse(model(X), Y).item()
    assert decision.energy == pytest.approx(after - before, rel=1e-9, abs=1e-12)


def test_energy_of_any_state_matches_loss():
    model, X, Y = least_squares(5)
    state = MaskState(model, ["weight"])
    coords = np.arange(18)
    current = np.zeros(18, dtype=np.int8)
    current[:6] = 1
    state.set_mask("weight", torch.as_tensor(current, dtype=torch.bool).view(3, 6))
    w0 = state.dense["weight"].reshape(-1).numpy()
    block = LossObjective(model, mse, hessian="exact").block("weight", coords, w0, current, X, Y)
    with torch.no_grad():
        base = mse(model(X), Y).item()
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = np.zeros(18, dtype=np.int8)
        x[rng.choice(18, 6, replace=False)] = 1
        W = (state.dense["weight"].reshape(-1) * torch.as_tensor(1 - x)).view(3, 6)
        with torch.no_grad():
            loss = mse(X @ W.T + model.bias, Y).item()
        assert block.energy(x) == pytest.approx(loss - base, rel=1e-9, abs=1e-12)


def test_fisher_is_mean_outer_product_of_per_sample_gradients():
    model, X, Y = least_squares(1)
    coords = np.array([0, 4, 7, 11])
    obj = LossObjective(model, mse, hessian="fisher")
    g, H = obj.gradient_hessian("weight", coords, X, Y)
    rows = []
    for i in range(len(X)):
        model.zero_grad()
        mse(model(X[i : i + 1]), Y[i : i + 1]).backward()
        rows.append(model.weight.grad.reshape(-1)[coords].clone())
    G = torch.stack(rows).numpy()
    np.testing.assert_allclose(g, G.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(H, G.T @ G / len(G), rtol=1e-10, atol=1e-12)


def test_ridge_adds_squared_weight_change():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=5)
    current = np.array([1, 0, 1, 0, 0], dtype=np.int8)
    g, H = rng.normal(size=5), np.zeros((5, 5))
    b0, b1 = taylor_block(w0, current, g, H), taylor_block(w0, current, g, H, ridge=0.3)
    x = np.array([0, 1, 1, 0, 0])
    delta = (current - x) * w0
    assert b1.energy(x) - b0.energy(x) == pytest.approx(0.3 * delta @ delta)


def test_nan_hessian_is_refused():
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        taylor_block(np.ones(2), np.array([1, 0]), np.zeros(2), np.array([[np.nan, 0], [0, 1]]))
