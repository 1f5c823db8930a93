"""Shared fixtures for the SIFT unit tests: a tiny classifier, toy batches, an independent dense gradient."""

from __future__ import annotations

import copy

import torch

from tunescope.models.layers import head_parameter_names
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment
from tunescope.strategies.sift.config import SiftConfig
from tunescope.strategies.sift.sparse import SiftEngine


def tokenizer():
    texts, _ = toy_sentiment(128, 1)
    return tiny_tokenizer(texts)


def batch(tok, n: int = 16, seed: int = 0) -> dict:
    texts, labels = toy_sentiment(n, seed)
    enc = tok(texts, padding=True, return_tensors="pt")
    out = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    out["labels"] = torch.tensor(labels)
    return out


def half(b: dict, part: int) -> dict:
    n = len(b["labels"]) // 2
    return {k: v[part * n:(part + 1) * n] for k, v in b.items()}


def model(arch: str = "bert", seed: int = 0, tok=None, dropout: bool = True):
    m = tiny_classifier(arch, tok or tokenizer(), seed=seed)
    if not dropout:  # train-mode forward becomes deterministic (bert reads attention dropout from nn.Dropout.p)
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
    return m


def engine(m, rate: float = 0.05, **kw) -> SiftEngine:
    return SiftEngine(m, SiftConfig(rate=rate, **kw), head_parameter_names(m))


def dense_grads(m, batches, names, train: bool = False) -> dict[str, torch.Tensor]:
    """Independent reference: a deep copy with plain autograd, gradient summed over batches."""
    ref = copy.deepcopy(m)  # tensor hooks are not copied: the reference uses plain autograd
    params = dict(ref.named_parameters())
    for p in ref.parameters():
        p.requires_grad_(False)
        p.grad = None
    for n in names:
        params[n].requires_grad_(True)
    ref.train(train)
    for b in batches:
        ref(**b).loss.backward()
    return {n: params[n].grad.detach().clone() for n in names}


def snapshot(m) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in m.named_parameters()}

