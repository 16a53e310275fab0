"""The student's inputs, and s(x) over a whole split.

A student is fed what it was trained on: the teacher's input pipeline (normalisation
statistics or tokenizer, pipeline.py) with the deterministic eval transform, in
dataset order, so row i of s(x) lines up with row i of the cached teacher_features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from subdistill.config import Config
from subdistill.pipeline import to_device


@dataclass
class EvalData:
    splits: dict[str, Dataset]  # "train", "test": eval transform, dataset order
    collate: Callable  # items -> (inputs, labels (B,))
    stats: Optional[dict]  # image normalisation {"mean", "std", "input_size", ...}; None for text
    tokenizer: Any  # text: the teacher's tokenizer; None for images


def eval_data(config: Config, splits: tuple[str, ...] = ("train", "test")) -> EvalData:
    """Both splits as the run's student saw them, minus augmentation."""
    from subdistill.data import build_dataset
    from subdistill.pipeline import input_pipeline
    from subdistill.training.baselines import input_teacher

    stats, collate = input_pipeline(config, input_teacher(config))
    datasets = {split: build_dataset(config.data, split, train_transform=False, stats=stats) for split in splits}
    return EvalData(datasets, collate or default_collate, stats, getattr(collate, "tokenizer", None))


@torch.inference_mode()
def embed(model: nn.Module, dataset: Dataset, collate: Callable, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """s(x) (N, K) float32 and labels (N,) on the CPU, in dataset order."""
    device = next(model.parameters()).device
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=0)
    outputs, labels = [], []
    for inputs, batch_labels in loader:
        outputs.append(model(to_device(inputs, device)).float().cpu())  # (B, K)
        labels.append(torch.as_tensor(batch_labels, dtype=torch.long))
    return torch.cat(outputs), torch.cat(labels)  # (N, K), (N,)


def example_inputs(dataset: Dataset, collate: Callable, size: int) -> Any:
    """A batch of ``size`` real examples (the first ones, repeated when the split is smaller)."""
    items = [dataset[i % len(dataset)] for i in range(size)]
    inputs, _ = collate(items)
    return inputs
