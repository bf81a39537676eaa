"""The iCBS loop on quantum backends' local paths, the cost guard and per-block failures."""

import os

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from qubo_prune.backends.cost import BudgetError  # noqa: E402
from qubo_prune.backends.registry import BackendError, SolveFailed  # noqa: E402
from qubo_prune.pruners.icbs import ICBSPruner  # noqa: E402
from tests.helpers import NAMES, check_density, fail_on_solve, tiny_data, tiny_mlp  # noqa: E402


@pytest.mark.parametrize(
    "solver,opts",
    [
        ("qaoa-qiskit", {"reps": 1, "maxiter": 30, "shots": 256, "seed": 0}),
        ("braket", {"reps": 1, "shots": 128}),
    ],
)
def test_icbs_run_on_quantum_simulators_completes(solver, opts):
    pytest.importorskip("qiskit" if solver == "qaoa-qiskit" else "braket.devices")
    model = tiny_mlp()
    X, y = tiny_data()
    pruner = ICBSPruner(
        0.4,
        solver,
        opts,
        block_size=6,
        epochs=2,
        steps_per_epoch=2,
        samples_per_step=128,
        progress=False,
    )
    result = pruner.prune(model, F.cross_entropy, X, y, NAMES)
    assert len(result.history) == 4 and not any(r.error for r in result.history)
    check_density(model, result.state, 0.4)
    assert all(r.energy_after <= r.energy_before for r in result.history)


def test_block_too_large_for_a_qaoa_simulator_is_refused_before_work():
    with pytest.raises(BackendError, match="too large"):
        ICBSPruner(0.4, "qaoa-qiskit", block_size=64)


def test_paid_solver_without_budget_is_refused_before_anything_is_built(monkeypatch):
    # no credentials are set: the cost guard answers first, so no client is ever created
    for var in ("DWAVE_API_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(BudgetError, match="--max-cost"):
        ICBSPruner(0.4, "dwave", block_size=8)
    with pytest.raises(BudgetError, match="over --max-cost"):
        ICBSPruner(0.4, "dwave", block_size=8, max_cost=0.0001)


def test_dry_run_prices_and_builds_blocks_without_sending(monkeypatch):
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    model = tiny_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    X, y = tiny_data()
    pruner = ICBSPruner(
        0.4,
        "dwave",
        block_size=8,
        epochs=1,
        steps_per_epoch=3,
        dry_run=True,
        record_blocks=True,
        progress=False,
    )
    assert pruner.cost.paid and pruner.cost.usd > 0
    result = pruner.prune(model, F.cross_entropy, X, y, NAMES)
    assert len(result.blocks) == 3 and not result.accepted_steps
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_a_failed_task_leaves_its_block_unchanged(monkeypatch):
    model = tiny_mlp()
    X, y = tiny_data()
    pruner = ICBSPruner(0.4, "exact", block_size=8, epochs=3, steps_per_epoch=1, progress=False)
    fail_on_solve(monkeypatch, pruner, 2, SolveFailed("task arn:... FAILED on the device"))
    result = pruner.prune(model, F.cross_entropy, X, y, NAMES)
    failed = result.history[1]
    assert "FAILED" in failed.error and not failed.accepted and failed.swapped == 0
    check_density(model, result.state, 0.4)
