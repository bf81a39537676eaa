"""The batched refit: the exact per-row least squares when run to convergence, never worse."""

import pytest
import torch

from qubo_prune.core.patterns import parse_pattern, pattern_mask
from qubo_prune.objectives.reconstruction import row_errors
from qubo_prune.objectives.refit import refit, residual
from tests.helpers import exact_refit, layer_problem


def masked(W0, pattern):
    mask = pattern_mask(W0.abs(), parse_pattern(pattern, 0.5))
    return mask, W0 * ~mask


@pytest.mark.parametrize("pattern", ["unstructured", "2:4", "layer"])
def test_converged_refit_is_the_exact_per_row_solve(pattern):
    W0, _, acc = layer_problem(rows=8, cols=24)
    mask, start = masked(W0, pattern)
    state = refit(W0, mask, acc.G, residual(W0, start, acc.G), 24)
    exact = exact_refit(W0, mask, acc.G)
    torch.testing.assert_close(state.weights, exact, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(state.errors, row_errors(W0, exact, acc.G), rtol=1e-8, atol=1e-10)
    assert bool((state.weights[mask] == 0).all())
    # the tracked residual is (W0 - W) G of the returned weights
    torch.testing.assert_close(state.residual, (W0 - state.weights) @ acc.G)


def test_each_iteration_lowers_every_rows_error_and_keeps_the_start_otherwise():
    W0, _, acc = layer_problem(rows=8, cols=32, seed=3)
    mask, start = masked(W0, "unstructured")
    errors = [residual(W0, start, acc.G).errors]
    for iterations in (1, 2, 3, 5):
        state = refit(W0, mask, acc.G, residual(W0, start, acc.G), iterations)
        torch.testing.assert_close(state.errors, row_errors(W0, state.weights, acc.G))
        assert bool((state.errors <= errors[-1] + 1e-12).all())
        errors.append(state.errors)
    assert float(errors[-1].sum()) < 0.9 * float(errors[0].sum())
    # a start that is already the optimum comes back unchanged
    best = residual(W0, exact_refit(W0, mask, acc.G), acc.G)
    again = refit(W0, mask, acc.G, best, 3)
    assert bool((again.errors <= best.errors).all())


def test_float32_and_float64_refits_agree_on_a_small_layer():
    W0, _, acc = layer_problem(rows=16, cols=32, seed=5)
    mask, start = masked(W0, "2:4")
    out = {}
    for dtype in (torch.float32, torch.float64):
        st = residual(W0.to(dtype), start.to(dtype), acc.gram(dtype))
        out[dtype] = refit(W0, mask, acc.gram(dtype), st, 6)
    torch.testing.assert_close(
        out[torch.float32].weights.double(), out[torch.float64].weights, rtol=1e-3, atol=1e-4
    )
    e32, e64 = (float(row_errors(W0, out[d].weights, acc.G).sum()) for d in out)
    assert e32 == pytest.approx(e64, rel=1e-5)


def test_an_input_never_seen_keeps_its_weight_and_the_rest_converge():
    W0, _, acc = layer_problem(rows=6, cols=16, seed=7)
    acc.G[3, :] = acc.G[:, 3] = 0.0  # input 3 never seen in calibration
    mask, start = masked(W0, "unstructured")
    state = refit(W0, mask, acc.G, residual(W0, start, acc.G), 16)
    assert torch.equal(state.weights[:, 3], start[:, 3])
    best = row_errors(W0, exact_refit(W0, mask, acc.G), acc.G)
    torch.testing.assert_close(state.errors, best, rtol=1e-8, atol=1e-10)
