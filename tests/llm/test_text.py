"""Text windows by the protocol of docs/anchors.md."""

import random

import torch

from qubo_prune.llm.text import calibration_windows, evaluation_windows, read_text


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
