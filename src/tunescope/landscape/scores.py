"""The score S(theta) the basin is measured in, and the loss the worst-case ascent maximises.

- classification: S = accuracy = mean over examples of 1[argmax_c logits_c = y];
  loss = mean cross-entropy.
- causal LM: S = next-token accuracy = mean over valid positions t (token t+1 is real text) of
  1[argmax logits_t = x_{t+1}]; loss = mean next-token cross-entropy over the same positions.
Batches are collated once and reused for every evaluation (the radius search calls S ~10 times per
direction, so re-collating would dominate on small models).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tunescope.errors import UserError

KINDS = ("classification", "causal-lm")
_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def collate_batches(dataset, collator, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Collate a tokenized dataset (rows of input_ids, attention_mask, [labels]) into fixed batches."""
    rows = [dataset[i] for i in range(len(dataset))]
    if not rows:
        raise UserError("the evaluation set is empty: expected at least one example (check --limit)")
    return [collator(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]


def _inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k in _INPUT_KEYS}


def _lm_targets(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets [B, T-1], valid mask [B, T-1]) for next-token prediction."""
    ids = batch["input_ids"]
    mask = batch.get("attention_mask", torch.ones_like(ids)).bool()
    valid = mask[:, 1:] & mask[:, :-1]
    if "labels" in batch and batch["labels"].shape == ids.shape:
        valid &= batch["labels"][:, 1:] != -100
    return ids[:, 1:], valid


@dataclass
class Scorer:
    """S(theta) and L(theta) of `kind` on fixed batches."""

    kind: str
    batches: list[dict[str, torch.Tensor]]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"bad value {self.kind!r} for the score kind: expected one of {', '.join(KINDS)}")

    @torch.no_grad()
    def score(self, model: nn.Module) -> float:
        """Accuracy (classification) or next-token accuracy (causal LM), pooled over all examples/tokens."""
        hits, total = 0, 0
        for batch in self.batches:
            logits = model(**_inputs(batch)).logits
            if self.kind == "classification":
                hits += int((logits.argmax(-1) == batch["labels"]).sum())
                total += int(batch["labels"].numel())
            else:
                targets, valid = _lm_targets(batch)
                pred = logits[:, :-1].argmax(-1)
                hits += int(((pred == targets) & valid).sum())
                total += int(valid.sum())
        return hits / max(total, 1)

    def loss(self, model: nn.Module, max_batches: int | None = None) -> torch.Tensor:
        """Mean cross-entropy over the first `max_batches` batches (differentiable)."""
        batches = self.batches[:max_batches] if max_batches else self.batches
        losses, weights = [], []
        for batch in batches:
            logits = model(**_inputs(batch)).logits
            if self.kind == "classification":
                losses.append(F.cross_entropy(logits.float(), batch["labels"]))
                weights.append(batch["labels"].numel())
            else:
                targets, valid = _lm_targets(batch)
                ce = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, reduction="none")
                n = int(valid.sum())
                losses.append((ce * valid).sum() / max(n, 1))
                weights.append(n)
        w = torch.tensor(weights, dtype=torch.float32)
        return (torch.stack(losses) * w).sum() / w.sum().clamp_min(1)


def score_kind(model: nn.Module) -> str:
    """'classification' for sequence classifiers, 'causal-lm' for language models (by the model's outputs)."""
    from tunescope.models.layers import unwrap

    task = unwrap(model)
    name = type(task).__name__
    if name.endswith("ForSequenceClassification"):
        return "classification"
    if name.endswith("ForCausalLM") or name.endswith("LMHeadModel"):
        return "causal-lm"
    raise UserError(f"bad model class {name} for the landscape score: expected a sequence classifier or a causal LM")
