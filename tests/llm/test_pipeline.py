"""The layer walk end to end: every method and family, save/load, resume, bad input."""

from dataclasses import replace

import pytest
import torch

from qubo_prune.backends.registry import Backend
from qubo_prune.core.patterns import check_mask, parse_pattern
from qubo_prune.llm.checkpoint import attach_masks, load_pruned, save_pruned
from qubo_prune.llm.pipeline import prune_causal_lm
from qubo_prune.pruners.methods import LayerwiseConfig
from tests.helpers import tiny_llama, tokens

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("start", ["sparsegpt", "admm", "alps"])
@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_icbs_refines_its_start_mask(pattern, start):
    base = LayerwiseConfig(method=start, pattern=pattern, refit=True)
    first = prune_causal_lm(tiny_llama(), tokens(3), base, progress=False)
    config = LayerwiseConfig(
        method="icbs", pattern=pattern, start=start, solver="exact", block_size=8, refit=True
    )
    model = tiny_llama()
    icbs = prune_causal_lm(model, tokens(3), config, progress=False)
    for g, i in zip(first[:7], icbs[:7], strict=True):  # same inputs in the first decoder layer
        assert i.error <= g.error + 1e-12
    if start == "sparsegpt":  # ADMM and ALPS may leave no swap the blocks can see
        assert sum(i.error for i in icbs[:7]) < sum(g.error for g in first[:7])
    for mask in model.pruning_masks.values():
        check_mask(mask, parse_pattern("layer" if pattern == "unstructured" else pattern))
    with pytest.raises(ValueError, match="unknown start mask"):
        LayerwiseConfig(method="icbs", start="magnitude").parsed_pattern()


@pytest.mark.parametrize(
    "method,pattern",
    [
        ("magnitude", "unstructured"),
        ("wanda", "unstructured"),
        ("sparsegpt", "unstructured"),
        ("icbs", "unstructured"),
        ("wanda", "2:4"),
        ("sparsegpt", "2:4"),
        ("icbs", "2:4"),
    ],
)
def test_prune_tiny_llama_end_to_end(method, pattern):
    model = tiny_llama()
    config = LayerwiseConfig(
        method=method, pattern=pattern, solver="exact", block_size=8, iterations=1
    )
    reports = prune_causal_lm(model, tokens(3), config, progress=False)
    assert len(reports) == 2 * 7
    p = parse_pattern(pattern)
    for name, mask in model.pruning_masks.items():
        weight = dict(model.named_parameters())[name]
        assert bool((weight[mask] == 0).all())
        # SparseGPT's unstructured masks are exact per layer, not per row
        check_mask(mask, p if method != "sparsegpt" or p.kind == "nm" else parse_pattern("layer"))
        assert mask.double().mean().item() == pytest.approx(0.5, abs=0.02)
    assert all(0 <= r.error < 1 and r.dense_error is not None for r in reports)
    assert torch.isfinite(model(tokens(1)).logits).all()


def tiny_model(family: str):
    """A randomly initialised two-layer model of each supported decoder family."""
    import transformers as tf

    torch.manual_seed(0)
    small = dict(vocab_size=128, num_hidden_layers=2, num_attention_heads=4)
    cfg = {
        "gpt2": lambda: tf.GPT2Config(
            vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=64
        ),
        "opt": lambda: tf.OPTConfig(
            **small, hidden_size=32, ffn_dim=64, max_position_embeddings=64, word_embed_proj_dim=32
        ),
        "mistral": lambda: tf.MistralConfig(
            **small, hidden_size=32, intermediate_size=64, num_key_value_heads=2
        ),
        "qwen2": lambda: tf.Qwen2Config(
            **small, hidden_size=32, intermediate_size=64, num_key_value_heads=2
        ),
    }[family]()
    return tf.AutoModelForCausalLM.from_config(cfg).eval()


@pytest.mark.parametrize("family,linears", [("gpt2", 4), ("opt", 6), ("mistral", 7), ("qwen2", 7)])
def test_other_decoder_families_prune_save_and_load(family, linears, tmp_path):
    model = tiny_model(family)
    dense_logits = model(tokens(1)).logits
    config = LayerwiseConfig(method="icbs", solver="exact", block_size=8, iterations=1, refit=True)
    reports = prune_causal_lm(model, tokens(3), config, progress=False)
    assert len(reports) == 2 * linears
    assert all(0 <= r.error <= r.mask_error + 1e-12 for r in reports)
    params = dict(model.named_parameters())
    for name, mask in model.pruning_masks.items():
        assert params[name].shape == mask.shape  # GPT-2's Conv1D masks in its own layout
        assert bool((params[name][mask] == 0).all())
        assert mask.double().mean().item() == pytest.approx(0.5, abs=1e-9)
    logits = model(tokens(1)).logits
    assert torch.isfinite(logits).all() and not torch.equal(logits, dense_logits)
    save_pruned(model, None, tmp_path)
    loaded, _, masks = load_pruned(tmp_path)
    assert set(masks) == set(model.pruning_masks)
    torch.testing.assert_close(loaded(tokens(1)).logits, logits)


@pytest.mark.parametrize("refit", [False, True])
def test_icbs_never_worse_than_wanda_and_refit_never_worse_than_mask(refit):
    wanda_config = LayerwiseConfig(method="wanda", refit=refit)
    wanda = prune_causal_lm(tiny_llama(), tokens(3), wanda_config, progress=False)
    config = LayerwiseConfig(method="icbs", solver="exact", block_size=8, iterations=2, refit=refit)
    icbs = prune_causal_lm(tiny_llama(), tokens(3), config, progress=False)
    # the first decoder layer sees the same inputs in both runs; iCBS starts from Wanda's mask
    for w, i in zip(wanda[:7], icbs[:7]):
        assert i.error <= w.error + 1e-12
        assert i.error <= i.mask_error + 1e-12
    if refit:  # the search aimed at the refit error: the weight update did real work
        assert sum(i.error for i in icbs[:7]) < 0.9 * sum(i.mask_error for i in icbs[:7])


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_tensor_and_per_block_paths_prune_the_same_masks(pattern, monkeypatch):
    """gpu-anneal takes each batch as tensors; forced through BQMs block by block (the path
    every other backend takes) the same seed gives the same masks and weights."""
    config = LayerwiseConfig(
        method="icbs",
        pattern=pattern,
        solver="gpu-anneal",
        solver_options={"seed": 0, "num_reads": 2, "num_sweeps": 10},
        block_size=8,
        iterations=2,
        rows_per_batch=24,
        refit=True,
    )
    models = []
    for tensors in (True, False):
        monkeypatch.setattr(Backend, "takes_tensors", property(lambda self, t=tensors: t))
        models.append(tiny_llama())
        reports = prune_causal_lm(models[-1], tokens(3), config, progress=False)
        assert sum(r.icbs["accepted"] for r in reports) > 0
    by_tensor, by_block = models
    for name, mask in by_tensor.pruning_masks.items():
        assert torch.equal(mask, by_block.pruning_masks[name])
    for (name, p), q in zip(by_tensor.named_parameters(), by_block.parameters()):
        torch.testing.assert_close(p, q, msg=name)


def test_save_load_roundtrip_and_torch_prune(tmp_path):
    from transformers import AutoTokenizer  # noqa: F401  (tokenizer optional here)

    model = tiny_llama()
    prune_causal_lm(model, tokens(2), LayerwiseConfig(method="wanda"), progress=False)
    save_pruned(model, None, tmp_path)
    loaded, _, masks = load_pruned(tmp_path)
    assert set(masks) == set(model.pruning_masks)
    ids = tokens(1)
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    attach_masks(loaded, masks)
    q = loaded.model.layers[0].self_attn.q_proj
    assert hasattr(q, "weight_mask")
    assert torch.equal(q.weight_mask.bool(), ~masks["model.layers.0.self_attn.q_proj.weight"])


def test_resume_after_interruption(tmp_path):
    config = LayerwiseConfig(method="icbs", solver="exact", block_size=8, iterations=1)
    full = tiny_llama()
    prune_causal_lm(full, tokens(2), config, progress=False)

    def stop(i):
        if i == 0:
            raise KeyboardInterrupt

    interrupted = tiny_llama()
    with pytest.raises(KeyboardInterrupt):
        prune_causal_lm(
            interrupted, tokens(2), config, tmp_path, progress=False, on_layer_done=stop
        )
    resumed = tiny_llama()
    seen = []
    reports = prune_causal_lm(
        resumed, tokens(2), config, tmp_path, progress=False, on_layer_done=seen.append
    )
    assert seen == [1]  # layer 0 came from the checkpoint
    assert len(reports) == 14
    for name, mask in full.pruning_masks.items():
        assert torch.equal(resumed.pruning_masks[name], mask)
    with pytest.raises(ValueError, match="other options"):
        prune_causal_lm(tiny_llama(), tokens(2), LayerwiseConfig(method="wanda"), tmp_path)


def test_fit_inputs_both_fits_every_layer_to_the_two_streams(monkeypatch):
    import qubo_prune.pruners.walk as walk

    fitted = {}
    original = walk.prune_matrix

    def spy(layer, config, solver):
        fitted.setdefault(layer.name, []).append(layer.acc)
        return original(layer, config, solver)

    monkeypatch.setattr(walk, "prune_matrix", spy)
    config = LayerwiseConfig(
        method="alps", pattern="2:4", refit=True, refit_damping="auto", held_out_windows=1
    )
    pruned = prune_causal_lm(tiny_llama(), tokens(3), config, progress=False)
    tokens_fitted = [acc.tokens for accs in fitted.values() for acc in accs]
    fitted.clear()
    model = tiny_llama()
    both = prune_causal_lm(model, tokens(3), replace(config, fit_inputs="both"), progress=False)
    assert [acc.tokens for accs in fitted.values() for acc in accs] == [
        2 * t for t in tokens_fitted
    ]
    first = {name: accs[0] for name, accs in fitted.items()}  # block 0: both streams equal
    assert first["self_attn.q_proj"] is first["self_attn.v_proj"]  # shared, pooled once
    assert first["self_attn.q_proj"].held.tokens == 2 * 1 * tokens(3).shape[1]
    for p, b in zip(pruned[:7], both[:7], strict=True):
        assert b.error == pytest.approx(p.error, rel=1e-4)  # twice the same inputs, same fit
    for mask in model.pruning_masks.values():
        check_mask(mask, parse_pattern("2:4"))
    assert all(r.dense_error is not None for r in both)
    with pytest.raises(ValueError, match="unknown fit inputs 'dense'"):
        LayerwiseConfig(fit_inputs="dense")


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="unknown method"):
        LayerwiseConfig(method="obs").parsed_pattern()
    with pytest.raises(FileNotFoundError, match="config.json"):
        from qubo_prune.llm.model import load_causal_lm

        load_causal_lm("/nonexistent/model")
