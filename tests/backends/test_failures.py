"""Backends that fail are stopped with one line naming them; a failed task leaves its block."""

import pytest

from qubo_prune.backends import registry
from qubo_prune.backends.errors import cloud_message
from qubo_prune.backends.registry import BackendError, get_backend
from tests.backends.bad_backend_plugin import Misbehaving, misbehaving_specs
from tests.helpers import random_block


@pytest.fixture
def misbehaving(monkeypatch):
    monkeypatch.setattr(registry, "_plugin_specs", misbehaving_specs)


@pytest.mark.parametrize(
    "mode,message",
    [
        ("raise", r"solver 'misbehaving' failed: RuntimeError: internal solver error$"),
        ("none", "solver 'misbehaving' returned NoneType, not a dimod.SampleSet"),
        ("twos", "solver 'misbehaving' returned INTEGER samples, not 0/1 values"),
        ("empty", "solver 'misbehaving' returned no samples"),
    ],
)
def test_a_bad_answer_stops_with_one_line_naming_the_solver(misbehaving, mode, message):
    backend = get_backend("misbehaving", mode=mode)
    with pytest.raises(BackendError, match=message) as caught:
        backend.solve(random_block(6, seed=0))
    assert "\n" not in str(caught.value)


def test_a_hanging_solve_is_abandoned_after_its_time_limit(misbehaving):
    backend = get_backend("misbehaving", mode="hang", solve_timeout=0.3)
    try:
        with pytest.raises(BackendError, match="no answer within 0.3 s .option solve_timeout"):
            backend.solve(random_block(6, seed=0))
    finally:
        Misbehaving.release.set()


def test_the_time_limit_is_checked_like_every_option(misbehaving):
    with pytest.raises(BackendError, match="solve_timeout='soon' .a str.* must be float"):
        get_backend("misbehaving", solve_timeout="soon")


def test_sdk_errors_become_what_to_check_never_their_text():
    import botocore.exceptions

    secret = "AKIAEXAMPLESECRET"
    err = botocore.exceptions.EndpointConnectionError(endpoint_url=f"https://{secret}.example")
    message = cloud_message(err, "braket")
    assert "unreachable" in message and "network" in message and secret not in message
    assert "AWS_REGION" in cloud_message(botocore.exceptions.NoRegionError(), "braket")
    from dwave.cloud.exceptions import RequestTimeout, SolverAuthenticationError

    assert "in time" in cloud_message(RequestTimeout(secret), "dwave")
    assert "DWAVE_API_TOKEN" in cloud_message(SolverAuthenticationError(secret), "dwave")
    assert secret not in cloud_message(SolverAuthenticationError(secret), "dwave")
    assert cloud_message(ValueError("x"), "neal") is None


def test_an_sdk_error_while_building_becomes_one_line(monkeypatch):
    from qubo_prune.backends.registry import BackendSpec

    spec = BackendSpec(name="cloudy", factory="tests.helpers:raise_no_region", description="x")
    monkeypatch.setattr(registry, "_plugin_specs", lambda: {"cloudy": spec})
    with pytest.raises(BackendError, match=r"^solver 'cloudy': no AWS region: set AWS_REGION"):
        get_backend("cloudy")


def test_found_credentials_are_not_called_verified(monkeypatch):
    from qubo_prune.backends.registry import BackendSpec

    spec = BackendSpec(name="cloud", factory="x:y", description="x", credentials=lambda o: None)
    assert spec.status() == ("credentials found (not verified)", "")
    local = BackendSpec(
        name="sim", factory="x:y", description="x", credentials=lambda o: "set TOKEN" if o else None,
        hardware={"device": "qpu"},
    )  # fmt: skip
    assert local.status() == (
        "ready (simulator); hardware: no credentials",
        "for hardware, set TOKEN",
    )


def test_a_braket_qpu_arn_names_its_region(monkeypatch):
    pytest.importorskip("braket.aws")
    import braket.aws

    from qubo_prune.backends.qaoa.braket_qaoa import BraketQAOASampler

    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    seen = {}

    class Device:  # records the session it is given; contacts nothing
        def __init__(self, arn, aws_session=None):
            seen["region"] = aws_session.region
            self.properties = type("P", (), {"paradigm": type("Q", (), {"qubitCount": 20})})()

    monkeypatch.setattr(braket.aws, "AwsDevice", Device)
    BraketQAOASampler(device_arn="arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet")
    assert seen["region"] == "eu-north-1"
