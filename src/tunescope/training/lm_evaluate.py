"""Evaluating a causal LM on tokenised SFT rows (labels -100 outside the loss) without materialising its logits.

Over the loss tokens t of a split (labels != -100), p(y_t | y_<t) the model's next-token probability:
    loss                 = mean over t of -log p(y_t | y_<t)      (nats, token-weighted over the whole split)
    perplexity           = exp(loss)
    mean_token_accuracy  = share of loss tokens whose argmax prediction equals the label
Per example: the summed log-probability of its loss tokens (log-likelihood scoring of answers compares these).

trl's fused LM head (`add_fused_lm_head`) computes log p and the argmax check in chunks, so a 49k-token vocabulary
never becomes a [batch, length, vocab] tensor; the patch is taken off the model again afterwards. Greedy
continuations (`greedy_continuations`) go through the model's own `generate`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader

from tunescope.models.layers import unwrap


@contextmanager
def fused_lm_head(model: nn.Module) -> Iterator[nn.Module]:
    """The task model inside `model` (peft wrappers removed; adapters stay active inside it), patched so that
    `m(..., labels=..., fused_lm_head=True)` returns per-token log_probs, is_top1 and label_mask."""
    from trl.trainer.utils import add_fused_lm_head

    target = unwrap(model)
    own = vars(target)
    had, previous = "forward" in own, own.get("forward")  # SFTTrainer may have patched it already
    add_fused_lm_head(target, outputs=("log_probs", "is_top1"))
    try:
        yield target
    finally:
        if had:
            target.forward = previous
        else:
            del target.forward


@torch.no_grad()
def token_statistics(model: nn.Module, dataset: Dataset, collator, batch_size: int) -> dict[str, np.ndarray]:
    """Per example, in dataset order: `logprob` (sum of log p over its loss tokens), `tokens` (how many) and
    `correct` (how many the argmax predicts)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collator)
    out: dict[str, list[np.ndarray]] = {"logprob": [], "tokens": [], "correct": []}
    try:
        with fused_lm_head(model) as fused:
            for batch in loader:
                inputs = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
                result = fused(**inputs, fused_lm_head=True)
                out["logprob"].append(result.log_probs.double().sum(1).cpu().numpy())
                out["tokens"].append(result.label_mask.sum(1).cpu().numpy())
                out["correct"].append(result.is_top1.sum(1).cpu().numpy())
    finally:
        model.train(was_training)
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def token_metrics(stats: dict[str, np.ndarray]) -> dict[str, float]:
    """loss, perplexity, mean_token_accuracy (module docstring) and the counts behind them."""
    tokens = int(stats["tokens"].sum())
    loss = float(-stats["logprob"].sum() / max(tokens, 1))
    return {"loss": loss, "perplexity": math.exp(loss) if loss < 700 else float("inf"),
            "mean_token_accuracy": float(stats["correct"].sum() / max(tokens, 1)), "tokens": tokens,
            "examples": int(len(stats["tokens"]))}


@torch.no_grad()
def greedy_continuations(model: nn.Module, tokenizer, contexts: list[list[int]], *, max_new_tokens: int,
                         batch_size: int) -> list[str]:
    """The greedy continuation of each token-id context, decoded without special tokens (left-padded batches)."""
    from transformers import GenerationConfig

    generator = unwrap(model)
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    eos = generator.generation_config.eos_token_id
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=eos if eos is not None else tokenizer.eos_token_id)
    texts: list[str] = []
    try:
        for start in range(0, len(contexts), batch_size):
            padded = tokenizer.pad({"input_ids": contexts[start:start + batch_size]}, padding_side="left",
                                   return_tensors="pt")
            padded = {k: v.to(device) for k, v in padded.items()}
            generated = generator.generate(**padded, generation_config=config)
            texts += tokenizer.batch_decode(generated[:, padded["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        generator.train(was_training)
    return texts
