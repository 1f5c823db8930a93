"""The features phi(x) a classifier's head reads, its head norm ||V||_F, and feature change.

LP-FT (Tomihari & Sato 2024) writes the classifier as f(x) = V phi(x) + b. We define "the head" as the
*final linear layer* of the task model, (V, b), and "the features" phi(x) as the input of that layer
(what it sees at evaluation time, dropout off):

| architecture                   | final linear layer (V, b)       | phi(x)                                               |
|--------------------------------|---------------------------------|------------------------------------------------------|
| BERT (pooler)                  | `classifier`                    | pooler output tanh(W_p h_[CLS] + b_p)                 |
| RoBERTa                        | `classifier.out_proj`           | tanh(dense(h_<s>)) (the head's dense + tanh output)  |
| DistilBERT                     | `classifier`                    | ReLU(pre_classifier(h_[CLS]))                         |
| GPT-2 / Llama / Qwen2 / Mistral| `score` (no bias: b = 0)        | hidden state of the last non-pad token after the final norm |

So the pooler / dense layers belong to the backbone: LP fits only (V, b), and the eNTK's pre-train-effective
part P comes from the gradient with respect to (V, b) alone. The features are captured with a forward
pre-hook on the final linear layer (removed in `finally`), so they are exactly what the model uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from tunescope.models.layers import model_layout, unwrap


def _active(module: nn.Module) -> nn.Module:
    """The module actually run inside a peft ModulesToSaveWrapper (or `module` itself)."""
    to_save = getattr(module, "modules_to_save", None)
    if isinstance(to_save, nn.ModuleDict) and len(to_save) > 0 and not getattr(module, "disable_adapters", False):
        adapters = getattr(module, "active_adapters", None) or list(to_save)
        name = adapters[0] if isinstance(adapters, (list, tuple)) else adapters
        if name in to_save:
            return to_save[name]
    return getattr(module, "original_module", None) or module


def head_linear(model: nn.Module) -> nn.Linear:
    """The final linear layer (V, b) of a sequence classifier (see the module docstring for each architecture)."""
    layout = model_layout(model)
    if layout.head is None:
        raise ValueError(f"{layout.model_type} model has no classification head")
    head = _active(layout.head)
    if isinstance(head, nn.Linear):
        return head
    out_proj = getattr(head, "out_proj", None)  # RoBERTa-style head: dense -> tanh -> out_proj
    if out_proj is not None:
        return _active(out_proj)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"no linear layer found in the head {layout.head_name!r}")
    return linears[-1]


def head_norm(model: nn.Module) -> float:
    """||V||_F: the Frobenius norm of the weight of the head's final linear layer (bias excluded)."""
    return float(head_linear(model).weight.detach().float().norm())


def last_non_pad_index(input_ids: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """Index of the last non-pad token per row [B], exactly as HF *ForSequenceClassification decoders pool.

    HF rule: argmax over t of t * 1[input_ids[t] != pad]; without a pad token id, the last position.
    """
    if pad_token_id is None:
        return torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.long, device=input_ids.device)
    non_pad = (input_ids != pad_token_id).to(torch.int32)
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device, dtype=torch.int32)
    return (positions * non_pad).argmax(-1)


@contextmanager
def capture_features(model: nn.Module) -> Iterator[dict]:
    """Context manager: after each forward, `box["phi"]` holds phi(x) [B, d] for that batch (graph kept).

    The caller must put the batch's `input_ids` in `box["input_ids"]` before the forward for decoders,
    which apply the head at every position and pool the last non-pad token afterwards.
    """
    layout = model_layout(model)
    linear = head_linear(model)
    pad_id = getattr(unwrap(model).config, "pad_token_id", None)
    box: dict = {}

    def pre_hook(_module, args):
        x = args[0]
        if x.dim() == 3:  # decoder: [B, T, H] -> hidden state at the token the model pools
            idx = last_non_pad_index(box["input_ids"], pad_id).to(x.device)
            x = x[torch.arange(x.shape[0], device=x.device), idx]
        box["phi"] = x

    handle = linear.register_forward_pre_hook(pre_hook)
    box["family"] = layout.family
    try:
        yield box
    finally:
        handle.remove()


def model_inputs(batch: dict) -> dict:
    """The keys of a collated batch the model's forward takes (labels dropped: no loss needed)."""
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def iter_batches(dataset, collator, batch_size: int) -> Iterator[dict]:
    """Collated batches (dicts of tensors) of a tokenized datasets.Dataset, in order."""
    cols = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in dataset.column_names]
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start:start + batch_size]
        n = len(rows[cols[0]])
        yield collator([{c: rows[c][i] for c in cols} for i in range(n)])


def length_order(dataset) -> np.ndarray | None:
    """Indices of a tokenized datasets.Dataset sorted by token count (stable), or None when it is not one (no
    `input_ids` column, or no `select` to reorder it by)."""
    if "input_ids" not in getattr(dataset, "column_names", ()) or not hasattr(dataset, "select"):
        return None
    lengths = np.fromiter((len(ids) for ids in dataset["input_ids"]), dtype=np.int64, count=len(dataset))
    return np.argsort(lengths, kind="stable")


def length_sorted(dataset):
    """(the dataset with its examples length-sorted, restore) where rows[restore] puts per-example outputs computed
    in sorted order back in the dataset's order; (dataset, None) when it cannot be sorted (length_order)."""
    order = length_order(dataset)
    if order is None:
        return dataset, None
    return dataset.select(order), np.argsort(order, kind="stable")  # sorted position of each original row


@torch.no_grad()
def extract_features(model: nn.Module, dataset, collator, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """phi(x) for every example of a tokenized dataset, without gradients, in eval mode.

    Batches are formed from length-sorted examples, so dynamic padding pads each batch only to its own longest
    example (on movie reviews at max_length 64 this does about half the token work of batches in data order);
    the rows are put back in the dataset's order. Padding is masked, so phi(x) does not depend on the batching
    beyond float rounding.
    Returns (features [N, d] float32 on CPU, labels [N] long). The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ordered, restore = length_sorted(dataset)
    feats, labels = [], []
    try:
        with capture_features(model) as box:
            for batch in iter_batches(ordered, collator, batch_size):
                inputs = {k: v.to(device) for k, v in model_inputs(batch).items()}
                box["input_ids"] = inputs["input_ids"]
                model(**inputs)
                feats.append(box["phi"].detach().float().cpu())
                labels.append(batch["labels"].cpu())
    finally:
        model.train(was_training)
    feats, labels = torch.cat(feats), torch.cat(labels).long()
    if restore is None:
        return feats, labels
    restore = torch.as_tensor(restore)
    return feats[restore], labels[restore]


def feature_change(before: torch.Tensor, after: torch.Tensor) -> dict:
    """How much fine-tuning moved the features of the same inputs.

    before, after: [N, d] features of the pre-trained and the fine-tuned model on the same N inputs.
    cosine = mean over x of cos(phi0(x), phi1(x)); l2 = mean over x of ||phi1(x) - phi0(x)||_2;
    also the mean feature norms before and after (to read l2 on the right scale).
    """
    if before.shape != after.shape:
        raise ValueError(f"feature shapes differ: {tuple(before.shape)} vs {tuple(after.shape)}")
    before, after = before.double(), after.double()
    cos = torch.nn.functional.cosine_similarity(before, after, dim=1, eps=1e-12)
    return {
        "cosine": float(cos.mean()),
        "l2": float((after - before).norm(dim=1).mean()),
        "norm_before": float(before.norm(dim=1).mean()),
        "norm_after": float(after.norm(dim=1).mean()),
        "n_samples": int(before.shape[0]),
    }
