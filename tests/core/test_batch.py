"""A block batch is the same problems as its blocks, and decides as :func:`decide` does."""

import dimod
import numpy as np
import pytest
import torch

from qubo_prune.core.batch import BlockBatch
from qubo_prune.core.decode import decide, decide_batch


def random_batch(B=6, n=8, groups=None, k=None, seed=0) -> BlockBatch:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(B, n, n, generator=g, dtype=torch.float64)
    A = A + A.mT
    groups = groups or (np.arange(n),)
    k = k or (n // 2,)
    current = torch.zeros(B, n, dtype=torch.bool)
    for grp, kk in zip(groups, k):
        for b in range(B):
            current[b, grp[torch.randperm(len(grp), generator=g)[:kk].numpy()]] = True
    coords = torch.arange(B * n).view(B, n) * 3
    return BlockBatch(
        A, torch.randn(B, generator=g, dtype=torch.float64), current, groups, k, coords, "t"
    )


def test_blocks_are_the_same_problems_and_bqms():
    batch = random_batch(groups=(np.arange(4), np.arange(4, 8)), k=(2, 2))
    X = torch.rand(6, 5, 8) < 0.5
    energies = batch.energy(X)
    for b, block in enumerate(batch.blocks()):
        assert block.tensor == "t" and np.array_equal(block.coords, batch.coords[b].numpy())
        assert block.cardinality() == batch.cardinality()
        np.testing.assert_allclose(block.energy(X[b].numpy()), energies[b].numpy(), rtol=1e-12)
        assert np.array_equal(block.is_feasible(X[b].numpy()), batch.is_feasible(X)[b].numpy())
        bqm = block.to_bqm(penalty=0.0)
        x = X[b, 0].numpy().astype(int)
        assert bqm.energy(x) == pytest.approx(float(energies[b, 0]))


def sampleset(X: np.ndarray) -> dimod.SampleSet:
    return dimod.SampleSet.from_samples(X.astype(np.int8), dimod.BINARY, np.zeros(len(X)))


@pytest.mark.parametrize("seed", range(4))
def test_batched_decisions_equal_decide_on_every_block(seed):
    batch = random_batch(B=12, n=8, seed=seed)
    rng = np.random.default_rng(seed)
    X = np.zeros((12, 6, 8), dtype=np.int8)
    for b in range(12):
        for m in range(6):
            X[b, m, rng.choice(8, size=4, replace=False)] = 1
    X[0] = 1  # no feasible sample: repaired
    X[1, :, :] = batch.current[1].numpy()  # only the current mask: rejected
    X[2, 1:] = X[2, 0]  # equal samples: the first is taken
    X[3] = 0  # a second block with nothing feasible
    d = decide_batch(batch, torch.as_tensor(X))
    assert bool(d.repaired[0]) and bool(d.repaired[3]) and not bool(d.accepted[1])
    assert 0 < int(d.accepted.sum()) < 12  # the draw accepts some blocks and rejects others
    for b, block in enumerate(batch.blocks()):
        ref = decide(block, sampleset(X[b]))
        assert np.array_equal(d.x[b].numpy().astype(np.int8), ref.x)
        assert bool(d.accepted[b]) == ref.accepted and bool(d.repaired[b]) == ref.repaired
        assert float(d.energy[b]) == pytest.approx(ref.energy, rel=1e-12)
        assert float(d.improvement[b]) == pytest.approx(ref.improvement, rel=1e-9, abs=1e-12)
    to_prune, to_restore = d.swap(batch)
    assert len(to_prune) == len(to_restore) > 0
    flat = torch.zeros(12 * 8 * 3, dtype=torch.bool)
    flat[batch.coords[batch.current]] = True
    assert not flat[to_prune].any() and flat[to_restore].all()


def test_no_answer_keeps_every_block():
    batch = random_batch()
    d = decide_batch(batch, torch.zeros(6, 0, 8, dtype=torch.bool))
    assert not d.accepted.any() and torch.equal(d.x, batch.current)
    assert torch.equal(d.energy, d.current_energy)


def test_bad_batches_are_refused():
    batch = random_batch()
    with pytest.raises(ValueError, match="cardinality"):
        BlockBatch(
            batch.Q,
            batch.constant,
            ~batch.current[:, :1].expand(6, 8),
            batch.groups,
            (3,),
            batch.coords,
        )
    with pytest.raises(ValueError, match="NaN"):
        BlockBatch(
            batch.Q * torch.nan, batch.constant, batch.current, batch.groups, batch.k, batch.coords
        )
    with pytest.raises(ValueError, match="symmetric"):
        BlockBatch(
            batch.Q + torch.triu(batch.Q),
            batch.constant,
            batch.current,
            batch.groups,
            batch.k,
            batch.coords,
        )
    with pytest.raises(ValueError, match="shape"):
        BlockBatch(batch.Q[0], batch.constant, batch.current, batch.groups, batch.k, batch.coords)
