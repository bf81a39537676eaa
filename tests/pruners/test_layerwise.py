"""iCBS on one layer: never worse, every count kept, the tensor and per-block paths alike."""

import pytest
import torch

from qubo_prune.backends.registry import get_backend
from qubo_prune.core.patterns import check_mask, parse_pattern, pattern_mask
from qubo_prune.objectives.reconstruction import layer_error
from qubo_prune.pruners.layerwise import RefitSchedule, icbs_layer, refit_layer
from qubo_prune.pruners.transfers import row_transfers
from tests.helpers import exact_refit, layer_problem

F64 = torch.float64


class PerBlock:
    """A backend seen only through ``solve_many``: every block goes as its own BQM."""

    def __init__(self, backend):
        self.solve_many = backend.solve_many


def test_icbs_layer_never_worse_and_keeps_nm_groups():
    W0, _, acc = layer_problem(rows=8, cols=16)
    backend = get_backend("exact")
    for text in ("unstructured", "2:4", "4:8"):
        pattern = parse_pattern(text, 0.5)
        mask = pattern_mask(W0.abs(), pattern)
        W, new, stats = icbs_layer(
            W0, acc, mask, pattern, backend, block_size=8, iterations=3, dtype=F64
        )
        check_mask(new, pattern)
        assert torch.equal(W, W0 * ~new)
        before = layer_error(W0, W0 * ~mask, acc.G)
        after = layer_error(W0, W0 * ~new, acc.G)
        assert after <= before + 1e-12
        assert stats.accepted > 0 and after < before
        dense = float(((W0 @ acc.G) * W0).sum())
        assert stats.predicted_gain == pytest.approx((before - after) * dense, rel=1e-6)


@pytest.mark.parametrize("refit", [False, True])
def test_a_per_layer_pattern_moves_counts_between_rows_and_keeps_the_layers(refit):
    W0, _, acc = layer_problem(rows=8, cols=16)
    W0[1] *= 0.01  # row 1's weights cost little to prune, row 0's much
    pattern = parse_pattern("layer", 0.5)
    mask = pattern_mask(W0.abs(), parse_pattern("unstructured", 0.5))  # 8 in every row
    mask[0], mask[1] = torch.arange(16) >= 3, torch.arange(16) < 3  # 13 and 3 pruned
    schedule = RefitSchedule(2, 4) if refit else None
    W, new, stats = icbs_layer(
        W0,
        acc,
        mask,
        pattern,
        get_backend("exact"),
        block_size=8,
        iterations=4,
        refit_schedule=schedule,
        dtype=F64,
    )
    check_mask(new, pattern)
    assert int(new.sum()) == int(mask.sum()) and stats.transferred > 0
    assert new[0].sum() < 13 and new[1].sum() > 3  # the count moved toward the cheap row
    before = layer_error(W0, W0 * ~mask, acc.G)
    after = layer_error(W0, W, acc.G)
    assert after < before
    if not refit:  # every move is exact: the predicted gain is the measured one
        dense = float(((W0 @ acc.G) * W0).sum())
        assert stats.predicted_gain == pytest.approx((before - after) * dense, rel=1e-6)


def test_row_transfers_pair_the_cheapest_prune_with_the_best_restore():
    # G = I: a row's error is the sum of its removed squared weights
    W0 = torch.tensor([[1.0, 0.1, 5.0], [4.0, 3.0, 0.2], [2.0, 2.0, 2.0]], dtype=F64)
    mask = torch.tensor([[False, False, True], [False, True, True], [False, False, True]])
    W = W0 * ~mask
    residual = (W0 - W) @ torch.eye(3, dtype=F64)
    to_prune, to_restore, gain = row_transfers(W, residual, W0, mask, torch.ones(3, dtype=F64))
    # cheapest prune: row 0's 0.1 (+0.01); best restore of another row: row 1's 3 (-9). Rows 0
    # and 1 are then used, and row 2's prune (+4) has no receiver left: one move per row.
    assert to_prune.tolist() == [1] and to_restore.tolist() == [4]
    assert gain == pytest.approx(9.0 - 0.01)
    # a layer with nothing left to restore, or nothing worth moving, gets no transfer
    none = row_transfers(W0, torch.zeros_like(W0), W0, torch.zeros_like(mask), torch.ones(3))
    assert len(none[0]) == 0 and none[2] == 0.0


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
@pytest.mark.parametrize("refit", [False, True])
def test_tensor_path_and_per_block_path_give_the_same_masks(pattern, refit):
    W0, _, acc = layer_problem(rows=24, cols=32, seed=2)
    p = parse_pattern(pattern, 0.5)
    mask = pattern_mask(W0.abs(), p)
    backend = get_backend("gpu-anneal", num_reads=4, num_sweeps=20, seed=3)
    assert backend.takes_tensors
    schedule = RefitSchedule(2, 4) if refit else None
    runs = [
        icbs_layer(
            W0,
            acc,
            mask,
            p,
            solver,
            block_size=8,
            iterations=2,
            rows_per_batch=10,
            refit_schedule=schedule,
            dtype=F64,
        )  # fmt: skip
        for solver in (backend, PerBlock(backend))
    ]
    (W_t, mask_t, stats_t), (W_b, mask_b, stats_b) = runs
    assert torch.equal(mask_t, mask_b) and not torch.equal(mask_t, mask)
    torch.testing.assert_close(W_t, W_b)
    assert stats_t.accepted == stats_b.accepted > 0
    assert stats_t.predicted_gain == pytest.approx(stats_b.predicted_gain, rel=1e-9)


def test_float32_and_float64_layers_agree():
    W0, _, acc = layer_problem(rows=16, cols=32, seed=4)
    p = parse_pattern("unstructured", 0.5)
    mask = pattern_mask(W0.abs(), p)
    backend = get_backend("exact")
    out = {
        dtype: icbs_layer(
            W0,
            acc,
            mask,
            p,
            backend,
            block_size=8,
            iterations=2,
            refit_schedule=RefitSchedule(2, 8),
            dtype=dtype,
        )  # fmt: skip
        for dtype in (torch.float32, F64)
    }
    assert torch.equal(out[torch.float32][1], out[F64][1])
    e32, e64 = (layer_error(W0, out[d][0], acc.G) for d in out)
    assert e32 == pytest.approx(e64, rel=1e-4)


def test_refit_search_ends_below_its_start_and_near_the_exact_refit():
    W0, _, acc = layer_problem(rows=12, cols=24, seed=6)
    p = parse_pattern("2:4", 0.5)
    mask = pattern_mask(W0.abs(), p)
    start = W0 * ~mask
    W, new, stats = icbs_layer(
        W0, acc, mask, p, get_backend("exact"), block_size=8, iterations=2,
        refit_schedule=RefitSchedule(1, 24), start_weights=start, dtype=F64,
    )  # fmt: skip
    check_mask(new, p)
    assert bool((W[new] == 0).all()) and stats.accepted > 0
    exact = exact_refit(W0, new, acc.G)
    assert layer_error(W0, W, acc.G) == pytest.approx(layer_error(W0, exact, acc.G), rel=1e-6)
    refit_start = refit_layer(W0, mask, acc, start, 24, F64)
    assert layer_error(W0, W, acc.G) < layer_error(W0, refit_start, acc.G)
