"""Batching text items for a Hugging Face tokenizer."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

TextItem = tuple[tuple[str, Optional[str]], int]


class TextCollate:
    """A collate_fn: text items -> (tokenizer tensors, labels LongTensor (B,)).

    Pairs are cut with truncation="longest_first" (the longer text loses tokens
    first, as for BERT on MNLI) to ``max_length`` tokens in all, and the batch is
    padded to its longest example. The dict holds input_ids, attention_mask and,
    for tokenizers that make them, token_type_ids. A class rather than a closure,
    so that DataLoader workers can pickle it.
    """

    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, int(max_length)

    def __call__(self, items: Sequence[TextItem]) -> tuple[dict, torch.Tensor]:
        texts_a = [text_a for (text_a, _), _ in items]
        texts_b = [text_b for (_, text_b), _ in items]
        singles = sum(text_b is None for text_b in texts_b)
        if 0 < singles < len(texts_b):
            raise ValueError("a batch mixes sentence pairs and single sentences")
        encoded = self.tokenizer(
            texts_a,
            None if singles else texts_b,
            truncation="longest_first",
            max_length=self.max_length,
            padding="longest",
            return_tensors="pt",
        )
        labels = torch.tensor([label for _, label in items], dtype=torch.long)
        return dict(encoded), labels


def text_collate(tokenizer, max_length: int) -> TextCollate:
    return TextCollate(tokenizer, max_length)
