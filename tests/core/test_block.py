"""Block: energies in the objective's units, the penalised BQM and its provable multiplier."""

import itertools

import dimod
import numpy as np
import pytest

from qubo_prune.core.block import Block, load_blocks, save_blocks
from tests.helpers import random_block


def all_states(n):
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.int8)


def bqm_energies(bqm, X):
    return bqm.energies((X, list(range(X.shape[1]))))


def test_bqm_equals_objective_plus_penalty():
    b = random_block(7, seed=1, k=3)
    lam = 2.5
    X = all_states(7)
    expected = b.energy(X) + lam * (X.sum(1) - 3) ** 2
    np.testing.assert_allclose(bqm_energies(b.to_bqm(lam), X), expected, rtol=1e-10, atol=1e-10)


def test_energy_single_and_batch_agree():
    b = random_block(6, seed=2)
    X = all_states(6)
    E = b.energy(X)
    assert b.energy(X[5]) == pytest.approx(E[5])
    x = X[11].astype(float)
    assert E[11] == pytest.approx(x @ b.Q @ x + b.constant)


def adversarial_blocks():
    rng = np.random.default_rng(7)
    n = 8
    # Strong negative diagonal pulls toward all-ones; strong positive toward all-zeros;
    # large off-diagonal couplings of mixed sign; a nearly zero objective.
    yield Block(Q=np.diag(-np.full(n, 100.0)), constant=0.0, current=np.r_[np.ones(3), np.zeros(5)])
    yield Block(Q=np.diag(np.full(n, 100.0)), constant=0.0, current=np.r_[np.ones(5), np.zeros(3)])
    A = rng.normal(size=(n, n)) * 50
    yield Block(
        Q=(A + A.T) / 2 - 200 * np.eye(n), constant=3.0, current=np.r_[np.ones(2), np.zeros(6)]
    )
    yield Block(Q=-np.ones((n, n)) * 10, constant=0.0, current=np.r_[np.ones(4), np.zeros(4)])
    yield Block(Q=np.zeros((n, n)), constant=0.0, current=np.r_[np.ones(4), np.zeros(4)])
    for seed in range(20):
        yield random_block(
            n, seed=seed, k=int(rng.integers(1, n)), scale=float(rng.uniform(0.01, 100))
        )


@pytest.mark.parametrize("block", list(adversarial_blocks()))
def test_every_ground_state_of_default_bqm_is_feasible(block):
    X = all_states(block.n)
    E = bqm_energies(block.to_bqm(), X)
    ground = np.isclose(E, E.min(), rtol=1e-12, atol=1e-9)
    assert block.is_feasible(X[ground]).all()
    # and the ground energy is the constrained optimum of the objective
    assert E.min() == pytest.approx(block.energy(X[block.is_feasible(X)]).min(), abs=1e-8)


def test_multiplier_below_bound_can_break_feasibility():
    """The bound matters: a tiny multiplier lets the objective win on this block."""
    b = Block(Q=np.diag(-np.full(6, 10.0)), constant=0.0, current=np.r_[np.ones(2), np.zeros(4)])
    X = all_states(6)
    E = bqm_energies(b.to_bqm(penalty=0.1), X)
    assert not b.is_feasible(X[np.argmin(E)])


def test_groups_give_one_penalty_each():
    n = 8
    rng = np.random.default_rng(3)
    A = rng.normal(size=(n, n))
    groups = (np.arange(4), np.arange(4, 8))
    b = Block(
        Q=A + A.T, constant=0.0, current=np.array([1, 1, 0, 0, 0, 1, 0, 1]), groups=groups, k=(2, 2)
    )
    X = all_states(n)
    E = bqm_energies(b.to_bqm(), X)
    best = X[np.argmin(E)]
    assert best[:4].sum() == 2 and best[4:].sum() == 2
    feasible = b.is_feasible(X)
    assert feasible.sum() == 36


def test_cqm_carries_constraints():
    b = random_block(6, seed=4, k=2)
    cqm = b.to_cqm()
    assert len(cqm.constraints) == 1
    x = {i: int(v) for i, v in enumerate(b.current)}
    assert cqm.check_feasible(x)
    assert cqm.objective.energy(x) == pytest.approx(b.energy(b.current))


def test_dense_bqm_built_from_arrays():
    b = random_block(256, seed=5)
    bqm = b.to_bqm()
    assert bqm.num_variables == 256 and bqm.num_interactions == 256 * 255 // 2
    x = np.random.default_rng(0).integers(0, 2, 256).astype(np.int8)
    lam = b.default_penalty()
    expected = b.energy(x) + lam * (x.sum() - b.k[0]) ** 2
    assert bqm.energy((x, range(256))) == pytest.approx(expected, rel=1e-9)
    assert isinstance(bqm, dimod.BinaryQuadraticModel)


def test_invalid_blocks_are_refused():
    with pytest.raises(ValueError, match="NaN or inf"):
        Block(Q=np.array([[np.nan]]), constant=0.0, current=np.array([1]))
    with pytest.raises(ValueError, match="cardinality"):
        Block(
            Q=np.eye(3), constant=0.0, current=np.array([1, 0, 0]), groups=(np.arange(3),), k=(2,)
        )
    with pytest.raises(ValueError, match="disjoint"):
        Block(
            Q=np.eye(3),
            constant=0.0,
            current=np.array([1, 0, 0]),
            groups=(np.arange(2), np.arange(1, 3)),
            k=(1, 0),
        )


def test_save_load_round_trip(tmp_path):
    blocks = [random_block(5, seed=s) for s in range(3)]
    blocks[1].tensor = "layer.weight"
    path = save_blocks(blocks, tmp_path / "b.npz")
    back = load_blocks(path)
    assert len(back) == 3 and back[1].tensor == "layer.weight"
    for a, b in zip(blocks, back):
        np.testing.assert_array_equal(a.Q, b.Q)
        np.testing.assert_array_equal(a.current, b.current)
        assert a.k == b.k and a.constant == b.constant
