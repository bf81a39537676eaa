"""``prune-llm`` as a hostile user runs it: every bad input refused before the model loads,
NaN weights named, budgets priced, failing solvers, two runs at once, and SIGKILL + resume."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qubo_prune.apps import prune_llm
from qubo_prune.apps.cli import main
from qubo_prune.backends import registry
from tests.backends.bad_backend_plugin import misbehaving_specs
from tests.helpers import prune_llm_args, tiny_llama, tiny_llama_folder

pytest.importorskip("transformers")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path):
    return tiny_llama_folder(tmp_path)


@pytest.fixture
def no_load(monkeypatch):
    """Fail the test if the run reaches the model's weights."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was refused")

    monkeypatch.setattr(prune_llm, "load_causal_lm", refuse)


def refused(argv, capsys) -> str:
    capsys.readouterr()  # only what the run itself prints
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--seqlen", "0"], "--seqlen must be at least 2"),
        (["--eval-windows", "0"], "--eval-windows must be at least 1"),
        (["--rows-per-batch", "0"], "--rows-per-batch must be at least 1"),
        (["--iterations", "0"], "--iterations must be at least 1"),
        (["--seqlen", "100"], r"--seqlen 100 is beyond the model's context \(64\)"),
        (["--solver-opt", "num_reads=abc"], "num_reads='abc' .a str. of solver 'gpu-anneal'"),
        (["--solver", "leap-hybrid"], "this solver is billed: estimated .* for 2048 block solves"),
        (["--calib-text", "/nonexistent/text"], "text source '/nonexistent/text' does not exist"),
    ],
)
def test_bad_input_is_refused_before_the_model_loads(folder, no_load, extra, message, capsys):
    err = refused(prune_llm_args(*folder, folder[0].parent / "out", *extra), capsys)
    assert re.search(message, err), err
    assert not (folder[0].parent / "out").exists()


def test_a_dry_run_prices_every_block_and_sends_nothing(folder, no_load, capsys):
    argv = prune_llm_args(*folder, folder[0].parent / "out", "--solver", "leap-hybrid")
    assert main([*argv, "--dry-run"]) == 0
    assert "dry run: 2048 block solves over 14 weights, estimated $" in capsys.readouterr().out


def test_broken_model_folders_get_clear_errors(folder, tmp_path, capsys):
    model, text = folder
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{ not json")
    assert "unreadable config.json" in refused(prune_llm_args(bad, text, tmp_path / "o"), capsys)
    (bad / "config.json").write_text((model / "config.json").read_text())
    assert "but no weights" in refused(prune_llm_args(bad, text, tmp_path / "o"), capsys)
    weights = (model / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    assert "is truncated" in refused(prune_llm_args(bad, text, tmp_path / "o"), capsys)
    err = refused(prune_llm_args("smollm", text, tmp_path / "o"), capsys)
    assert "Did you mean 'smollm2'?" in err


def test_nan_weights_are_named_before_any_layer_is_pruned(tmp_path, capsys):
    model = tiny_llama()
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[3, 4] = float("nan")
    folder, text = tiny_llama_folder(tmp_path)
    model.save_pretrained(folder)
    err = refused(prune_llm_args(folder, text, tmp_path / "out", "--method", "wanda"), capsys)
    assert "'model.layers.1.mlp.up_proj.weight' holds NaN or inf" in err
    assert not (tmp_path / "out" / "layers").exists()


def test_a_failing_solver_leaves_its_layer_dense_and_says_so(folder, monkeypatch, capsys):
    monkeypatch.setattr(registry, "_plugin_specs", misbehaving_specs)
    argv = prune_llm_args(*folder, folder[0].parent / "out", "--solver", "misbehaving")
    err = refused([*argv, "--solver-opt", "mode='none'"], capsys)
    assert "returned NoneType" in err and "decoder layer 0 is dense again" in err


def test_a_second_run_on_the_same_out_is_refused(folder, capsys):
    out = folder[0].parent / "out"
    out.mkdir()
    (out / ".qubo-prune.lock").write_text(str(os.getppid()))  # a live process owns it
    err = refused(prune_llm_args(*folder, out, "--method", "wanda"), capsys)
    assert f"in use by another run (pid {os.getppid()})" in err


KILL_AT_THE_10TH_WEIGHT = """
import os, signal, sys
from qubo_prune.pruners import walk
real, calls = walk.prune_matrix, [0]
def prune_matrix(*a, **k):
    calls[0] += 1
    if calls[0] == 10:  # decoder layer 1, its third linear
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **k)
walk.prune_matrix = prune_matrix
from qubo_prune.apps.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_mid_layer_then_resume_gives_bit_identical_weights(folder, tmp_path):
    icbs = ["--method", "icbs", "--solver", "exact", "--block-size", "8", "--iterations", "2"]
    assert main(prune_llm_args(*folder, tmp_path / "whole", *icbs)) == 0
    argv = prune_llm_args(*folder, tmp_path / "killed", *icbs)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", KILL_AT_THE_10TH_WEIGHT, *argv], env=env)
    assert killed.returncode == -signal.SIGKILL
    progress = json.loads((tmp_path / "killed" / "progress.json").read_text())
    assert {r["layer"] for r in progress["reports"]} == {0}  # layer 0 finished, layer 1 not
    assert main(argv) == 0
    from safetensors.torch import load_file

    whole = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "killed" / "model" / "model.safetensors"))
    assert whole.keys() == resumed.keys()
    for name, tensor in whole.items():
        assert torch.equal(tensor, resumed[name]), name
