"""Quantum backends on their SDKs' local parts only: simulators, MockDWaveSampler, ExactCQMSolver.

Nothing here reaches a network: no device is built from an ARN or a token, and every
credential check runs with the standard variables cleared and config files pointed at an
empty directory.
"""

import os

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # boto3 must never probe instance metadata

import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import dimod  # noqa: E402
import dimod.testing  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from qubo_prune.backends.cost import (  # noqa: E402
    BudgetError,
    check_budget,
    estimate_block_cost,
    load_prices,
)
from qubo_prune.backends.credentials import braket_problem, dwave_problem, ibm_problem  # noqa: E402
from qubo_prune.backends.exact import ExactCardinalitySampler  # noqa: E402
from qubo_prune.backends.registry import Backend, BackendError, get_backend, get_spec  # noqa: E402
from qubo_prune.core.block import Block  # noqa: E402
from qubo_prune.core.decode import decide, sample_matrix  # noqa: E402


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


needs_qiskit = pytest.mark.skipif(not _has("qiskit"), reason="qiskit extra")
needs_runtime = pytest.mark.skipif(not _has("qiskit_ibm_runtime"), reason="qiskit extra")
needs_braket = pytest.mark.skipif(not _has("braket.circuits"), reason="braket extra")
needs_dwave = pytest.mark.skipif(not _has("dwave.system"), reason="dwave extra")

# The mock QPU warns that it ignores auto_scale, which DWaveCliqueSampler sets on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:'auto_scale' parameter is valid")

IONQ_ARN = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"


def gram_block(seed: int, n: int = 8) -> Block:
    """A layer-reconstruction block (objective 2 of the math note) with half its weights pruned."""
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n, 3 * n))
    D = np.diag(rng.normal(size=n))
    current = np.zeros(n, dtype=np.int8)
    current[rng.permutation(n)[: n // 2]] = 1
    return Block(Q=D @ (U @ U.T) @ D, constant=0.0, current=current)


def optimum(block: Block) -> float:
    exact = ExactCardinalitySampler().sample(block.to_bqm(0.0), cardinality=block.cardinality())
    return float(exact.first.energy)


def hits(backend: Backend, seeds: range) -> int:
    """Blocks whose decoded best sample is the exact optimum; every sample set must decode."""
    found = 0
    for seed in seeds:
        block = gram_block(seed)
        sampleset = backend.solve(block)
        X = sample_matrix(sampleset, block.n)
        assert X.shape[1] == block.n and set(np.unique(X)) <= {0, 1}
        found += abs(decide(block, sampleset).energy - optimum(block)) < 1e-9
    return found


# --- QAOA with qiskit -------------------------------------------------------------------------


def all_feasible(block: Block, sampleset: dimod.SampleSet) -> bool:
    return bool(block.is_feasible(sample_matrix(sampleset, block.n)).all())


@needs_qiskit
def test_xy_qaoa_qiskit_reaches_the_optimum_and_every_shot_is_feasible():
    """The default: Dicke states and the XY mixer on the bare objective (no penalty)."""
    backend = get_backend("qaoa-qiskit", reps=2, maxiter=30, shots=1024, seed=0)
    assert backend.spec.keeps_cardinality(backend.options)
    assert backend.max_variables == 20
    assert hits(backend, range(3)) == 3
    block = gram_block(3)
    sampleset = backend.solve(block)
    assert all_feasible(block, sampleset) and sampleset.info["feasible_fraction"] == 1.0
    assert "penalty" not in sampleset.info and sampleset.info["mixer"] == "xy"


@needs_qiskit
def test_x_mixer_keeps_the_penalty_formulation():
    backend = get_backend("qaoa-qiskit", mixer="x", reps=2, maxiter=30, seed=0)
    assert not backend.spec.keeps_cardinality(backend.options)
    sampleset = backend.solve(gram_block(0))
    assert sampleset.info["penalty"] > 0 and sampleset.info["mixer"] == "x"
    assert 0 < sampleset.info["feasible_fraction"] < 1  # the X mixer leaves the k-subspace
    with pytest.raises(BackendError, match="penalty"):  # not for the native form
        get_backend("qaoa-qiskit", penalty=1.0)


@needs_qiskit
def test_n_m_blocks_get_one_dicke_state_and_mixer_per_group():
    rng = np.random.default_rng(5)
    U = rng.normal(size=(8, 24))
    current = np.array([1, 0, 1, 0, 0, 1, 1, 0], dtype=np.int8)
    block = Block(
        Q=U @ U.T, constant=0.0, current=current, groups=(np.arange(4), np.arange(4, 8)), k=(2, 2)
    )
    backend = get_backend("qaoa-qiskit", reps=1, maxiter=20, seed=0, xy_graph="complete")
    sampleset = backend.solve(block)
    assert all_feasible(block, sampleset)
    assert decide(block, sampleset).energy == pytest.approx(optimum(block))


@needs_qiskit
def test_qaoa_options_are_checked_before_any_circuit_runs():
    backend = get_backend("qaoa-qiskit")
    with pytest.raises(BackendError, match="at most 20"):
        backend.check_size(21)
    bqm = gram_block(0, 3).to_bqm()
    for option, hint in [
        ({"optimizer": "adam"}, "cobyla"),
        ({"mixer": "ring"}, "xy, x"),
        ({"xy_graph": "line"}, "ring, complete"),
        ({"cvar_alpha": 0}, r"\(0, 1\]"),
    ]:
        with pytest.raises(BackendError, match=hint):
            backend.base_sampler.sample(bqm, **option)
    with pytest.raises(BackendError, match="takes no cardinality"):
        backend.base_sampler.sample(bqm, cardinality=[([0, 1, 2], 1)], mixer="x")


@pytest.fixture
def runtime_calls(monkeypatch):
    """Every Session and Batch entered, and the mode of every runtime sampler job."""
    import qiskit_ibm_runtime

    calls = {"session": [], "batch": [], "runs": []}

    def counting(cls, kind):
        class Counting(cls):
            def __enter__(self):
                calls[kind].append(self)
                return super().__enter__()

        return Counting

    original_run = qiskit_ibm_runtime.SamplerV2.run

    def run(self, pubs, *args, **kwargs):
        calls["runs"].append(self._mode)
        return original_run(self, pubs, *args, **kwargs)

    monkeypatch.setattr(
        qiskit_ibm_runtime, "Session", counting(qiskit_ibm_runtime.Session, "session")
    )
    monkeypatch.setattr(qiskit_ibm_runtime, "Batch", counting(qiskit_ibm_runtime.Batch, "batch"))
    monkeypatch.setattr(qiskit_ibm_runtime.SamplerV2, "run", run)
    return calls


@needs_runtime
def test_fake_ibm_device_transpiles_and_decodes_inside_one_session(runtime_calls):
    """Local testing mode: the runtime's SamplerV2 in a Session on a fake device (its coupling
    map, basis gates and noise model on Aer); nothing leaves the machine."""
    block = gram_block(1, 4)
    backend = get_backend("qaoa-qiskit", fake_backend="fake_manila", reps=1, maxiter=4, seed=0)
    sampleset = backend.solve(block)
    info = sampleset.info
    assert info["device"] == "fake_manila" and info["trained_on"] == "fake_manila"
    ideal = get_backend("qaoa-qiskit", reps=1, maxiter=1).solve(block).info
    assert info["two_qubit_gates"] > ideal["two_qubit_gates"]  # routed on Manila's line of 5
    [session] = runtime_calls["session"]
    assert not runtime_calls["batch"]
    assert runtime_calls["runs"] == [session] * (info["training_batches"] + 1)
    decision = decide(block, sampleset)
    assert block.is_feasible(decision.x) and 0 < info["feasible_fraction"] <= 1


@needs_runtime
def test_independent_blocks_share_one_batch_and_iterative_ones_one_session(runtime_calls):
    """solve_many: blocks trained locally send one final job each, all in one Batch; blocks
    trained on the device run every optimiser job of all blocks in one Session."""
    blocks = [gram_block(seed, 4) for seed in range(2)]
    options = {"fake_backend": "fake_manila", "reps": 1, "maxiter": 4, "seed": 0}
    results = get_backend("qaoa-qiskit", optimize_on="local", **options).solve_many(blocks)
    [batch] = runtime_calls["batch"]
    assert runtime_calls["runs"] == [batch, batch] and not runtime_calls["session"]
    runtime_calls["runs"].clear()
    results += get_backend("qaoa-qiskit", **options).solve_many(blocks)
    [session] = runtime_calls["session"]
    jobs = sum(r.info["training_batches"] + 1 for r in results[2:])
    assert runtime_calls["runs"] == [session] * jobs
    assert all(block.is_feasible(decide(block, r).x) for block, r in zip(blocks * 2, results))


@needs_runtime
def test_unknown_fake_device_names_the_known_ones():
    with pytest.raises(BackendError, match="FakeFez"):
        get_backend("qaoa-qiskit", fake_backend="fake_atlantis")
    with pytest.raises(BackendError, match="execution"):
        get_backend("qaoa-qiskit", fake_backend="fake_manila", execution="stream")


@needs_qiskit
def test_ibm_backend_without_runtime_names_the_install(monkeypatch):
    if _has("qiskit_ibm_runtime"):
        pytest.skip("qiskit-ibm-runtime is installed")
    from qubo_prune.backends.qaoa.qiskit_qaoa import QiskitQAOASampler

    with pytest.raises(BackendError, match=r"pip install 'qubo-prune\[qiskit\]'"):
        QiskitQAOASampler(ibm_backend="ibm_torino")


# --- QAOA with Amazon Braket ------------------------------------------------------------------


@needs_braket
def test_xy_qaoa_braket_reaches_the_optimum_with_feasible_shots_only():
    # the LocalSimulator draws its shots unseeded: n = 6 has 20 feasible states, so 512 shots
    # miss the optimum only if QAOA sends its probability far below uniform
    backend = get_backend("braket", reps=1, maxiter=12, shots=512, seed=0)
    assert backend.max_variables == 20
    for seed in range(2):
        block = gram_block(seed, 6)
        sampleset = backend.solve(block)
        assert all_feasible(block, sampleset)
        assert decide(block, sampleset).energy == pytest.approx(optimum(block))


@needs_braket
def test_braket_circuit_is_parametric_and_exact_for_one_qubit():
    """One free gamma and beta per layer; a one-variable objective's shots sit on its minimum."""
    from qubo_prune.backends.qaoa.ansatz import qaoa_gates
    from qubo_prune.backends.qaoa.braket_qaoa import BraketQAOASampler, to_circuit

    circuit = to_circuit(qaoa_gates(np.array([0.5, -1.0]), [(0, 1, 0.25)], reps=2), 2)
    assert {p.name for p in circuit.parameters} == {"gamma_0", "gamma_1", "beta_0", "beta_1"}
    bqm = dimod.BinaryQuadraticModel({"a": -1.0}, {}, 0.0, dimod.BINARY)
    sampleset = BraketQAOASampler().sample(bqm, shots=200, seed=0, mixer="x")
    assert sampleset.first.sample == {"a": 1}
    assert sampleset.record.num_occurrences.sum() == 200


@needs_braket
def test_braket_noise_model_of_a_published_device_breaks_some_shots():
    """IonQ Forte's published gate errors on the density-matrix simulator: the same circuit,
    but noise now leaves the k-subspace; the decoder still returns a feasible mask."""
    backend = get_backend(
        "braket", noise_model="ionq-forte", optimize_on="local", reps=1, maxiter=5, shots=400
    )
    block = gram_block(2, 6)
    sampleset = backend.solve(block)
    assert sampleset.info["device"] == "braket_dm with ionq-forte noise"
    assert sampleset.info["trained_on"] == "local simulator"
    assert 0.3 < sampleset.info["feasible_fraction"] < 1.0
    assert block.is_feasible(decide(block, sampleset).x)
    with pytest.raises(BackendError, match="ionq-forte"):
        get_backend("braket", noise_model="acme-1")


class _FakeTask:
    def __init__(self, arn: str, state: str):
        self.id, self._state, self.cancelled = arn, state, False

    def state(self) -> str:
        return self._state

    def cancel(self) -> None:
        self.cancelled = True


class _FakeDevice:
    """A gate-model device whose every task ends in ``state`` (None results, like AwsDevice)."""

    arn = "arn:aws:braket:us-east-1::device/qpu/test/fake"
    properties = SimpleNamespace(paradigm=SimpleNamespace(qubitCount=4))

    def __init__(self, state: str):
        self.state, self.tasks = state, []

    def run_batch(self, circuits, **kwargs):
        self.tasks = [_FakeTask(f"{self.arn}/task{i}", self.state) for i in range(len(circuits))]
        return SimpleNamespace(
            tasks=self.tasks,
            unsuccessful={t.id for t in self.tasks},
            results=lambda **kw: [None] * len(self.tasks),
        )


@needs_braket
@pytest.mark.parametrize("state", ["FAILED", "CANCELLED", "QUEUED"])
def test_braket_failed_or_timed_out_tasks_raise_and_are_cancelled(state):
    from qubo_prune.backends.qaoa.braket_qaoa import BraketQAOASampler, BraketTaskError

    device = _FakeDevice(state)
    sampler = BraketQAOASampler(device=device, timeout=0.1)
    with pytest.raises(BraketTaskError, match=state):
        sampler.sample(gram_block(0, 3).to_bqm(), maxiter=0, popsize=1)
    assert all(t.cancelled == (state == "QUEUED") for t in device.tasks)
    with pytest.raises(BackendError, match="4"):  # the device's own qubit count is the limit
        sampler.sample(gram_block(0, 5).to_bqm())


# --- D-Wave -----------------------------------------------------------------------------------


@needs_dwave
def test_dwave_qpu_path_end_to_end_on_the_mock():
    """Embedding, sampling on the mock's Chimera graph and unembedding back to 0..n-1."""
    from dwave.system.testing import MockDWaveSampler

    from qubo_prune.backends.dwave import DWaveCliqueQPUSampler

    mock = MockDWaveSampler()
    backend = get_backend("dwave", qpu_sampler=mock, num_reads=1000)  # no token needed
    assert isinstance(backend.base_sampler, DWaveCliqueQPUSampler)
    assert hits(backend, range(3)) >= 2

    sampleset = backend.solve(gram_block(3))
    embedding = sampleset.info["embedding_context"]["embedding"]
    assert sorted(embedding) == list(range(8))
    qubits = [q for chain in embedding.values() for q in chain]
    assert len(qubits) == len(set(qubits)) and set(qubits) <= set(mock.nodelist)
    assert 0.0 <= sampleset.info["chain_break_fraction"] <= 1.0
    assert "qpu_access_time" in sampleset.info["timing"]
    assert "chain_break_fraction" in sampleset.record.dtype.names


@needs_dwave
def test_dwave_mock_on_an_advantage_pegasus_graph_embeds_runs_and_unembeds_16_variables():
    """The Advantage's Pegasus P16 graph: a 16-variable block embeds as a clique (chains of 3
    qubits), samples and comes back over 0..15; the embedding is kept per (graph, n)."""
    from qubo_prune.backends.dwave import DWaveCliqueQPUSampler, mock_qpu

    mock = mock_qpu("advantage")
    assert mock.properties["topology"] == {"type": "pegasus", "shape": [16]}
    backend = get_backend("dwave", qpu_sampler=mock, num_reads=200)
    block = gram_block(4, 16)
    sampleset = backend.solve(block)
    embedding = sampleset.info["embedding_context"]["embedding"]
    assert sorted(embedding) == list(range(16))
    qubits = [q for chain in embedding.values() for q in chain]
    assert len(qubits) == len(set(qubits)) and set(qubits) <= set(mock.nodelist)
    lengths = sampleset.info["chain_length"]
    assert lengths["max"] == max(len(c) for c in embedding.values()) >= 2
    assert sorted(sampleset.variables) == list(range(16))
    assert block.is_feasible(decide(block, sampleset).x)
    again = DWaveCliqueQPUSampler(qpu_sampler=mock_qpu("advantage"))  # another sampler, same QPU
    assert again.clique_embedding(16) is backend.base_sampler.clique_embedding(16)
    assert again.largest_clique_size == 180
    zephyr = DWaveCliqueQPUSampler(qpu_sampler=mock_qpu("advantage2"))
    assert zephyr.graph_key != again.graph_key
    with pytest.raises(BackendError, match="advantage2"):
        mock_qpu("chimera")


@needs_dwave
def test_dwave_refuses_a_block_larger_than_the_largest_clique_before_sending():
    from dwave.system.testing import MockDWaveSampler

    from qubo_prune.backends.dwave import DWaveCliqueQPUSampler

    mock = MockDWaveSampler()
    calls = []
    mock.sample = lambda *a, **k: calls.append(1)
    sampler = DWaveCliqueQPUSampler(qpu_sampler=mock)
    big = sampler.largest_clique_size + 1
    with pytest.raises(BackendError, match="largest clique"):
        sampler.sample(gram_block(0, big).to_bqm())
    assert not calls


@needs_dwave
def test_leap_cqm_keeps_the_cardinality_natively():
    """The registry hands the bare objective and the cardinality; only feasible states return."""
    from qubo_prune.backends.dwave import LeapCQMSampler

    spec = get_spec("leap-cqm")
    assert spec.capabilities.native_cardinality
    backend = get_backend("leap-cqm", cqm_sampler=dimod.ExactCQMSolver())
    assert isinstance(backend.base_sampler, LeapCQMSampler)
    for seed in range(2):
        block = gram_block(seed)
        sampleset = backend.solve(block)
        assert block.is_feasible(sample_matrix(sampleset, block.n)).all()
        assert sampleset.first.energy == pytest.approx(optimum(block))


# --- credentials ------------------------------------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """No credential variables, and every config file location an empty temporary directory."""
    for name in list(os.environ):
        if name.startswith(("DWAVE_", "AWS_", "QISKIT_IBM_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws" / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws" / "config"))
    monkeypatch.chdir(tmp_path)  # dwave also reads ./dwave.conf
    return tmp_path


def _fast(check, *args):
    start = time.perf_counter()
    out = check(*args)
    assert time.perf_counter() - start < 1.0
    return out


@needs_dwave
@pytest.mark.parametrize("name", ["dwave", "leap-hybrid", "leap-cqm"])
def test_dwave_backends_without_token_fail_fast_naming_what_to_set(no_credentials, name):
    start = time.perf_counter()
    with pytest.raises(BackendError, match="DWAVE_API_TOKEN or run `dwave config create`"):
        get_backend(name)
    assert time.perf_counter() - start < 1.0


def test_dwave_check_passes_for_substituted_samplers(no_credentials):
    assert _fast(dwave_problem, {"qpu_sampler": object()}) is None
    assert _fast(dwave_problem, {"cqm_sampler": object()}) is None
    assert "DWAVE_API_TOKEN" in _fast(dwave_problem, {})
    assert "profile 'lab' not found" in _fast(dwave_problem, {"profile": "lab"})


def test_unreadable_dwave_config_is_reported_without_its_content(no_credentials):
    config = no_credentials / "dwave.conf"
    config.write_text("this line is not ini syntax\n")
    message = _fast(dwave_problem, {})
    assert "DWAVE_API_TOKEN" in message and "not ini syntax" not in message


def test_braket_device_needs_aws_credentials_and_region(no_credentials, monkeypatch):
    assert _fast(braket_problem, {}) is None  # the local simulator
    message = _fast(braket_problem, {"device_arn": IONQ_ARN})
    assert "AWS_ACCESS_KEY_ID" in message and "AWS_PROFILE" in message
    assert "not configured" in _fast(braket_problem, {"device_arn": IONQ_ARN, "aws_profile": "x"})
    (no_credentials / "aws").mkdir()
    (no_credentials / "aws" / "config").write_text(
        "[profile sso]\nsso_session = corp\nsso_account_id = 123\n"
    )
    sv1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
    assert "AWS_REGION" in _fast(braket_problem, {"device_arn": sv1, "aws_profile": "sso"})
    assert _fast(braket_problem, {"device_arn": IONQ_ARN, "aws_profile": "sso"}) is None


def test_ibm_backend_needs_a_token_or_saved_account(no_credentials):
    assert _fast(ibm_problem, {}) is None  # local simulators
    assert "QISKIT_IBM_TOKEN" in _fast(ibm_problem, {"ibm_backend": "ibm_torino"})


# --- cost guard -------------------------------------------------------------------------------


def test_local_backends_are_free_and_need_no_budget():
    estimates = [
        estimate_block_cost("braket", {}),
        estimate_block_cost("qaoa-qiskit", {"shots": 10}),
        estimate_block_cost("dwave", {"qpu_sampler": object()}),
        estimate_block_cost("neal", {}),
    ]
    total = check_budget(estimates, None)
    assert (total.usd, total.qpu_seconds, total.paid, total.solves) == (0.0, 0.0, False, 4)


def test_braket_qpu_estimate_counts_tasks_and_shots():
    trained = estimate_block_cost("braket", {"device_arn": IONQ_ARN, "shots": 100})
    assert trained.usd == pytest.approx((60 + 1) * (0.30 + 100 * 0.08))  # COBYLA: 60 + final
    evolved = {"optimizer": "differential_evolution", "maxiter": 2, "popsize": 4, "reps": 2}
    cost = estimate_block_cost("braket", {"device_arn": IONQ_ARN, "shots": 100, **evolved})
    assert cost.usd == pytest.approx((3 * 4 * 4 + 1) * (0.30 + 100 * 0.08))
    local = estimate_block_cost(
        "braket", {"device_arn": IONQ_ARN, "shots": 100, "optimize_on": "local"}
    )
    assert local.usd == pytest.approx(0.30 + 100 * 0.08) and local.paid
    with pytest.raises(BudgetError, match="no Braket price"):
        estimate_block_cost("braket", {"device_arn": "arn:aws:braket:::device/qpu/acme/x"})


def test_ibm_estimate_bills_a_session_for_its_idle_gaps_and_a_batch_for_quantum_time():
    """60 COBYLA jobs and the final one, 1,024 shots each; a session also holds the QPU
    between jobs."""
    session = estimate_block_cost("qaoa-qiskit", {"ibm_backend": "ibm_fez"})
    quantum = 61 * 2.0 + 61 * 1024 * 2.5e-4
    assert session.qpu_seconds == pytest.approx(quantum + 60 * 2.0) and session.paid
    batch = estimate_block_cost("qaoa-qiskit", {"ibm_backend": "ibm_fez", "execution": "batch"})
    assert batch.qpu_seconds == pytest.approx(quantum)
    evolved = {"ibm_backend": "ibm_fez", "optimizer": "differential_evolution", "maxiter": 3}
    fewer = estimate_block_cost("qaoa-qiskit", evolved)  # 4 generations of 16 angle sets
    assert fewer.qpu_seconds == pytest.approx(5 * 2.0 + 65 * 1024 * 2.5e-4 + 4 * 2.0)
    local = {"ibm_backend": "ibm_fez", "optimize_on": "local"}
    assert estimate_block_cost("qaoa-qiskit", local).qpu_seconds == pytest.approx(2.256)
    assert estimate_block_cost("qaoa-qiskit", {"fake_backend": "fake_fez"}).usd == 0


def test_dwave_estimate_follows_reads_and_anneal_time():
    short = estimate_block_cost("dwave", {"num_reads": 100})
    long = estimate_block_cost("dwave", {"num_reads": 100, "annealing_time": 2000})
    assert 0 < short.qpu_seconds < long.qpu_seconds and short.paid
    assert estimate_block_cost("leap-cqm", {"time_limit": 10}).usd == pytest.approx(10 * 0.56)


def test_budget_guard_refuses_before_anything_is_sent(monkeypatch):
    """The guard runs on the estimates alone: no device is built, no task is created."""
    if _has("braket.aws"):
        import braket.aws

        def no_device(*args, **kwargs):
            raise AssertionError("a device was built before the budget check")

        monkeypatch.setattr(braket.aws, "AwsDevice", no_device)
    per_block = estimate_block_cost("braket", {"device_arn": IONQ_ARN, "optimize_on": "local"})
    with pytest.raises(BudgetError, match="over --max-cost"):
        check_budget([per_block] * 10, max_cost=1.0)
    with pytest.raises(BudgetError, match="--max-cost"):
        check_budget([per_block], max_cost=None)
    total = check_budget([per_block] * 2, max_cost=1000.0)
    assert total.usd == pytest.approx(2 * per_block.usd) and total.detail == per_block.detail


def test_prices_are_dated_and_overridable(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"as_of": "2030-01-01", "braket_task_usd": 0.0}))
    prices = load_prices(path)
    assert prices.as_of == "2030-01-01"
    cost = estimate_block_cost("braket", {"device_arn": IONQ_ARN, "shots": 10}, prices)
    assert cost.usd == pytest.approx(61 * 10 * 0.08)
    path.write_text(json.dumps({"braket_tasks_usd": 1}))
    with pytest.raises(BudgetError, match="braket_tasks_usd"):
        load_prices(path)


# --- dimod's own sampler conformance tests ----------------------------------------------------


def _quick_qaoa():
    from qubo_prune.backends.qaoa.qiskit_qaoa import QiskitQAOASampler

    class Quick(QiskitQAOASampler):
        def sample(self, bqm, **kwargs):
            return super().sample(bqm, reps=1, maxiter=4, shots=32, seed=0, **kwargs)

    return Quick()


def _quick_braket():
    from qubo_prune.backends.qaoa.braket_qaoa import BraketQAOASampler

    class Quick(BraketQAOASampler):
        def sample(self, bqm, **kwargs):
            return super().sample(bqm, shots=16, popsize=1, maxiter=0, seed=0, **kwargs)

    return Quick()


def _mock_qpu():
    from dwave.system.testing import MockDWaveSampler

    from qubo_prune.backends.dwave import DWaveCliqueQPUSampler

    return DWaveCliqueQPUSampler(qpu_sampler=MockDWaveSampler())


def _exact_cqm():
    from qubo_prune.backends.dwave import LeapCQMSampler

    return LeapCQMSampler(cqm_sampler=dimod.ExactCQMSolver())


if _has("qiskit"):

    @dimod.testing.load_sampler_bqm_tests(_quick_qaoa, max_num_variables=2)
    class TestQiskitQAOAIsADimodSampler(unittest.TestCase):
        pass


if _has("braket.circuits"):

    @dimod.testing.load_sampler_bqm_tests(_quick_braket, max_num_variables=2)
    class TestBraketQAOAIsADimodSampler(unittest.TestCase):
        pass


if _has("dwave.system"):

    @dimod.testing.load_sampler_bqm_tests(_mock_qpu)
    class TestDWaveCliqueIsADimodSampler(unittest.TestCase):
        pass

    @dimod.testing.load_sampler_bqm_tests(_exact_cqm)
    class TestLeapCQMIsADimodSampler(unittest.TestCase):
        pass
