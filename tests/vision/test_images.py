"""Images from a local dataset folder in the ImageFolder layout, as the model takes them."""

import pytest
import torch

from qubo_prune.vision.images import Images, dataset_splits, image_folder
from tests.helpers import tiny_deit, write_dataset

pytest.importorskip("transformers")


def test_image_folder_resizes_scales_and_labels_by_sorted_class(tmp_path):
    config = tiny_deit().config
    train, val = dataset_splits(write_dataset(tmp_path))
    images = image_folder(train, config)
    assert images.pixels.shape == (6, 1, 14, 14)
    assert images.labels.tolist() == [0, 0, 0, 1, 1, 1]
    # resized to the model's 14x14, pixels scaled to [-1, 1]: 40 -> 40 / 127.5 - 1
    assert torch.allclose(images.pixels[0], torch.full((1, 14, 14), 40 / 127.5 - 1), atol=1e-5)
    assert len(image_folder(val, config)) == 6


def test_class_folders_follow_the_models_label_names(tmp_path):
    config = tiny_deit().config
    config.label2id = {"shirt": 0, "boot": 2, "bag": 1}
    train, _ = dataset_splits(write_dataset(tmp_path))
    assert image_folder(train, config).labels.tolist() == [2, 2, 2, 0, 0, 0]


def test_bad_dataset_folders_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dataset_splits(tmp_path / "missing")
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="val/"):
        dataset_splits(tmp_path)
    (tmp_path / "val" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no class folder with images"):
        dataset_splits(tmp_path)
    with pytest.raises(ValueError, match="equally many"):
        Images(torch.zeros(2, 1, 4, 4), torch.zeros(3))


def test_sample_and_head():
    images = Images(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10))
    picked = images.sample(4, seed=1)
    assert len(picked) == 4 and len(set(picked.labels.tolist())) == 4
    assert torch.equal(picked.pixels.flatten(), picked.labels.float())
    assert images.head(3).labels.tolist() == [0, 1, 2] and len(images.head(0)) == 10
