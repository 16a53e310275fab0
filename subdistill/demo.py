"""``subdistill demo``: the main job on the embedded default recipe (fmnist_k32).

For now it walks the first arrow of the flow on real Fashion-MNIST images: build
the recipe's teacher and projection and show the targets for one batch.
"""

from __future__ import annotations

import torch

from subdistill import data
from subdistill.projection import JLProjection
from subdistill.recipes import resolve
from subdistill.teachers import load_teacher

DEFAULT_RECIPE = "fmnist_k32"


def main(argv: list[str]) -> None:
    if not any(arg.startswith("recipe=") for arg in argv):
        argv = [f"recipe={DEFAULT_RECIPE}", *argv]
    config = resolve(argv)

    teacher = load_teacher(config.teacher)
    projection = JLProjection(config.projection.k, teacher.feature_dim, config.projection.seed)
    print(f"teacher   {config.teacher.source}:{config.teacher.name}  D={teacher.feature_dim}")
    print(f"projection K={projection.k} seed={projection.seed} sha256={projection.sha256[:16]}...")

    # One batch of real test images, through the same eval transform the cache will use.
    dataset = data.build_dataset(config.data, "test", train_transform=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    images, labels = next(iter(loader))
    teacher_features = teacher(images)  # (B, D)
    targets = projection(teacher_features)  # (B, K)
    print(f"images {tuple(images.shape)} -> teacher_features {tuple(teacher_features.shape)} -> targets {tuple(targets.shape)}")
    print(f"labels {labels.tolist()}")
