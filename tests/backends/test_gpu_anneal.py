"""The gpu-anneal backend: feasibility, exact deltas, optimality on small blocks, batching."""

import unittest

import dimod
import dimod.testing
import numpy as np
import pytest
import torch

from qubo_prune.backends import gpu_anneal
from qubo_prune.backends.exact import ExactCardinalitySampler
from qubo_prune.backends.gpu_anneal import (
    Annealer,
    GPUAnnealSampler,
    as_problem,
    auto_candidates,
)
from qubo_prune.backends.registry import get_backend
from qubo_prune.core.block import Block


@dimod.testing.load_sampler_bqm_tests(GPUAnnealSampler)
class TestDimodConformance(unittest.TestCase):
    """dimod's generic sampler tests: empty BQMs, SPIN and BINARY, odd labels."""


def make_block(n: int, seed: int, group: int | None = None, k: int | None = None) -> Block:
    """Random symmetric block; one group of ``k`` or N:M-style groups of ``group`` (k each)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    current = np.zeros(n, dtype=np.int8)
    if group is None:
        k = n // 2 if k is None else k
        current[rng.choice(n, size=k, replace=False)] = 1
        return Block(Q=(A + A.T) / 2, constant=float(rng.normal()), current=current)
    groups = tuple(np.arange(s, s + group) for s in range(0, n, group))
    for g in groups:
        current[rng.choice(g, size=k, replace=False)] = 1
    return Block(
        Q=(A + A.T) / 2, constant=0.5, current=current, groups=groups, k=(k,) * len(groups)
    )


def anneal(block: Block, **params) -> dimod.SampleSet:
    return GPUAnnealSampler(device="cpu").sample(
        block.to_bqm(penalty=0.0), cardinality=block.cardinality(), **params
    )


def exact_energy(block: Block) -> float:
    bqm = block.to_bqm(penalty=0.0)
    return ExactCardinalitySampler().sample(bqm, cardinality=block.cardinality()).first.energy


def as_matrix(ss: dimod.SampleSet, n: int) -> np.ndarray:
    return dimod.as_samples(ss)[0][:, np.argsort(ss.variables)] if n else ss.record.sample


@pytest.mark.parametrize(
    "block",
    [make_block(16, 0, k=5), make_block(16, 1, group=4, k=2), make_block(24, 2, group=8, k=1)],
)
def test_every_sample_is_feasible_with_exact_energies(block):
    ss = anneal(block, num_reads=32, num_sweeps=20, seed=0)
    X = as_matrix(ss, block.n)
    assert block.is_feasible(X).all()
    assert np.allclose(ss.record.energy, block.energy(X), rtol=0, atol=1e-9)


def test_free_variables_flip_while_groups_keep_their_count():
    bqm = dimod.BinaryQuadraticModel({"a": -1.0, "b": 2.0, "c": -3.0, "z": -5.0}, {}, 0.0, "BINARY")
    ss = GPUAnnealSampler().sample(
        bqm, cardinality=[(["a", "b", "c"], 2)], num_reads=8, num_sweeps=50, seed=1
    )
    assert all(s["a"] + s["b"] + s["c"] == 2 for s in ss.samples())
    assert ss.first.sample == {"a": 1, "b": 0, "c": 1, "z": 1}


def test_spin_bqm_counts_plus_ones():
    bqm = dimod.BinaryQuadraticModel({0: 1.0, 1: -1.0, 2: 0.5, 3: -0.2}, {(0, 1): 0.3}, 0, "SPIN")
    ss = GPUAnnealSampler().sample(bqm, cardinality=[([0, 1, 2, 3], 1)], num_sweeps=30, seed=0)
    assert all(sum(v == 1 for v in s.values()) == 1 for s in ss.samples())
    dimod.testing.assert_sampleset_energies(ss, bqm)


@pytest.mark.parametrize("dense", [False, True])
def test_incremental_swap_delta_matches_recomputed_energy(dense):
    block = make_block(12, 3, group=4, k=2)
    bqm = dimod.BinaryQuadraticModel(block.to_bqm(penalty=0.0))
    # Variables 8..11 left free: their moves are single flips through the ghost slot.
    problem = as_problem(bqm, block.cardinality()[:2], None)
    gen = torch.Generator().manual_seed(0)
    Q = torch.as_tensor(problem.Q)
    annealer = Annealer(torch.stack([Q, Q]), [problem.layout] * 2, 3, torch.float64, gen)
    annealer.dense_updates = dense
    annealer.start(torch.zeros((2, 3, 13), dtype=torch.int8), torch.zeros((2, 3), dtype=bool))
    ab, _ = annealer.proposals(torch.ones(2, dtype=torch.float64), 4)
    for t in range(len(ab)):
        x = annealer.states()[..., :12]
        before = torch.einsum("bri,ij,brj->br", x, Q, x)
        # the best of 4 candidates: the lowest of their deltas
        each = torch.stack([annealer.delta(ab[t, :, :, c])[1] for c in range(4)], dim=-1)
        pick, ij, delta = annealer.best_candidate(ab[t])
        torch.testing.assert_close(delta, each.amin(dim=-1))
        torch.testing.assert_close(annealer.delta(pick)[1], delta)
        assert torch.equal(annealer.delta(pick)[0], ij)
        annealer.apply(pick, pick.flip(-1), ij, delta.clone(), torch.ones((2, 3), dtype=bool))
        x = annealer.states()[..., :12]
        after = torch.einsum("bri,ij,brj->br", x, Q, x)
        torch.testing.assert_close(delta, after - before)
        torch.testing.assert_close(annealer.E, after)
        torch.testing.assert_close(annealer.g[..., :12], 2.0 * x @ Q)
        assert (x[..., :8].reshape(2, 3, 2, 4).sum(-1) == 2).all()


def test_compact_and_dense_updates_give_the_same_run():
    problem = as_problem(make_block(10, 4).to_bqm(penalty=0.0), [(list(range(10)), 4)], None)
    runs = []
    for dense in (False, True):
        gen = torch.Generator().manual_seed(5)
        Q = torch.as_tensor(problem.Q).expand(3, -1, -1)
        annealer = Annealer(Q, [problem.layout] * 3, 4, torch.float64, gen)
        annealer.dense_updates = dense
        annealer.start(torch.zeros((3, 4, 11), dtype=torch.int8), torch.zeros((3, 4), dtype=bool))
        for beta in (0.5, 1.0, 2.0):
            annealer.sweep(torch.full((3,), beta, dtype=torch.float64))
        runs.append(annealer.perm.clone())
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize(
    "block",
    [make_block(12, s, k=k) for s, k in ((10, 6), (11, 3))]
    + [make_block(12, 12, group=4, k=2), make_block(12, 13, group=6, k=1)],
)
def test_finds_the_exact_optimum_of_small_blocks(block):
    ss = anneal(block, num_reads=16, num_sweeps=200, seed=0)
    assert ss.first.energy == pytest.approx(exact_energy(block), abs=1e-9)


def test_small_batches_fill_the_steps_lanes_with_candidates():
    assert auto_candidates(1, 8) == 32 and auto_candidates(1, 64) == 4
    assert auto_candidates(576, 2) == 1  # a layer's rows: single proposals, as before


def test_more_candidates_stay_feasible_reproducible_and_descend_faster():
    block = make_block(40, 21, k=20)
    one, many = (anneal(block, num_reads=4, num_sweeps=5, seed=1, candidates=c) for c in (1, 16))
    again = anneal(block, num_reads=4, num_sweeps=5, seed=1, candidates=16)
    assert np.array_equal(many.record.sample, again.record.sample)
    assert (many.record.sample.sum(axis=1) == 20).all()
    assert many.first.energy < one.first.energy  # 5 sweeps: a random move is rarely downhill
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="candidates"):
            anneal(block, num_reads=1, num_sweeps=1, candidates=bad)


def test_deterministic_with_a_seed():
    block = make_block(20, 5, group=4, k=2)
    threads = torch.get_num_threads()
    # one plain sweep, unpolished: reads still differ, so the seed shows
    options = dict(num_reads=8, num_sweeps=1, candidates=1, polish=False)
    a, b = (anneal(block, seed=7, **options) for _ in range(2))
    assert torch.get_num_threads() == threads  # the single-threaded loop restores the setting
    assert np.array_equal(a.record.sample, b.record.sample)
    c = anneal(block, seed=8, **options)
    assert not np.array_equal(a.record.sample, c.record.sample)


@pytest.mark.parametrize("candidates", [1, 2])
def test_batched_and_one_by_one_reach_the_same_distribution(candidates):
    # (with a fixed count: by default a smaller batch draws more candidates per step)
    blocks = [make_block(12, 20 + s, k=5) for s in range(6)]
    optimum = np.array([exact_energy(b) for b in blocks])
    params = dict(num_reads=64, num_sweeps=3, beta_range=(0.05, 2.0), candidates=candidates)
    sampler = GPUAnnealSampler()
    bqms = [b.to_bqm(penalty=0.0) for b in blocks]
    batched = sampler.sample_batch(
        bqms, cardinality=[b.cardinality() for b in blocks], seed=0, **params
    )
    single = [
        sampler.sample(q, cardinality=b.cardinality(), seed=1 + i, **params)
        for i, (q, b) in enumerate(zip(bqms, blocks))
    ]
    gap_b = np.array([ss.record.energy - e for ss, e in zip(batched, optimum)])
    gap_s = np.array([ss.record.energy - e for ss, e in zip(single, optimum)])
    assert 0 < np.isclose(gap_b, 0, atol=1e-9).mean() < 1  # a test that can tell them apart
    stderr = np.sqrt((gap_b.var() + gap_s.var()) / gap_b.size)
    assert abs(gap_b.mean() - gap_s.mean()) < 4 * stderr
    hits_b, hits_s = (np.isclose(g, 0, atol=1e-9).mean() for g in (gap_b, gap_s))
    assert abs(hits_b - hits_s) < 0.1


def test_mixed_sizes_come_back_in_order():
    blocks = [make_block(8, 30), make_block(12, 31, group=4, k=1), make_block(8, 32, k=2)]
    out = GPUAnnealSampler().sample_batch(
        [b.to_bqm(penalty=0.0) for b in blocks],
        cardinality=[b.cardinality() for b in blocks],
        num_reads=4,
        num_sweeps=5,
        seed=0,
    )
    for block, ss in zip(blocks, out):
        assert len(ss.variables) == block.n
        assert block.is_feasible(as_matrix(ss, block.n)).all()


def improving_neighbour(bqm: dimod.BinaryQuadraticModel, groups, sample: dict) -> bool:
    """Whether one swap inside a group, or one or two flips of free variables (one up, one
    down), lowers the energy of ``sample`` by more than float noise."""
    grouped = {v for g, _ in groups for v in g}
    free = [v for v in bqm.variables if v not in grouped]
    pairs = [(i, j) for g, _ in groups for i in g for j in g if sample[i] > sample[j]]
    pairs += [(i, j) for i in [*free, None] for j in [*free, None] if i != j]
    base = bqm.energy(sample)
    for i, j in pairs:
        if (i is not None and sample[i] != 1) or (j is not None and sample[j] != 0):
            continue
        moved = {**sample, **({i: 0} if i is not None else {}), **({j: 1} if j is not None else {})}
        if bqm.energy(moved) < base - 1e-9:
            return True
    return False


@pytest.mark.parametrize("elements", [None, 1])  # 1: one problem per polish chunk
def test_polish_ends_each_best_read_at_a_swap_local_optimum(monkeypatch, elements):
    if elements is not None:
        monkeypatch.setattr(gpu_anneal, "_POLISH_ELEMENTS", elements)
    groups = [(list(range(6)), 2), (list(range(6, 10)), 3)]  # 10..13 free
    bqms = [make_block(14, 50 + s).to_bqm(penalty=0.0) for s in range(3)]
    params = dict(cardinality=[groups] * 3, num_reads=4, num_sweeps=0, seed=0)
    sampler = GPUAnnealSampler()
    raw = sampler.sample_batch(bqms, polish=False, **params)
    polished = sampler.sample_batch(bqms, **params)
    for bqm, before, after in zip(bqms, raw, polished):
        assert after.info["polish_swaps"] > 0
        assert after.first.energy < before.first.energy  # from the same random states
        assert not improving_neighbour(bqm, groups, after.first.sample)
        assert improving_neighbour(bqm, groups, before.first.sample)


def test_warm_start_formats_and_validation():
    block = make_block(10, 40, k=4)
    bqm = block.to_bqm(penalty=0.0)
    X = block.current[None, :]
    sampler = GPUAnnealSampler()
    for init in ((X, list(range(10))), dimod.SampleSet.from_samples_bqm((X, range(10)), bqm), X):
        ss = sampler.sample(
            bqm,
            cardinality=block.cardinality(),
            initial_states=init,
            num_sweeps=0,
            seed=0,
            polish=False,
        )
        assert len(ss) == 1
        assert np.array_equal(as_matrix(ss, 10)[0], block.current)
    tiled = sampler.sample(
        bqm,
        cardinality=block.cardinality(),
        initial_states=X,
        num_reads=3,
        num_sweeps=0,
        initial_states_generator="tile",
        polish=False,
    )
    assert (as_matrix(tiled, 10) == block.current).all()
    with pytest.raises(ValueError, match="violates"):
        sampler.sample(bqm, cardinality=[(list(range(10)), 5)], initial_states=X)
    with pytest.raises(ValueError, match="'none'"):
        sampler.sample(bqm, initial_states=X, num_reads=2, initial_states_generator="none")
    with pytest.raises(ValueError, match="disjoint"):
        sampler.sample(bqm, cardinality=[([0, 1], 1), ([1, 2], 1)])


def test_warm_start_keeps_a_good_state_when_cold():
    block = make_block(12, 41, k=6)
    optimum = ExactCardinalitySampler().sample(
        block.to_bqm(penalty=0.0), cardinality=block.cardinality()
    )
    ss = anneal(block, initial_states=optimum, num_reads=4, num_sweeps=5, beta_range=(50, 100))
    assert ss.first.energy == pytest.approx(optimum.first.energy)


def test_time_limit_and_early_stop():
    block = make_block(16, 50, k=8)
    ss = anneal(block, num_reads=4, num_sweeps=100_000, time_limit=0.2, seed=0)
    assert ss.info["stopped"] == "time_limit" and ss.info["num_sweeps"] < 100_000
    ss = anneal(block, num_reads=4, num_sweeps=100_000, early_stop=20, seed=0)
    assert ss.info["stopped"] == "early_stop" and ss.info["num_sweeps"] < 100_000


def test_through_the_registry():
    backend = get_backend("gpu-anneal", num_reads=8, num_sweeps=50, seed=0, device="cpu")
    assert backend.capabilities.native_cardinality and backend.capabilities.batched
    blocks = [make_block(16, 60, k=5), make_block(16, 61, group=4, k=2), make_block(8, 62)]
    ss = backend.solve(blocks[0])
    assert len(ss) == 8 and blocks[0].is_feasible(as_matrix(ss, 16)).all()
    for block, ss in zip(blocks, backend.solve_many(blocks)):
        assert len(ss) == 8 and block.is_feasible(as_matrix(ss, block.n)).all()
    precise = get_backend("gpu-anneal", dtype="float64", num_reads=2, num_sweeps=5)
    assert precise.base_sampler.dtype is torch.float64
    assert blocks[2].is_feasible(as_matrix(precise.solve(blocks[2]), 8)).all()
    warm = get_backend("gpu-anneal", num_sweeps=0, polish=False).solve(blocks[1])  # warm start
    assert np.array_equal(as_matrix(warm, 16)[0], blocks[1].current)
