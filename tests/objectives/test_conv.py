"""Conv2d in both objectives: the patches' Gram gives the measured output error, and the
factorised per-sample gradients give autograd's gradient and Fisher."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from qubo_prune.backends.registry import get_backend
from qubo_prune.core.decode import decide
from qubo_prune.core.masks import apply_swap
from qubo_prune.objectives.loss import LossObjective
from qubo_prune.objectives.reconstruction import GramAccumulator, build_blocks, row_errors
from qubo_prune.objectives.rows import layer_rows


def conv_and_inputs(**conv_args):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 3, 3, **conv_args).double()
    x = torch.randn(5, 4, 7, 7, dtype=torch.float64)
    return conv, x


def channel_errors(conv, W0_param, x):
    """Measured squared output change of every output channel, over images and positions."""
    with torch.no_grad():
        diff = F.conv2d(x, W0_param - conv.weight, None, conv.stride, conv.padding, conv.dilation)
    return (diff**2).sum(dim=(0, 2, 3))


@pytest.mark.parametrize(
    "conv_args",
    [
        {"padding": 1},
        {"stride": 2},
        {"padding": "same", "dilation": 2},
        {"padding": 2, "stride": 3},
    ],
)
def test_conv_gram_energy_equals_the_measured_output_error_change(conv_args):
    conv, x = conv_and_inputs(**conv_args)
    rows = layer_rows(conv)
    acc = GramAccumulator(36)
    acc.add(rows.inputs(x))
    W0 = rows.matrix()
    W0_param = conv.weight.detach().clone()
    rng = np.random.default_rng(1)
    mask = torch.zeros(3, 36, dtype=torch.bool)
    for r in range(3):
        mask[r, torch.as_tensor(rng.choice(36, 18, replace=False))] = True
    rows.write(W0 * ~mask)
    # the Gram's row error is the measured error of every output channel
    measured = channel_errors(conv, W0_param, x)
    assert torch.allclose(row_errors(W0, W0 * ~mask, acc.G), measured, rtol=1e-9)

    # a block of 10 weights of filter 1: the solved swap's energy is the error measured after it
    r, idx = 1, rng.choice(36, (1, 10), replace=False)
    k = (int(mask[r, idx[0]].sum()),)
    [block] = build_blocks(W0, acc.G, mask, np.array([r]), idx, (np.arange(10),), k).blocks()
    weights = W0 * ~mask
    flat_mask, flat_w, flat_v = mask.view(-1), weights.view(-1), W0.clone().view(-1)
    decision = decide(block, get_backend("exact").solve(block))
    assert decision.accepted and decision.energy < block.energy(block.current)
    to_prune, to_restore = decision.swap(block)
    apply_swap(flat_mask, flat_w, flat_v, block.coords[to_prune], block.coords[to_restore])
    rows.write(weights)
    after = channel_errors(conv, W0_param, x)
    assert decision.energy == pytest.approx(after[r].item(), rel=1e-9)
    assert block.energy(block.current) == pytest.approx(measured[r].item(), rel=1e-9)


def test_conv_rows_are_channel_innermost_and_round_trip():
    conv, _ = conv_and_inputs(padding=1)
    rows = layer_rows(conv)
    W = rows.matrix()
    # row r, column (i * 3 + j) * 4 + c holds weight[r, c, i, j]
    assert W[1, (2 * 3 + 1) * 4 + 3] == conv.weight[1, 3, 2, 1]
    mask = torch.zeros(3, 36, dtype=torch.bool)
    mask[0, 5] = True
    param = rows.param_mask(mask)
    assert param.shape == conv.weight.shape and int(param.sum()) == 1
    assert bool(param[0, 1, 0, 1])  # column 5 = (i 0, j 1, c 1)
    rows.write(W * 2)
    assert torch.equal(rows.matrix(), W * 2)


def tiny_cnn():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 3),
    ).double()


class TokenModel(nn.Module):
    """A linear fed token sequences ``(N, T, d)``, mean-pooled to logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.proj = nn.Linear(5, 6).double()
        self.head = nn.Linear(6, 3).double()

    def forward(self, x):
        return self.head(torch.tanh(self.proj(x)).mean(dim=1))


@pytest.mark.parametrize(
    "model,name,X",
    [
        (tiny_cnn(), "0.weight", torch.randn(12, 2, 6, 6, dtype=torch.float64)),
        (TokenModel(), "proj.weight", torch.randn(12, 7, 5, dtype=torch.float64)),
    ],
)
def test_factorised_fisher_matches_per_sample_autograd(model, name, X):
    y = torch.arange(12) % 3
    param = dict(model.named_parameters())[name]
    coords = np.sort(np.random.default_rng(0).choice(param.numel(), 14, replace=False))
    g, H = LossObjective(model, F.cross_entropy, "fisher").gradient_hessian(name, coords, X, y)

    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(w, x, t):
        return F.cross_entropy(functional_call(model, {**params, name: w}, (x[None],)), t[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(param.detach(), X, y)
    G = per_sample.reshape(len(X), -1)[:, torch.as_tensor(coords)]
    np.testing.assert_allclose(g, G.mean(0).numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(H, (G.T @ G / len(X)).numpy(), rtol=1e-9, atol=1e-12)
