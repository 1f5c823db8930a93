"""Evaluation: logits of a model on a tokenised split, and accuracy / NLL from logits."""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from tunescope.io import quiet


@torch.no_grad()
def predict_logits(model: torch.nn.Module, dataset: Dataset, collator, batch_size: int = 128,
                   desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N, C] float64, labels [N] int64) of `model` on a tokenised split, in dataset order.

    Batches are formed from length-sorted examples (dynamic padding then pads each batch only to its own longest
    example: about half the token work on movie reviews at max_length 64) and the rows are put back in dataset
    order; padding is masked, so the logits do not depend on the batching beyond float rounding.
    """
    from tunescope.diagnostics.features import length_sorted

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ordered, restore = length_sorted(dataset)
    loader = DataLoader(ordered, batch_size=batch_size, shuffle=False, collate_fn=collator)
    all_logits, all_labels = [], []
    try:
        for batch in tqdm(loader, desc=desc or "predicting", leave=False, disable=desc is None or quiet()):
            labels = batch.pop("labels")
            batch = {k: v.to(device) for k, v in batch.items()}
            all_logits.append(model(**batch).logits.float().cpu())
            all_labels.append(labels)
    finally:
        model.train(was_training)
    logits, labels = torch.cat(all_logits).double().numpy(), torch.cat(all_labels).numpy()
    if restore is None:
        return logits, labels
    return logits[restore], labels[restore]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """accuracy = mean(argmax_c logits == y); nll = mean(-log softmax(logits)_y) (nats)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64))
    labels = np.asarray(labels)
    return {"accuracy": float((logp.argmax(1) == labels).mean()),
            "nll": float(-logp[np.arange(len(labels)), labels].mean())}
