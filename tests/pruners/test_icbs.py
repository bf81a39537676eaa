"""The loop: exact density with every backend, never worse, clean failures, resume."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from qubo_prune.core.scores import initial_mask, kept_count, kth_smallest
from qubo_prune.pruners.icbs import ICBSPruner
from tests.helpers import fail_on_solve, install_plugin, tiny_data, tiny_mlp

NAMES = ["0.weight", "2.weight"]


def expected_kept(model, density):
    params = dict(model.named_parameters())
    return {n: kept_count(params[n].numel(), density) for n in NAMES}


def check_density(model, state, density):
    params = dict(model.named_parameters())
    for n, kept in expected_kept(model, density).items():
        assert int((~state.pruned[n]).sum()) == kept
        assert int((params[n] != 0).sum()) <= kept
        # pruned weights are zero, kept weights hold their original values
        w, w0, m = params[n], state.dense[n], state.pruned[n]
        assert torch.all(w[m] == 0) and torch.equal(w[~m], w0[~m])


@pytest.mark.parametrize(
    "solver,opts,block",
    [
        ("exact", {}, 16),
        ("neal", {"num_reads": 2, "num_sweeps": 50, "seed": 0}, 48),
        ("neal", {"num_reads": 2, "num_sweeps": 50, "penalty_scale": 0.01, "seed": 0}, 48),
        ("tabu", {"num_reads": 1, "timeout": 20, "seed": 0}, 48),
        ("steepest-descent", {"num_reads": 2, "seed": 0}, 48),
        ("bad-random", {"num_reads": 4, "seed": 0}, 48),
    ],
)
def test_density_exact_and_never_worse_with_every_backend(
    solver, opts, block, tmp_path, monkeypatch
):
    install_plugin(tmp_path, monkeypatch)
    model = tiny_mlp()
    X, y = tiny_data()
    density = 0.37
    pruner = ICBSPruner(
        density,
        solver,
        opts,
        block_size=block,
        epochs=6,
        steps_per_epoch=2,
        samples_per_step=128,
        progress=False,
    )
    result = pruner.prune(model, F.cross_entropy, X, y, NAMES)
    assert len(result.history) == 12
    check_density(model, result.state, density)
    for r in result.history:
        assert r.energy_after <= r.energy_before
        assert (r.swapped > 0) == r.accepted
    if solver == "bad-random":
        assert any(r.repaired for r in result.history)


def test_icbs_lowers_the_loss_from_the_magnitude_start():
    model = tiny_mlp()
    X, y = tiny_data(n=512)
    start = ICBSPruner(0.3, "exact", block_size=12, epochs=1, steps_per_epoch=1, progress=False)
    start_res = start.prune(model, F.cross_entropy, X, y, NAMES)
    with torch.no_grad():
        # loss of the plain magnitude mask (the loop's initial state)
        for n in NAMES:
            start_res.state.set_mask(n, initial_mask(start_res.state.dense[n].abs(), 0.3))
        base = F.cross_entropy(model(X), y).item()
    start_res.state.restore_dense()
    pruner = ICBSPruner(
        0.3,
        "exact",
        block_size=16,
        epochs=10,
        steps_per_epoch=2,
        samples_per_step=512,
        hessian="exact",
        ridge=0.0,
        progress=False,
    )
    pruner.prune(model, F.cross_entropy, X, y, NAMES)
    with torch.no_grad():
        after = F.cross_entropy(model(X), y).item()
    assert after < base


@pytest.mark.parametrize("density", [0.0, 1.0, -0.2, 1.5])
def test_density_outside_open_interval_is_refused(density):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        ICBSPruner(density)


def test_unknown_layer_is_refused_with_suggestion_and_model_untouched():
    model = tiny_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    X, y = tiny_data()
    with pytest.raises(ValueError, match="Did you mean '0.weight'"):
        ICBSPruner(0.5, "exact", block_size=8).prune(model, F.cross_entropy, X, y, ["0.wieght"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_unknown_setting_names_are_refused():
    with pytest.raises(ValueError, match="Did you mean 'fisher'"):
        ICBSPruner(0.5, hessian="fischer")


def test_block_too_large_for_backend_is_refused_before_work():
    from qubo_prune.backends.registry import BackendError

    with pytest.raises(BackendError, match="too large"):
        ICBSPruner(0.5, "exact", block_size=64)


def test_nan_gradients_are_refused_and_model_untouched():
    model = tiny_mlp()
    X, y = tiny_data()
    X[3, 2] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match="nothing was pruned"):
        ICBSPruner(0.5, "exact", block_size=8).prune(model, F.cross_entropy, X, y, NAMES)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_failure_mid_run_restores_the_dense_model(monkeypatch):
    model = tiny_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    X, y = tiny_data()
    pruner = ICBSPruner(0.5, "exact", block_size=8, epochs=3, steps_per_epoch=1, progress=False)
    fail_on_solve(monkeypatch, pruner, 2, RuntimeError("solver service went away"))
    with pytest.raises(RuntimeError, match="went away"):
        pruner.prune(model, F.cross_entropy, X, y, NAMES)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_interrupted_run_resumes_from_checkpoint(tmp_path, monkeypatch):
    X, y = tiny_data()
    kw = dict(block_size=12, epochs=4, steps_per_epoch=2, progress=False, samples_per_step=64)
    full = ICBSPruner(0.4, "exact", **kw).prune(tiny_mlp(), F.cross_entropy, X, y, NAMES)

    ckpt = tmp_path / "run.pt"
    pruner = ICBSPruner(0.4, "exact", checkpoint=ckpt, **kw)
    fail_on_solve(monkeypatch, pruner, 5, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        pruner.prune(tiny_mlp(), F.cross_entropy, X, y, NAMES)
    assert torch.load(ckpt, weights_only=False)["step"] == 4

    resumed = ICBSPruner(0.4, "exact", checkpoint=ckpt, **kw)
    model = tiny_mlp()
    res = resumed.prune(model, F.cross_entropy, X, y, NAMES)
    assert len(res.history) == 8
    for n in NAMES:
        assert torch.equal(res.state.pruned[n], full.state.pruned[n])

    other = ICBSPruner(0.5, "exact", checkpoint=ckpt, **kw)
    with pytest.raises(ValueError, match="another run: settings differ .density 0.4 -> 0.5"):
        other.prune(tiny_mlp(), F.cross_entropy, X, y, NAMES)


def test_masks_attach_as_torch_prune_masks():
    model = tiny_mlp()
    X, y = tiny_data()
    res = ICBSPruner(0.5, "exact", block_size=8, epochs=2, steps_per_epoch=1, progress=False).prune(
        model, F.cross_entropy, X, y, NAMES
    )
    with torch.no_grad():
        expected = model(X)
    res.state.attach_torch_prune(model)
    assert hasattr(model[0], "weight_mask") and hasattr(model[0], "weight_orig")
    assert torch.equal(model[0].weight_mask, (~res.state.pruned["0.weight"]).float())
    with torch.no_grad():
        torch.testing.assert_close(model(X), expected)


@pytest.mark.parametrize("gran", ["tensor", "row"])
@pytest.mark.parametrize("shape,density", [((7, 13), 0.1), ((10, 784), 0.3), ((5, 3), 0.5)])
def test_initial_masks_keep_exactly_the_rounded_count(gran, shape, density):
    s = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    m = initial_mask(s, density, gran)
    assert int((~m).sum()) == round(density * np.prod(shape))
    if gran == "row":
        per_row = (~m).sum(1)
        assert per_row.max() - per_row.min() <= 1
    kept_scores = torch.where(m, np.inf, s).reshape(shape[0], -1)
    pruned_scores = torch.where(m, s, -np.inf).reshape(shape[0], -1)
    if gran == "tensor":
        assert pruned_scores.max() <= kept_scores.min()
    else:
        assert (pruned_scores.max(1).values <= kept_scores.min(1).values).all()


@pytest.mark.parametrize("gran", ["tensor", "row"])
def test_initial_mask_prunes_ties_in_index_order_like_the_reference_code(gran):
    s = torch.tensor([[2.0, 1.0, 1.0, 1.0], [1.0, 1.0, 3.0, 1.0]])
    expected = {
        "tensor": [[False, True, True, True], [True, False, False, False]],
        "row": [[False, True, True, False], [True, True, False, False]],
    }
    assert initial_mask(s, 0.5, gran).tolist() == expected[gran]


@pytest.mark.parametrize("seed", range(4))
def test_tensor_mask_by_selection_equals_the_stable_sort(seed):
    """The per-matrix mask is found by selection, not a sort; on quantised scores (many ties)
    it must still prune exactly what the first entries of a stable ascending sort name."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, 6, (37, 29), generator=g).float()
    for density in (0.05, 0.3, 0.5, 0.77, 0.95):
        pruned = s.numel() - kept_count(s.numel(), density)
        expected = torch.zeros(s.numel(), dtype=torch.bool)
        expected[torch.argsort(s.reshape(-1), stable=True)[:pruned]] = True
        assert torch.equal(initial_mask(s, density, "tensor").reshape(-1), expected)


def test_kth_smallest_equals_kthvalue_on_large_inputs():
    """The bracketed search must return kthvalue's value exactly, whatever the distribution:
    ties, a block of zeros, scores that scale by column, and ranks at both ends."""
    g = torch.Generator().manual_seed(0)
    columns = torch.randn(300, 576, generator=g).abs() * torch.rand(576, generator=g) * 10
    cases = [
        torch.randn(200_000, generator=g),
        columns.reshape(-1),
        torch.randint(0, 5, (200_000,), generator=g).float(),
        torch.zeros(100_000),
        torch.cat([torch.zeros(120_000), torch.randn(80_000, generator=g)]),
    ]
    for flat in cases:
        n = flat.numel()
        for k in (1, 100, n // 3, n // 2, n - 3, n):
            assert kth_smallest(flat, k) == torch.kthvalue(flat, k).values, (n, k)


def test_large_tensor_mask_with_ties_equals_the_stable_sort():
    s = torch.randint(0, 40, (300, 576), generator=torch.Generator().manual_seed(1)).float()
    pruned = s.numel() - kept_count(s.numel(), 0.5)
    expected = torch.zeros(s.numel(), dtype=torch.bool)
    expected[torch.argsort(s.reshape(-1), stable=True)[:pruned]] = True
    assert torch.equal(initial_mask(s, 0.5, "tensor").reshape(-1), expected)
