"""Tokenisation and collation for classification; probe batches for diagnostics (any task, through its collator)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding

from tunescope.data.classification import SPLITS, ClassificationData


def tokenize_classification(data: ClassificationData, tokenizer, max_length: int) -> dict[str, Dataset]:
    """Each split as a Dataset of input_ids, attention_mask, labels (unpadded; the collator pads per batch)."""

    def encode(batch):
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
        enc["labels"] = batch["label"]
        return enc

    out = {}
    for split in SPLITS:
        ds = data.split(split)
        out[split] = ds.map(encode, batched=True, remove_columns=ds.column_names,
                            desc=f"tokenising {split}", load_from_cache_file=False)
    return out


def collator(tokenizer) -> DataCollatorWithPadding:
    """Pads each batch to its longest sequence (multiple of 8 is not worth it on CPU)."""
    return DataCollatorWithPadding(tokenizer, return_tensors="pt")


def probe_batches(dataset: Dataset, tokenizer, *, batch_size: int = 16, num_batches: int = 2,
                  seed: int = 0, collate: Callable[[list[dict]], dict] | None = None) -> list[dict[str, torch.Tensor]]:
    """`num_batches` padded batches drawn (seeded) from a tokenised split, for diagnostics.

    The rows are the first batch_size * num_batches of a seeded permutation of the split. `collate` pads them (default
    `collator(tokenizer)`, classification); pass the task's own collator for other tasks, e.g. trl's for SFT rows,
    which keeps their `labels` (-100 outside the completion) so the diagnostics see the SFT loss.
    """
    n = min(len(dataset), batch_size * num_batches)
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    collate = collate or collator(tokenizer)
    rows = [dataset[i] for i in idx]
    return [collate(rows[i:i + batch_size]) for i in range(0, n, batch_size)]
