"""Objective 2: block energies equal the measured output error; Grams of half-precision inputs."""

import numpy as np
import pytest
import torch

from qubo_prune.core.patterns import parse_pattern, pattern_mask
from qubo_prune.objectives.reconstruction import GramAccumulator, build_blocks
from qubo_prune.objectives.refit import residual
from qubo_prune.pruners.selection import select_row_blocks
from tests.helpers import exact_refit, layer_problem


@pytest.mark.parametrize("refit,given_state", [(False, False), (False, True), (True, True)])
def test_gram_energy_equals_measured_output_error_change(refit, given_state):
    W0, U, acc = layer_problem()
    pattern = parse_pattern("unstructured", 0.5)
    mask = pattern_mask(W0.abs(), pattern)
    weights, values = W0 * ~mask, W0
    if refit:  # refit kept weights, arbitrary proposals for the pruned ones
        weights = exact_refit(W0, mask, acc.G)
        values = torch.where(mask, torch.randn(W0.shape, dtype=W0.dtype), weights)
    gen = torch.Generator().manual_seed(0)
    idx, groups, k = select_row_blocks(W0.abs(), mask, pattern, 8, gen, False)
    rows = torch.arange(W0.shape[0]) if given_state else slice(0, W0.shape[0])
    state = residual(W0, weights, acc.G) if given_state else None  # default: W0 masked
    batch = build_blocks(W0, acc.G, mask, rows, idx, groups, k, "w", values, state)
    rng = np.random.default_rng(1)
    for r in range(W0.shape[0]):
        block = batch.block(r)
        assert block.tensor == "w" and np.array_equal(
            block.coords, r * W0.shape[1] + idx[r].numpy()
        )
        before = ((W0[r] - weights[r]) @ U).pow(2).sum().item()
        assert block.energy(block.current) == pytest.approx(before, rel=1e-9)
        x = np.zeros(block.n, dtype=np.int8)
        x[rng.choice(block.n, size=k[0], replace=False)] = 1  # any feasible swap
        w = weights[r].clone()
        at = idx[r]
        w[at] = values[r][at] * torch.as_tensor(1 - x, dtype=w.dtype)
        after = ((W0[r] - w) @ U).pow(2).sum().item()
        assert block.energy(x) - block.energy(block.current) == pytest.approx(
            after - before, rel=1e-9, abs=1e-9
        )


def test_gram_of_half_precision_inputs_does_not_overflow():
    acc = GramAccumulator(3)
    acc.add(torch.full((2, 64, 3), 100.0, dtype=torch.float16))  # 128 * 1e4 > float16's max
    assert acc.tokens == 128
    torch.testing.assert_close(acc.G, torch.full((3, 3), 128e4, dtype=torch.float64))


def test_inverse_hessian_is_sparsegpts_damped_inverse_and_follows_new_inputs():
    _, U, acc = layer_problem(cols=6)
    acc.G[2, :] = acc.G[:, 2] = 0.0  # an input never seen in calibration
    H = 2.0 / acc.tokens * acc.G.clone()
    H[2, 2] = 1.0
    H += 0.01 * H.diagonal().mean() * torch.eye(6, dtype=H.dtype)
    K = acc.inverse_hessian(torch.float64)
    torch.testing.assert_close(K @ H, torch.eye(6, dtype=H.dtype))
    assert acc.inverse_hessian(torch.float64) is K  # one factorisation per Gram
    assert acc.inverse_hessian(torch.float32).dtype == torch.float32
    acc.add(U.T)
    assert acc.inverse_hessian(torch.float64) is not K
    with pytest.raises(ValueError, match="no calibration inputs"):
        GramAccumulator(3).inverse_hessian(torch.float64)
