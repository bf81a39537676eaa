"""Deliberately bad third-party backends, registered through the entry-point group or
``misbehaving_specs`` in tests."""

import threading

import dimod
import numpy as np

from qubo_prune.backends.registry import BackendSpec, Capabilities


class BadSampler(dimod.Sampler):
    """Returns random states: mostly infeasible, often worse than the current mask."""

    parameters = {"num_reads": [], "seed": []}
    properties = {}

    def sample(self, bqm, num_reads=4, seed=None, **kwargs):
        rng = np.random.default_rng(seed)
        X = rng.integers(0, 2, size=(num_reads, bqm.num_variables), dtype=np.int8)
        return dimod.SampleSet.from_samples_bqm((X, list(bqm.variables)), bqm)


def make_bad():
    return BadSampler()


SPEC = BackendSpec(
    name="bad-random",
    factory="tests.backends.bad_backend_plugin:make_bad",
    description="returns random, mostly infeasible states (test plugin)",
    capabilities=Capabilities(stochastic=True),
)


class Misbehaving(dimod.Sampler):
    """Answers with what ``mode`` says: ``raise``, ``none``, ``twos``, ``empty``, ``hang``, or
    ``flaky`` (a valid answer, but an error on the call numbered ``fail_at``)."""

    parameters = {"mode": []}
    properties = {}
    release = threading.Event()  # a hanging solve ends when a test sets it
    calls = 0
    fail_at = 0

    def sample(self, bqm, mode: str = "raise", **kwargs):
        n = bqm.num_variables
        Misbehaving.calls += 1
        if mode == "flaky" and Misbehaving.calls != Misbehaving.fail_at:
            return dimod.ExactSolver().sample(bqm).truncate(1)
        if mode in ("raise", "flaky"):
            raise RuntimeError("internal solver error\nwith a second line")
        if mode == "none":
            return None
        if mode == "twos":
            return dimod.SampleSet.from_samples(
                (np.full((1, n), 2, dtype=np.int8), list(bqm.variables)), "INTEGER", 0.0
            )
        if mode == "empty":
            return dimod.SampleSet.from_samples(([], list(bqm.variables)), dimod.BINARY, [])
        self.release.wait(30)
        return dimod.SampleSet.from_samples_bqm((np.zeros((1, n)), list(bqm.variables)), bqm)


class ThreeInTen(dimod.Sampler):
    """Ten reads of a native block: the exact optimum three times, the worst feasible state
    seven times (a hand-made sample set for time-to-solution)."""

    parameters = {"cardinality": []}
    properties = {}

    def sample(self, bqm, cardinality=None, **kwargs):
        exact = dimod.ExactSolver().sample(bqm)
        ((group, k),) = cardinality
        feasible = exact.filter(lambda d: sum(d.sample[v] for v in group) == k)
        states = [feasible.first.sample] * 3 + [feasible.record.sample[-1]] * 7
        X = np.array([[s[v] for v in bqm.variables] if isinstance(s, dict) else s for s in states])
        return dimod.SampleSet.from_samples_bqm((X, list(bqm.variables)), bqm)


def misbehaving_specs() -> dict[str, BackendSpec]:
    return {
        "three-in-ten": BackendSpec(
            name="three-in-ten",
            factory="tests.backends.bad_backend_plugin:ThreeInTen",
            description="3 of 10 reads optimal (test plugin)",
            capabilities=Capabilities(native_cardinality=True),
        ),
        "misbehaving": BackendSpec(
            name="misbehaving",
            factory="tests.backends.bad_backend_plugin:Misbehaving",
            description="fails on purpose (test plugin)",
        ),
    }
