"""Registry: names, extras, options, entry-point plugins; the exact sampler passes dimod's tests."""

import time
import unittest

import dimod.testing
import pytest

from qubo_prune.backends import registry
from qubo_prune.backends.exact import ExactCardinalitySampler
from qubo_prune.backends.registry import BackendError, BackendSpec, get_backend, parse_options
from tests.helpers import install_plugin, random_block


@dimod.testing.load_sampler_bqm_tests(ExactCardinalitySampler, max_num_variables=16)
class TestExactSamplerDimod(unittest.TestCase):
    pass


def test_exact_respects_cardinality_and_finds_optimum():
    import itertools

    import numpy as np

    b = random_block(12, seed=0, k=5)
    ss = ExactCardinalitySampler().sample(b.to_bqm(0), cardinality=b.cardinality(), num_best=3)
    X = np.array([[s[i] for i in range(12)] for s in ss.samples()])
    assert (X.sum(1) == 5).all()
    best = min(b.energy(np.array(s)) for s in itertools.product([0, 1], repeat=12) if sum(s) == 5)
    assert ss.first.energy == pytest.approx(best)
    assert list(ss.record.energy) == sorted(ss.record.energy)


def test_exact_refuses_too_many_variables():
    with pytest.raises(BackendError, match="too large.*at most 24"):
        get_backend("exact").solve(random_block(30, seed=0))


def test_unknown_solver_suggests_close_names():
    with pytest.raises(BackendError, match="Did you mean 'neal'"):
        get_backend("nael")


def test_unknown_option_suggests_close_names():
    with pytest.raises(BackendError, match="num_reads"):
        get_backend("neal", num_raeds=3)


def test_missing_extra_names_the_pip_install(monkeypatch):
    spec = BackendSpec(
        name="needs-sdk",
        factory="nowhere:make",
        description="x",
        requires=("surely_not_installed_sdk",),
        extra="braket",
    )
    monkeypatch.setattr(registry, "_plugin_specs", lambda: {"needs-sdk": spec})
    with pytest.raises(BackendError, match=r"pip install 'qubo-prune\[braket\]'"):
        get_backend("needs-sdk")
    assert registry.available_backends()["needs-sdk"].status()[0] == "not installed"


def test_missing_credentials_fail_fast(monkeypatch):
    spec = BackendSpec(
        name="cloud",
        factory="nowhere:make",
        description="x",
        credentials=lambda options: "set EXAMPLE_TOKEN",
    )
    monkeypatch.setattr(registry, "_plugin_specs", lambda: {"cloud": spec})
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="set EXAMPLE_TOKEN"):
        get_backend("cloud")
    assert time.perf_counter() - t0 < 1.0


def test_parse_options():
    assert parse_options(["num_reads=10", "beta_range=(0.1, 5)", "name=foo"]) == {
        "num_reads": 10,
        "beta_range": (0.1, 5),
        "name": "foo",
    }
    with pytest.raises(BackendError, match="key=value"):
        parse_options(["oops"])


def test_entry_point_plugins_are_registered(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch)
    specs = registry.available_backends()
    assert "bad-random" in specs and "exact" in specs
    backend = get_backend("bad-random", num_reads=3, seed=1)
    assert len(backend.solve(random_block(6, seed=0))) == 3


def test_penalty_options_reach_the_bqm(monkeypatch):
    b = random_block(6, seed=0)
    seen = {}

    def spy(backend):
        child = backend.sampler.child
        original = child.sample

        def sample(bqm, **kwargs):
            seen["bqm"], seen["kwargs"] = bqm, kwargs
            return original(bqm, **kwargs)

        monkeypatch.setattr(child, "sample", sample)
        return backend

    spy(get_backend("steepest-descent", penalty_scale=0.5)).solve(b)
    assert seen["bqm"].offset == pytest.approx(b.constant + 0.5 * b.penalty_bound() * b.k[0] ** 2)
    spy(get_backend("neal", warm_start=True, num_reads=1)).solve(b)
    assert (seen["kwargs"]["initial_states"][0][0] == b.current).all()


def test_dwave_chain_strength_takes_a_number_or_a_function_as_dwave_system_does():
    pytest.importorskip("dwave.system")
    from qubo_prune.backends.registry import check_options

    for good in (2.0, lambda bqm, embedding: 1.0, None):
        check_options("dwave", {"chain_strength": good, "qpu_sampler": None})
    with pytest.raises(BackendError, match="chain_strength='strong' .a str."):
        check_options("dwave", {"chain_strength": "strong", "qpu_sampler": None})
