"""Objective 1 (the model's loss) on a causal LM through ICBSPruner."""

import pytest
import torch

from tests.helpers import tiny_llama, tokens

transformers = pytest.importorskip("transformers")


def test_model_loss_objective_runs_on_a_causal_lm():
    """Objective 1 (Fisher over per-sequence gradients) also prunes a transformers model."""
    import warnings

    from torch.nn import functional as F

    from qubo_prune.pruners.icbs import ICBSPruner

    lm = tiny_llama()

    class Logits(torch.nn.Module):
        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, ids):
            return self.lm(input_ids=ids).logits[:, :-1].reshape(-1, self.lm.config.vocab_size)

    def next_token_loss(logits, ids):
        return F.cross_entropy(logits, ids[:, 1:].reshape(-1))

    X = tokens(32, length=16)
    names = ["lm.model.layers.0.mlp.up_proj.weight", "lm.model.layers.1.self_attn.q_proj.weight"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.func batching-rule notices
        result = ICBSPruner(
            0.5,
            "exact",
            block_size=12,
            epochs=2,
            steps_per_epoch=2,
            samples_per_step=8,
            progress=False,
        ).prune(Logits(lm), next_token_loss, X, X, names)
    for name in names:
        assert result.state.density(name) == 0.5
    assert all(r.energy_after <= r.energy_before for r in result.history)
