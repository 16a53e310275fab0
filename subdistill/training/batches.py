"""Data order and batches: a seeded sampler per epoch, and items that carry their index.

The order of epoch e is a permutation drawn from (seed, e) alone, so the same seed
gives the same order on every process, in every run and after a resume, and a
different seed gives a different one. Accelerate shards these batches across
processes (process p takes batches p, p + P, ...), so a launch on P processes with
batch B sees the same global batches as one process with batch P * B.

Random augmentation is seeded per item from (seed, epoch, index) as well, so an
item looks the same whichever process, worker or batch size fetches it, and a
resumed run (where Accelerate's one-batch prefetch and fresh loader iterators
would otherwise shift the global RNG stream) sees the very same crops.

Each item is (inputs, label, index): cached targets are looked up by index.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from subdistill.config import DataConfig


def item_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 1_000_033 + index) % (2**63)


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields (index, item seed): the permutation of epoch e, and the seed of each item's randomness."""

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        self.size, self.seed, self.shuffle, self.epoch = int(size), int(seed), shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(index, item_seed(self.seed, self.epoch, index)) for index in self.order()])


class IndexedDataset(Dataset):
    """dataset[(i, item seed)] -> (dataset[i] drawn under that seed, i); the global RNG is left as it was."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        index, seed = key

        # The CPU generator alone: torch.manual_seed would also seed every accelerator (~50x slower per item).
        generator = torch.default_generator
        saved = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self.dataset[index], index
        finally:
            generator.set_state(saved)


class IndexedCollate:
    """[(item, index), ...] -> (inputs, labels (B,), indices (B,)); a class so workers can pickle it."""

    def __init__(self, collate: Optional[Callable] = None):
        self.collate = collate or default_collate

    def __call__(self, pairs: Sequence[tuple[Any, int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        inputs, labels = self.collate([item for item, _ in pairs])
        indices = torch.tensor([index for _, index in pairs], dtype=torch.long)
        return inputs, torch.as_tensor(labels), indices


def make_loader(
    dataset: Dataset,
    data_cfg: DataConfig,
    batch_size: int,
    collate: Optional[Callable],
    seed: int,
    train: bool,
) -> DataLoader:
    """Training: shuffled by (seed, epoch), full batches only. Evaluation: in order, every example."""
    workers = int(data_cfg.num_workers)
    return DataLoader(
        IndexedDataset(dataset),
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), seed, shuffle=train),
        collate_fn=IndexedCollate(collate),
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        drop_last=train,
    )
