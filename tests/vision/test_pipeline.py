"""Vision models end to end: a tiny DeiT and a tiny CNN pruned by every method, on the layer
objective and on the model's loss; save/load and resume."""

import pytest
import torch

from qubo_prune.core.patterns import check_mask
from qubo_prune.pruners.methods import LAYER_METHODS, LayerwiseConfig
from qubo_prune.vision.accuracy import top1
from qubo_prune.vision.checkpoint import load_pruned_classifier, save_pruned_classifier
from qubo_prune.vision.model_loss import dense_layer_errors, prune_vision_loss
from qubo_prune.vision.pipeline import prune_vision_model, vision_walk
from tests.helpers import tiny_cnn, tiny_deit, tiny_images

pytest.importorskip("transformers")

LINEARS = ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj")
LINEARS += ("mlp.fc1", "mlp.fc2")
DEIT_WEIGHTS = [f"deit.layers.{i}.{name}.weight" for i in range(2) for name in LINEARS]
CNN_WEIGHTS = ["2.weight", "4.weight", "7.weight"]  # stem (0) and head (9) stay dense


def model_and_weights(family):
    """A tiny model of the family and the weights the walk must prune (all others stay)."""
    if family == "cnn":
        return tiny_cnn(), CNN_WEIGHTS
    return tiny_deit(family=family), [n.replace("deit.", f"{family}.") for n in DEIT_WEIGHTS]


def check_pruned(model, dense, config, expected):
    """Exactly the expected weights carry masks that keep the pattern; nothing else moved."""
    params = dict(model.named_parameters())
    assert sorted(model.pruning_masks) == sorted(expected)
    for name, mask in model.pruning_masks.items():
        assert mask.shape == params[name].shape
        assert bool((params[name][mask] == 0).all())
        if mask.ndim == 4:  # a conv's filters as rows, channels innermost
            mask = mask.permute(0, 2, 3, 1)
        check_mask(mask.reshape(mask.shape[0], -1), config.guaranteed_pattern())
    for name, value in dense.items():
        if name not in expected:
            assert torch.equal(params[name], value), name  # embeddings, stem, head: dense


@pytest.mark.parametrize("method", sorted(LAYER_METHODS))
@pytest.mark.parametrize("family", ["deit", "vit", "cnn"])
def test_every_method_prunes_a_tiny_deit_vit_and_cnn(family, method):
    model, expected = model_and_weights(family)
    dense = {k: v.detach().clone() for k, v in model.named_parameters()}
    config = LayerwiseConfig(method=method, solver="exact", block_size=8, iterations=1)
    reports = prune_vision_model(model, tiny_images(), config, progress=False, batch_size=8)
    walk = vision_walk(model)
    assert [walk.weight_name(r.layer, r.name) for r in reports] == expected
    check_pruned(model, dense, config, expected)
    assert all(0 <= r.error < 1.5 and r.dense_error is not None for r in reports)
    assert 0 <= top1(model, tiny_images(seed=1)) <= 100


@pytest.mark.parametrize("family", ["deit", "cnn"])
def test_two_four_on_a_deit_and_on_conv_channels(family):
    model, expected = model_and_weights(family)
    dense = {k: v.detach().clone() for k, v in model.named_parameters()}
    config = LayerwiseConfig(method="icbs", pattern="2:4", solver="exact", block_size=8)
    prune_vision_model(model, tiny_images(), config, progress=False, batch_size=8)
    check_pruned(model, dense, config, expected)
    if family == "cnn":  # groups of 4 input channels at one kernel position: 2 pruned each
        groups = model.pruning_masks["2.weight"].permute(0, 2, 3, 1).reshape(-1, 4)
        assert bool((groups.sum(dim=1) == 2).all())


@pytest.mark.parametrize("family", ["deit", "cnn"])
def test_icbs_on_the_classification_loss(family):
    model, expected = model_and_weights(family)
    images = tiny_images(64)
    errors = dense_layer_errors(model, images, batch_size=16)
    result = prune_vision_loss(
        model,
        images,
        0.4,
        "exact",
        block_size=12,
        epochs=2,
        samples_per_step=32,
        check_samples=32,
        progress=False,
    )
    assert len(result.history) == 6
    params = dict(model.named_parameters())
    assert sorted(model.pruning_masks) == sorted(expected)
    for name, mask in model.pruning_masks.items():
        assert int((~mask).sum()) == round(0.4 * mask.numel())
        assert bool((params[name][mask] == 0).all())
    reports = errors()
    assert len(reports) == len(expected)
    assert all(r.sparsity == pytest.approx(0.6, abs=0.02) and r.error > 0 for r in reports)


def test_save_load_roundtrip_keeps_the_masks(tmp_path):
    model = tiny_deit()
    prune_vision_model(model, tiny_images(), LayerwiseConfig(method="wanda"), progress=False)
    save_pruned_classifier(model, tmp_path)
    loaded, masks = load_pruned_classifier(tmp_path)
    assert sorted(masks) == sorted(model.pruning_masks)
    for name, mask in masks.items():
        assert torch.equal(mask, model.pruning_masks[name])
    pixels = tiny_images(4).pixels
    torch.testing.assert_close(loaded(pixels).logits, model(pixels).logits)
    with torch.no_grad():  # a weight under its mask that is not zero: refused
        dict(loaded.named_parameters())[DEIT_WEIGHTS[0]][masks[DEIT_WEIGHTS[0]]] = 1.0
    loaded.save_pretrained(tmp_path / "model")
    with pytest.raises(ValueError, match="not zero"):
        load_pruned_classifier(tmp_path)


def test_resume_after_an_interrupted_encoder_layer(tmp_path):
    config = LayerwiseConfig(method="icbs", solver="exact", block_size=8, iterations=1)
    full = tiny_deit()
    prune_vision_model(full, tiny_images(), config, progress=False)

    def stop(i):
        if i == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prune_vision_model(
            tiny_deit(), tiny_images(), config, tmp_path, progress=False, on_block_done=stop
        )
    resumed, seen = tiny_deit(), []
    prune_vision_model(
        resumed, tiny_images(), config, tmp_path, progress=False, on_block_done=seen.append
    )
    assert seen == [1]
    for name, mask in full.pruning_masks.items():
        assert torch.equal(resumed.pruning_masks[name], mask)


def test_unsupported_models_are_refused():
    with pytest.raises(ValueError, match="neither a ViT"):
        vision_walk(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="no prunable layer besides"):
        vision_walk(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)))
