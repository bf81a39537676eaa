"""Defaults a user gets with no options: calibrated penalties, and budgets that count work."""

import subprocess
import sys

import numpy as np
import pytest

from qubo_prune.backends.registry import get_backend, get_spec
from qubo_prune.core.block import Block
from qubo_prune.core.decode import decide
from tests.helpers import random_block


def adversarial_block(n: int, seed: int) -> Block:
    """Every variable wants to be 1 (a strong negative diagonal) while only n/4 may be."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n)) * 0.1
    Q = (A + A.T) / 2 - np.diag(np.full(n, 5.0) + rng.random(n))
    current = np.zeros(n, dtype=np.int8)
    current[rng.choice(n, size=n // 4, replace=False)] = 1
    return Block(Q=Q, constant=0.0, current=current)


BLOCKS = [random_block(24, seed=s) for s in range(3)] + [adversarial_block(24, s) for s in range(3)]


@pytest.mark.parametrize("solver", ["neal", "steepest-descent", "tabu"])
def test_auto_penalty_answers_at_least_as_well_as_the_safe_bound(solver):
    auto, safe = get_backend(solver), get_backend(solver, penalty="safe")
    exact = get_backend("exact")
    for block in BLOCKS:
        ss = auto.solve(block)
        d_auto, d_safe = decide(block, ss), decide(block, safe.solve(block))
        assert block.is_feasible(d_auto.x)
        assert d_auto.candidate_energy <= d_safe.candidate_energy + 1e-9 * abs(
            d_safe.candidate_energy
        )
        assert 0 < ss.info["penalty"] and 1 <= ss.info.get("penalty_rounds", 1) <= 3
        assert 0 <= ss.info["feasible_fraction"] <= 1
    optimum = decide(BLOCKS[-1], exact.solve(BLOCKS[-1])).candidate_energy
    assert decide(BLOCKS[-1], auto.solve(BLOCKS[-1])).candidate_energy == pytest.approx(optimum)


def test_the_adversarial_block_needs_more_than_the_first_multiplier():
    ss = get_backend("neal").solve(adversarial_block(24, seed=0))
    assert ss.info["penalty_rounds"] > 1  # the first try strayed; the multiplier was raised


BUSY = "import time\nend = time.time() + 60\nwhile time.time() < end: pass\n"


@pytest.mark.parametrize("solver", ["neal", "tabu", "steepest-descent", "gpu-anneal"])
def test_default_budgets_give_the_same_answer_under_a_competing_load(solver):
    assert (
        "timeout" not in get_spec(solver).defaults or get_spec(solver).defaults["timeout"] >= 10_000
    )
    block = random_block(64, seed=5)
    quiet = get_backend(solver).solve(block)
    load = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(3)]
    try:
        busy = get_backend(solver).solve(block)
    finally:
        for p in load:
            p.kill()
            p.wait()
    order = np.lexsort(quiet.record.sample.T)
    again = np.lexsort(busy.record.sample.T)
    np.testing.assert_array_equal(quiet.record.sample[order], busy.record.sample[again])


def test_a_penalised_paid_block_is_priced_at_its_most_penalty_tries():
    pytest.importorskip("dwave.system")
    from qubo_prune.backends.composites import AUTO_ROUNDS
    from qubo_prune.backends.cost import estimate_block_cost

    auto = estimate_block_cost("dwave")
    safe = estimate_block_cost("dwave", {"penalty": "safe"})
    assert auto.usd == pytest.approx(AUTO_ROUNDS * safe.usd)
    assert auto.qpu_seconds == pytest.approx(AUTO_ROUNDS * safe.qpu_seconds)
    assert estimate_block_cost("dwave", {"penalty_scale": 0.1}).usd == pytest.approx(safe.usd)
