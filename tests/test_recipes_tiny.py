"""Every registered recipe, in its tiny form: teacher, data and projection fit together."""

import os

import pytest
import torch

from subdistill import data
from subdistill.projection import JLProjection
from subdistill.recipes import available_recipes, resolve
from subdistill.teachers import build_tokenizer, image_stats, load_teacher

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("name", available_recipes())
def test_tiny_recipe_yields_targets(name):
    config = resolve([f"recipe={name}", "tiny=true"])
    teacher = load_teacher(config.teacher)
    assert max(config.probe.ks) <= teacher.feature_dim
    assert config.teacher.num_classes in (0, data.num_classes(config.data))
    projection = JLProjection(config.projection.k, teacher.feature_dim, config.projection.seed)

    dataset = data.build_dataset(config.data, "test", train_transform=False, stats=None)
    if data.modality(config.data) == "image":
        stats = image_stats(config.teacher, teacher) if config.teacher.pretrained else data.native_stats(config.data)
        dataset = data.build_dataset(config.data, "test", train_transform=False, stats=stats)
        collate = None
    else:
        collate = data.text_collate(build_tokenizer(config.teacher), config.data.max_length)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collate)
    inputs, labels = next(iter(loader))

    targets = projection(teacher(inputs))  # (B, K)
    assert targets.shape == (3, config.projection.k)
    assert torch.isfinite(targets).all()
    assert labels.shape == (3,)
