"""The model-loss loop under hostile conditions: failing backends, dry runs, planted files."""

import pytest
import torch
from torch.nn import functional as F

from qubo_prune.backends import registry
from qubo_prune.backends.registry import BackendError
from qubo_prune.pruners.icbs import ICBSPruner
from tests.backends.bad_backend_plugin import Misbehaving, misbehaving_specs
from tests.helpers import NAMES, tiny_data, tiny_mlp

KW = dict(block_size=12, epochs=3, steps_per_epoch=2, samples_per_step=64, progress=False)


def dense_state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_failing_backend_stops_the_run_with_the_dense_model_and_its_checkpoint(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(registry, "_plugin_specs", misbehaving_specs)
    model, (X, y) = tiny_mlp(), tiny_data()
    before = dense_state(model)
    pruner = ICBSPruner(0.4, "misbehaving", {"mode": "raise"}, checkpoint=tmp_path / "c.pt", **KW)
    with pytest.raises(BackendError, match="solver 'misbehaving' failed: RuntimeError"):
        pruner.prune(model, F.cross_entropy, X, y, NAMES)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # dense weights back
    assert not (tmp_path / "c.pt").exists()  # the first step failed: nothing finished


def test_a_run_that_fails_midway_resumes_from_its_last_finished_step(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_plugin_specs", misbehaving_specs)
    monkeypatch.setattr(Misbehaving, "calls", 0)
    monkeypatch.setattr(Misbehaving, "fail_at", 3)
    X, y = tiny_data()
    ckpt = tmp_path / "c.pt"

    def pruner():
        options = {"mode": "flaky", "penalty": 1.0}  # one sampler call per solve
        return ICBSPruner(0.4, "misbehaving", options, checkpoint=ckpt, **KW)

    with pytest.raises(BackendError, match=r"dense weights are back; the 2 finished steps are in"):
        pruner().prune(tiny_mlp(), F.cross_entropy, X, y, NAMES)
    resumed = pruner().prune(tiny_mlp(), F.cross_entropy, X, y, NAMES)  # the service is back
    assert len(resumed.history) == 6 and Misbehaving.calls == 3 + 4


def test_a_dry_run_writes_no_checkpoint_a_real_run_could_resume(tmp_path):
    X, y = tiny_data()
    ckpt = tmp_path / "c.pt"
    dry = ICBSPruner(0.4, "exact", checkpoint=ckpt, dry_run=True, **KW)
    assert len(dry.prune(tiny_mlp(), F.cross_entropy, X, y, NAMES).history) == 6
    assert not ckpt.exists()
    real = ICBSPruner(0.4, "exact", checkpoint=ckpt, **KW).prune(
        tiny_mlp(), F.cross_entropy, X, y, NAMES
    )
    assert real.accepted_steps > 0


def test_a_checkpoint_of_other_data_or_another_solver_is_refused(tmp_path):
    X, y = tiny_data()
    ckpt = tmp_path / "c.pt"
    ICBSPruner(0.4, "exact", checkpoint=ckpt, **KW).prune(tiny_mlp(), F.cross_entropy, X, y, NAMES)
    X2, y2 = tiny_data(seed=1)
    with pytest.raises(ValueError, match="another run: the model or data differ"):
        ICBSPruner(0.4, "exact", checkpoint=ckpt, **KW).prune(
            tiny_mlp(), F.cross_entropy, X2, y2, NAMES
        )
    with pytest.raises(ValueError, match="solver 'exact' -> 'neal'"):
        ICBSPruner(0.4, "neal", checkpoint=ckpt, **KW).prune(
            tiny_mlp(), F.cross_entropy, X, y, NAMES
        )


class _Planted:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_planted_checkpoint_never_runs_code(tmp_path):
    planted = _Planted()
    planted.marker = str(tmp_path / "ran")
    ckpt = tmp_path / "c.pt"
    torch.save({"fingerprint": "x", "payload": planted}, ckpt)
    X, y = tiny_data()
    with pytest.raises(ValueError, match="not a qubo-prune checkpoint"):
        ICBSPruner(0.4, "exact", checkpoint=ckpt, **KW).prune(
            tiny_mlp(), F.cross_entropy, X, y, NAMES
        )
    assert not (tmp_path / "ran").exists()


def test_nan_weights_are_named_before_any_work():
    model, (X, y) = tiny_mlp(), tiny_data()
    with torch.no_grad():
        model[2].weight[0, 1] = float("inf")
    with pytest.raises(FloatingPointError, match="parameter '2.weight' holds NaN or inf"):
        ICBSPruner(0.4, "exact", **KW).prune(model, F.cross_entropy, X, y, NAMES)


@pytest.mark.parametrize(
    "solver,options,message",
    [
        (
            "neal",
            {"num_reads": "abc"},
            "num_reads='abc' .a str. of solver 'neal' must be int or None",
        ),
        ("tabu", {"timeout": "500"}, "timeout='500' .a str. of solver 'tabu' must be int"),
        (
            "neal",
            {"penalty_scale": float("nan")},
            "penalty_scale=nan of solver 'neal' must be finite",
        ),
        (
            "gpu-anneal",
            {"penalty": 2.0},
            "keeps the cardinality natively, so penalty does not apply",
        ),
        ("dwave", {"warm_start": True, "qpu_sampler": None}, "takes no initial state"),
        ("qaoa-qiskit", {"warm_start": True}, "takes no initial state"),
    ],
)
def test_option_values_are_checked_before_any_work(solver, options, message):
    with pytest.raises(BackendError, match=message):
        ICBSPruner(0.4, solver, options, dry_run=True, **KW)
