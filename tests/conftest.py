import os

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep trained models and checkpoints of tests out of the user's cache."""
    monkeypatch.setenv("QUBO_PRUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
