"""Decoding never trusts a backend: repair toward k, accept only improvements."""

import dimod
import numpy as np
import pytest

from qubo_prune.core.decode import decide, repair
from tests.helpers import random_block


def sampleset(X, n):
    bqm = dimod.BinaryQuadraticModel(n, dimod.BINARY)
    return dimod.SampleSet.from_samples_bqm((np.asarray(X, dtype=np.int8), list(range(n))), bqm)


def test_best_feasible_sample_is_taken():
    b = random_block(8, seed=0, k=4)
    rng = np.random.default_rng(0)
    X = np.zeros((20, 8), dtype=np.int8)
    for row in X:
        row[rng.choice(8, 4, replace=False)] = 1
    E = b.energy(X)
    assert E.min() < b.energy(b.current)  # the draw holds an improvement, so it must be taken
    d = decide(b, sampleset(X, 8))
    assert d.candidate_energy == pytest.approx(E.min())
    assert d.feasible_fraction == 1.0 and not d.repaired
    assert d.accepted
    to_prune, to_restore = d.swap(b)
    assert len(to_prune) == len(to_restore) > 0
    assert d.energy < b.energy(b.current)


@pytest.mark.parametrize("seed", range(10))
def test_repair_reaches_k_with_greedy_flips(seed):
    b = random_block(10, seed=seed, k=3)
    x = np.ones(10, dtype=np.int8)
    r = repair(b, x)
    assert r.sum() == 3
    # greedy: the first flip removed the one whose removal raised E the least
    deltas = [b.energy(np.where(np.arange(10) == i, 0, x)) - b.energy(x) for i in range(10)]
    first = int(np.argmin(deltas))
    assert r[first] == 0


def test_infeasible_answers_are_repaired_and_counted():
    b = random_block(8, seed=3, k=4)
    d = decide(b, sampleset(np.ones((3, 8)), 8))
    assert d.repaired and d.feasible_fraction == 0.0
    assert d.x.sum() == 4


def test_worse_answer_is_rejected():
    b = random_block(8, seed=4, k=4)
    X = np.zeros((1, 8), dtype=np.int8)
    # the worst feasible state is worse than (or equal to) the current one
    import itertools

    states = [
        np.array(s, dtype=np.int8) for s in itertools.product([0, 1], repeat=8) if sum(s) == 4
    ]
    worst = max(states, key=b.energy)
    X[0] = worst
    d = decide(b, sampleset(X, 8))
    assert not d.accepted
    np.testing.assert_array_equal(d.x, b.current)
    assert d.improvement == 0.0
    assert d.swap(b)[0].size == 0


def test_empty_sampleset_keeps_current():
    b = random_block(4, seed=1, k=2)
    d = decide(b, sampleset(np.zeros((0, 4)), 4))
    assert not d.accepted
