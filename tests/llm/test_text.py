"""Text windows by the protocol of docs/anchors.md."""

import random

import pytest
import torch

from qubo_prune.llm.text import (
    calibration_windows,
    evaluation_windows,
    mixed_calibration_windows,
    read_text,
)


def test_windows_protocol(tmp_path):
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    assert read_text(tmp_path) == "first\n\nsecond"
    stream = torch.arange(2000)
    calib = calibration_windows(stream, 3, seqlen=512)

    rng = random.Random(0)
    starts = [rng.randint(0, 2000 - 513) for _ in range(3)]
    assert [int(w[0]) for w in calib] == starts
    assert evaluation_windows(stream, 64, seqlen=512).shape == (3, 512)


def test_mixed_calibration_shares_windows_out_among_sources():
    a, b = torch.arange(2000), torch.arange(10_000, 13_000)
    mixed = mixed_calibration_windows([a, b], 5, seqlen=64)
    torch.testing.assert_close(mixed[:3], calibration_windows(a, 3, seqlen=64))
    torch.testing.assert_close(mixed[3:], calibration_windows(b, 2, seqlen=64))
    with pytest.raises(ValueError, match="cannot cover 2 text sources"):
        mixed_calibration_windows([a, b], 1, seqlen=64)
