"""Small models, data and blocks shared by the tests (imported, never collected)."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import torch

from qubo_prune.core.block import Block
from qubo_prune.core.scores import kept_count
from qubo_prune.objectives.reconstruction import GramAccumulator

NAMES = ["0.weight", "2.weight"]  # the prunable weights of tiny_mlp


def random_block(n: int, seed: int, k: int | None = None, scale: float = 1.0) -> Block:
    """A random symmetric block with a random feasible current mask."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n)) * scale
    k = n // 2 if k is None else k
    current = np.zeros(n, dtype=np.int8)
    current[rng.choice(n, size=k, replace=False)] = 1
    return Block(Q=(A + A.T) / 2, constant=float(rng.normal()), current=current)


def tiny_mlp(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def tiny_data(seed: int = 0, n: int = 256):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 12, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    return X, y


def check_density(model, state, density: float) -> None:
    """Every pruned tensor keeps exactly its count; pruned weights 0, kept ones original."""
    params = dict(model.named_parameters())
    for n in NAMES:
        kept = kept_count(params[n].numel(), density)
        assert int((~state.pruned[n]).sum()) == kept
        assert int((params[n] != 0).sum()) <= kept
        # pruned weights are zero, kept weights hold their original values
        w, w0, m = params[n], state.dense[n], state.pruned[n]
        assert torch.all(w[m] == 0) and torch.equal(w[~m], w0[~m])


def fail_on_solve(monkeypatch, pruner, call: int, error: BaseException) -> None:
    """Make the pruner's backend raise ``error`` on its ``call``-th solve (1-based)."""
    original = pruner.backend.solve
    calls = {"n": 0}

    def solve(block):
        calls["n"] += 1
        if calls["n"] == call:
            raise error
        return original(block)

    monkeypatch.setattr(pruner.backend, "solve", solve)


def install_plugin(tmp_path, monkeypatch) -> None:
    """A real distribution on sys.path whose entry point registers the tests' bad backend."""
    dist = tmp_path / "bad_backend_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bad-backend-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[qubo_prune.backends]\nbad-random = tests.backends.bad_backend_plugin:SPEC\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert str(tmp_path) in sys.path


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(cfg).eval()


def tokens(n: int, length: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 128, (n, length), generator=torch.Generator().manual_seed(seed))


def layer_problem(rows: int = 6, cols: int = 16, seed: int = 0):
    """A random ``(rows, cols)`` weight, calibration inputs ``U`` and their Gram accumulator."""
    g = torch.Generator().manual_seed(seed)
    W0 = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    U = torch.randn(cols, 40, generator=g, dtype=torch.float64)
    acc = GramAccumulator(cols)
    acc.add(U.T)
    return W0, U, acc


def tiny_llama_folder(path, seed: int = 0):
    """A saved two-layer random Llama with a letter tokenizer, and a text file to read:
    ``(folder, text)``; the model's context is 64 tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(97 + i): i for i in range(26)} | {"[UNK]": 26}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    tiny_llama(seed).save_pretrained(path / "m")
    fast.save_pretrained(path / "m")
    text = path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 40, encoding="utf-8")
    return path / "m", text


def prune_llm_args(folder, text, out, *extra: str) -> list[str]:
    """``qubo-prune prune-llm`` on a tiny folder: two windows of 32 tokens each way."""
    return [
        "prune-llm", "--model", str(folder), "--out", str(out), "--calib-text", str(text),
        "--eval-text", str(text), "--calib-windows", "2", "--eval-windows", "2", "--seqlen",
        "32", "--no-progress", *extra,
    ]  # fmt: skip


def raise_no_region():
    """A backend factory that fails as boto3 does without a region."""
    import botocore.exceptions

    raise botocore.exceptions.NoRegionError()


def exact_refit(W0: torch.Tensor, mask: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Per-row least squares ``w_S = G_SS^+ (G w0)_S`` in float64 (the reference refit)."""
    W0, G = W0.double(), G.double()
    out = torch.zeros_like(W0)
    for r in range(W0.shape[0]):
        S = torch.nonzero(~mask[r]).flatten()
        b = (G @ W0[r])[S]
        out[r, S] = torch.linalg.pinv(G[S][:, S], hermitian=True) @ b
    return out


def tiny_deit(seed: int = 0, hidden: int = 16, family: str = "deit"):
    """A random DeiT (or ViT) image classifier: 14x14 grey images, patch 7, two encoder layers."""
    import transformers

    name = {"deit": "DeiT", "vit": "ViT"}[family]
    torch.manual_seed(seed)
    cfg = getattr(transformers, f"{name}Config")(
        image_size=14,
        patch_size=7,
        num_channels=1,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        num_labels=3,
        encoder_stride=7,
    )
    return getattr(transformers, f"{name}ForImageClassification")(cfg).eval()


def tiny_cnn(seed: int = 0) -> torch.nn.Sequential:
    """A CNN for 1x14x14 images: stem conv, two body convs, a body linear, the head."""
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding="same"),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 7 * 7, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    ).eval()


def tiny_images(n: int = 24, seed: int = 0):
    """Random 1x14x14 images with three labels."""
    from qubo_prune.vision.images import Images

    g = torch.Generator().manual_seed(seed)
    return Images(torch.randn(n, 1, 14, 14, generator=g), torch.arange(n) % 3)


def write_dataset(root, classes=("boot", "shirt"), per_class=3, size=20):
    """A dataset folder (train/ and val/, ImageFolder layout) of grey PNGs: class ``i``'s
    images are uniformly ``40 * (i + 1)``."""
    from PIL import Image

    for split in ("train", "val"):
        for i, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for j in range(per_class):
                pixels = np.full((size, size), 40 * (i + 1), dtype=np.uint8)
                Image.fromarray(pixels, "L").save(folder / f"{j}.png")
    return root
