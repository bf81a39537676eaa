"""A deliberately bad third-party backend, registered through the entry-point group in tests."""

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
