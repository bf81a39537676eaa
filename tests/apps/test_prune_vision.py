"""``qubo-prune prune-vision``: end to end on a local DeiT folder, bad input refused before any
model or image loads, and the embedded model's cache key."""

import dataclasses
import json

import pytest

from qubo_prune.apps import prune_vision
from qubo_prune.apps.cli import main
from qubo_prune.apps.deit_fmnist import DeitRecipe
from qubo_prune.vision.checkpoint import load_pruned_classifier
from tests.helpers import tiny_deit, write_dataset

pytest.importorskip("transformers")


@pytest.fixture
def deit_folder(tmp_path):
    tiny_deit().save_pretrained(tmp_path / "deit")
    return tmp_path / "deit"


@pytest.mark.parametrize("objective", ["layer", "loss"])
def test_prune_vision_on_a_local_folder(tmp_path, deit_folder, capsys, objective):
    data = write_dataset(tmp_path / "data", classes=("a", "b", "c"), per_class=4)
    out = tmp_path / "out"
    args = ["prune-vision", "--model", str(deit_folder), "--images", str(data), "--out", str(out)]
    args += ["--method", "icbs", "--solver", "exact", "--block-size", "8", "--no-progress"]
    args += ["--objective", objective, "--epochs", "1", "--sparsity", "0.5"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "top-1 accuracy" in table and "peak memory" in table
    report = json.loads((out / "report.json").read_text())
    assert report["eval_images"] == 12 and report["calib_images"] == 12
    assert 0 <= report["accuracy"] <= 100 and report["mean_layer_error"] > 0
    model, masks = load_pruned_classifier(out)
    assert len(masks) == 12
    assert all(m.double().mean().item() == pytest.approx(0.5) for m in masks.values())


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sparsity", "1.5"], "sparsity must lie strictly between 0 and 1"),
        (["--pattern", "3:3"], "N:M pattern needs 0 < N < M"),
        (["--model", "/nonexistent/deit", "--images", "DATA"], "config.json"),
        (["--model", "CONFIG"], "--images DIR is needed"),
        (["--model", "CONFIG", "--images", "/nonexistent/data"], "does not exist"),
        (["--model", "CONFIG", "--images", "DATA", "--pattern", "2:4"], "does not fit the model"),
        (["--objective", "loss", "--pattern", "2:4"], "loss objective is iCBS"),
        (["--objective", "loss", "--method", "wanda"], "loss objective is iCBS"),
        (["--images", "DATA"], "drop --images"),
        (["--calib-images", "0"], "calib-images must be at least 1"),
        (["--dry-run"], "no dry run"),
        (["--start", "admm", "--solver", "no-such-solver"], "no-such-solver"),
        (["--solver", "dwave"], "paid solver"),
        (["--solver", "exact", "--block-size", "64"], "too large"),
    ],
)
def test_bad_input_fails_before_anything_loads(tmp_path, monkeypatch, capsys, args, message):
    def refuse(*a, **k):
        raise AssertionError("a model or images were loaded")

    monkeypatch.setattr(prune_vision, "_load", refuse)
    config = tmp_path / "odd"
    tiny_deit(hidden=18).config.save_pretrained(config)  # 18 inputs: no 2:4
    data = write_dataset(tmp_path / "data")
    args = [str(config) if a == "CONFIG" else str(data) if a == "DATA" else a for a in args]
    code = main(["prune-vision", "--out", str(tmp_path / "out"), *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_unknown_method_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["prune-vision", "--method", "obs", "--out", "x"])
    assert "invalid choice" in capsys.readouterr().err


def test_the_cache_key_covers_every_training_option():
    base = DeitRecipe()
    for field in dataclasses.fields(DeitRecipe):
        value = getattr(base, field.name)
        changed = dataclasses.replace(base, **{field.name: value * 2 if value else 1})
        assert changed.key() != base.key(), field.name
