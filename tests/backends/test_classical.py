"""The dwave-samplers wrappers: measured temperatures for neal, a tenure that grows for tabu."""

import unittest

import dimod
import dimod.testing
import numpy as np
import pytest

from qubo_prune.backends.classical import ScaledTenureTabu, ScheduledAnnealing, scaled_tenure
from qubo_prune.backends.registry import get_backend, get_spec
from qubo_prune.backends.schedule import flip_beta_range
from qubo_prune.core.decode import decide
from tests.helpers import random_block


@dimod.testing.load_sampler_bqm_tests(ScheduledAnnealing)
@dimod.testing.load_sampler_bqm_tests(ScaledTenureTabu)
class TestBothWrappersAreDimodSamplers(unittest.TestCase):
    """dimod's conformance tests, named after each sampler."""


def test_beta_range_follows_the_flip_sizes_and_ignores_the_scale_of_the_units():
    block = random_block(64, seed=3)
    hot, cold = flip_beta_range(block.to_bqm(penalty=0.0))
    assert 0 < hot < cold
    scaled = block.to_bqm(penalty=0.0)
    scaled.scale(1000.0)  # same problem in other units: temperatures scale inversely
    assert flip_beta_range(scaled) == pytest.approx((hot / 1000.0, cold / 1000.0))
    # measured, not drawn from the sampler's seed: one BQM, one range
    assert flip_beta_range(block.to_bqm(penalty=0.0)) == (hot, cold)


def test_beta_range_of_a_bqm_without_signal_is_a_fixed_one():
    assert flip_beta_range(dimod.BinaryQuadraticModel("BINARY")) == (0.1, 1.0)
    flat = dimod.BinaryQuadraticModel({0: 0.0, 1: 0.0}, {(0, 1): 0.0}, 1.5, "BINARY")
    assert flip_beta_range(flat) == (0.1, 1.0)


def test_neal_gets_the_measured_range_unless_one_is_given():
    bqm = random_block(32, seed=1).to_bqm(penalty=0.0)
    sampler = ScheduledAnnealing()
    measured = sampler.sample(bqm, num_reads=1, num_sweeps=10, seed=0)
    assert tuple(measured.info["beta_range"]) == pytest.approx(flip_beta_range(bqm))
    given = sampler.sample(bqm, num_reads=1, num_sweeps=10, seed=0, beta_range=(0.5, 2.0))
    assert tuple(given.info["beta_range"]) == (0.5, 2.0)


@pytest.mark.parametrize("n, tenure", [(1, 0), (2, 1), (16, 2), (64, 6), (1024, 102)])
def test_tenure_is_a_tenth_of_the_variables_within_tabus_range(n, tenure):
    assert scaled_tenure(n) == tenure


def test_a_given_tenure_and_the_option_checks_still_reach_tabu():
    block = random_block(24, seed=2)
    assert decide(block, get_backend("tabu", tenure=3).solve(block)).x.sum() == block.k[0]
    with pytest.raises(Exception, match="tenure"):
        get_backend("tabu", tenure="long")
    with pytest.raises(Exception, match="num_sweep"):
        get_backend("neal", num_sweep=10)  # a typo is refused, as before the wrapper


def test_tabu_starts_from_the_current_mask_by_default():
    assert get_spec("tabu").defaults["warm_start"] is True
    block = random_block(48, seed=4)
    best = decide(block, get_backend("tabu").solve(block))
    assert best.energy <= block.energy(block.current)
    assert np.isfinite(best.candidate_energy)
