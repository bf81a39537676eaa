"""The solver-benchmarking figures, checked by hand."""

import math

import numpy as np
import pytest

from qubo_prune.backends.metrics import (
    gap,
    missed_improvement,
    success_probability,
    time_to_solution,
)


def test_gap_and_missed_improvement_by_hand():
    assert gap(11.0, 10.0) == pytest.approx(0.1)
    assert gap(-9.0, -10.0) == pytest.approx(0.1)
    assert gap(0.0, 0.0) == 0.0
    assert missed_improvement(11.0, 10.0, 20.0) == pytest.approx(0.1)
    assert missed_improvement(20.0, 10.0, 20.0) == pytest.approx(1.0)
    assert math.isnan(missed_improvement(11.0, 10.0, 10.0))


def test_success_probability_counts_feasible_reads_at_the_best_energy():
    energies = np.array([1.0, 1.0 + 1e-12, 2.0, 0.5])
    feasible = np.array([True, True, True, False])  # the lowest one breaks the constraint
    occurrences = np.array([2, 1, 6, 1])
    assert success_probability(energies, feasible, occurrences, best=1.0) == pytest.approx(0.3)


def test_tts99_by_hand():
    assert time_to_solution(0.02, 0.3) == pytest.approx(0.02 * math.log(0.01) / math.log(0.7))
    assert time_to_solution(0.02, 1.0) == 0.02
    assert time_to_solution(0.02, 0.0) == math.inf
