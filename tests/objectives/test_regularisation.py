"""The refit's damping: the objective it stands for, the held-out split, the choice it makes."""

import pytest
import torch

from qubo_prune.objectives.reconstruction import GramAccumulator
from qubo_prune.objectives.refit import refit, residual
from qubo_prune.objectives.regularisation import DAMPINGS, choose_damping, damped, fit_part
from qubo_prune.pruners.calibration import GramHooks, Stream
from qubo_prune.pruners.methods import LayerwiseConfig


def gram(U: torch.Tensor) -> GramAccumulator:
    acc = GramAccumulator(U.shape[1])
    acc.add(U)
    return acc


def test_damped_refit_is_the_least_squares_fit_pulled_toward_the_dense_weights():
    """``G + lam I`` in the refit minimises ``e^T G e + lam ||w_S - w0_S||^2`` row by row."""
    g = torch.Generator().manual_seed(0)
    W0 = torch.randn(3, 6, generator=g, dtype=torch.float64)
    acc = gram(torch.randn(20, 6, generator=g, dtype=torch.float64))
    mask = torch.rand(3, 6, generator=g) < 0.5
    damping = 0.3
    lam = damping * acc.G.diagonal().mean()
    G = damped(acc, damping).G
    torch.testing.assert_close(G - acc.G, lam * torch.eye(6, dtype=torch.float64))
    assert damped(acc, 0.0) is acc
    fitted = refit(W0, mask, G, residual(W0, W0 * ~mask, G), 50).weights
    for r in range(3):
        S = ~mask[r]
        A = acc.G[S][:, S] + lam * torch.eye(int(S.sum()), dtype=torch.float64)
        b = (acc.G @ W0[r])[S] + lam * W0[r, S]
        expected = torch.zeros(6, dtype=torch.float64)
        expected[S] = torch.linalg.solve(A, b)
        torch.testing.assert_close(fitted[r], expected)


def test_held_out_windows_go_to_the_held_gram_only_and_never_to_the_fit():
    g = torch.Generator().manual_seed(1)
    layer = torch.nn.Linear(5, 4).double()
    windows = [torch.randn(1, 7, 5, generator=g, dtype=torch.float64) for _ in range(6)]
    held = LayerwiseConfig(refit=True, refit_damping="auto", held_out_windows=2).held_out(6)
    hooks = GramHooks({"l": layer}, held)
    Stream(windows, (), {}).run(layer, hooks)
    acc = hooks.grams["l"]
    product = lambda ids: sum(windows[i][0].T @ windows[i][0] for i in ids)  # noqa: E731
    torch.testing.assert_close(acc.G, product(range(6)))
    torch.testing.assert_close(acc.held.G, product(held))
    torch.testing.assert_close(fit_part(acc).G, product(set(range(6)) - held))
    assert (acc.held.tokens, fit_part(acc).tokens) == (14, 28)


def test_pooled_streams_hold_out_the_same_windows_of_both():
    """--fit-inputs both: the pruned and the dense stream's Grams are summed, and a window held
    out of one is held out of the other, so no window of either fits and chooses."""
    g = torch.Generator().manual_seed(2)
    layer = torch.nn.Linear(5, 4).double()
    held = LayerwiseConfig(refit=True, refit_damping="auto", held_out_windows=2).held_out(6)
    streams = [[torch.randn(1, 3, 5, generator=g, dtype=torch.float64) for _ in range(6)]] * 2
    streams[1] = [w + 0.5 * torch.randn(w.shape, generator=g, dtype=w.dtype) for w in streams[0]]
    accs = []
    for windows in streams:
        hooks = GramHooks({"l": layer}, held)
        Stream(windows, (), {}).run(layer, hooks)
        hooks.remove()
        accs.append(hooks.grams["l"])
    pooled = accs[0].pooled(accs[1])
    product = lambda ids: sum(s[i][0].T @ s[i][0] for s in streams for i in ids)  # noqa: E731
    torch.testing.assert_close(pooled.G, product(range(6)))
    torch.testing.assert_close(pooled.held.G, product(held))
    torch.testing.assert_close(fit_part(pooled).G, product(set(range(6)) - held))
    assert (pooled.tokens, pooled.held.tokens) == (36, 12)
    assert accs[0].pooled(gram(torch.ones(2, 5, dtype=torch.float64))).held is None


def test_held_out_windows_are_spread_and_leave_some_to_fit():
    config = LayerwiseConfig(refit=True, refit_damping="auto", held_out_windows=8)
    assert config.held_out(32) == frozenset({2, 6, 10, 14, 18, 22, 26, 30})
    assert LayerwiseConfig(refit=True).held_out(32) == frozenset()
    with pytest.raises(ValueError, match="none would be left to fit"):
        config.held_out(8)
    with pytest.raises(ValueError, match="needs --refit"):
        LayerwiseConfig(refit_damping=0.1)
    with pytest.raises(ValueError, match="'auto' or a number >= 0"):
        LayerwiseConfig(refit=True, refit_damping="lots")
    with pytest.raises(ValueError, match="'auto' or a number >= 0"):
        LayerwiseConfig(refit=True, refit_damping=-1)


def held_out_case(shift: bool) -> tuple[torch.Tensor, torch.Tensor, GramAccumulator]:
    """A layer whose fit windows span only 3 of 8 input directions; the held-out windows span
    the same 3 (``shift=False``) or all 8 (``shift=True``, text unlike the calibration)."""
    g = torch.Generator().manual_seed(2)
    W0 = torch.randn(4, 8, generator=g, dtype=torch.float64)
    basis = torch.randn(3, 8, generator=g, dtype=torch.float64)
    acc = GramAccumulator(8, held_out=True)
    for _ in range(6):
        acc.add(torch.randn(40, 3, generator=g, dtype=torch.float64) @ basis)
    for _ in range(2):
        U = torch.randn(40, 8 if shift else 3, generator=g, dtype=torch.float64)
        acc.add(U if shift else U @ basis, held_out=True)
    mask = torch.zeros(4, 8, dtype=torch.bool)
    mask[:, ::2] = True
    return W0, mask, acc


def test_choice_follows_the_held_out_error():
    """Inputs unlike the fit's punish a refit free to move: a pull toward W0 is chosen. Like
    them, the plain refit is (damping only costs error there)."""
    for shift in (True, False):
        W0, mask, acc = held_out_case(shift)
        choice = choose_damping(W0, mask, W0 * ~mask, acc, iterations=20, dtype=torch.float64)
        errors = choice.held_out_errors
        assert choice.damping == min(errors, key=errors.get)
        assert (choice.damping > 0) == shift
        assert errors[choice.damping] < errors[0.0 if shift else max(errors)]
        assert list(errors) == list(DAMPINGS[: len(errors)])  # walked from light to heavy
        if not shift:  # stopped at the first candidate worse than the plain refit
            assert len(errors) == 2


def test_held_out_errors_are_the_refits_relative_errors_on_the_held_out_inputs():
    """Each candidate's error is ``||(W0 - W) U||^2 / ||W0 U||^2`` of its float32 refit on the
    fit windows alone, on the held-out windows' inputs (the reference measured in float64)."""
    W0, mask, acc = held_out_case(shift=True)
    choice = choose_damping(W0, mask, W0 * ~mask, acc, iterations=20, dtype=torch.float32)
    assert len(choice.held_out_errors) >= 2
    fit = fit_part(acc)
    for damping, error in choice.held_out_errors.items():
        G, W0f = damped(fit, damping).G.float(), W0.float()
        W = refit(W0f, mask, G, residual(W0f, W0f * ~mask, G), 20).weights
        E = W0 - W.double()
        expected = float(((E @ acc.held.G) * E).sum() / ((W0 @ acc.held.G) * W0).sum())
        assert error == pytest.approx(expected, rel=1e-4)
