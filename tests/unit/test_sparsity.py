"""Gradient quasi-sparsity: top-p shares and entries_for_99 against direct computations."""

from __future__ import annotations

import math

import pytest
import torch

from tests.unit._sift_helpers import batch, model, tokenizer  # noqa: F401
from tunescope.diagnostics.sparsity import (
    entries_for_share,
    gradient_sparsity,
    topk_shares,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_topk_shares_match_a_sorted_cumulative_sum():
    g = torch.randn(10_000, generator=torch.Generator().manual_seed(0)) ** 3
    sq = g ** 2
    srt = torch.sort(sq, descending=True).values.double()
    for p, share in topk_shares(sq, [0.001, 0.01, 0.1, 1.0]).items():
        k = min(math.floor(p * sq.numel()) + 1, sq.numel())
        assert share == pytest.approx(float(srt[:k].sum() / srt.sum()), rel=1e-9)
    assert topk_shares(sq, [1.0])[1.0] == pytest.approx(1.0)


def test_entries_for_99_on_a_known_vector():
    sq = torch.tensor([98.0, 1.0, 0.5, 0.5] + [0.0] * 96)  # 1 entry carries 98%, 2 reach 99%
    assert entries_for_share(sq, 0.99) == pytest.approx(2 / 100)
    assert entries_for_share(sq, 0.98) == pytest.approx(1 / 100)
    assert entries_for_share(torch.ones(50), 0.99) == pytest.approx(50 / 50)


def test_gradient_sparsity_on_a_tiny_model_leaves_it_untouched():
    tok = tokenizer()
    m = model(tok=tok, dropout=False)
    flags = {n: p.requires_grad for n, p in m.named_parameters()}
    b = batch(tok, 16, 0)
    res = gradient_sparsity(m, [b])
    # Independent: dense autograd on all block 2-D weights.
    names = [t["name"] for t in res.per_tensor]
    assert names and all(".layer." in n and n.endswith("weight") for n in names)
    m.zero_grad()
    m.train()
    m(**b).loss.backward()
    params = dict(m.named_parameters())
    sq = torch.cat([params[n].grad.reshape(-1) ** 2 for n in names])
    for p, share in res.overall.items():
        assert share == pytest.approx(topk_shares(sq, [p])[p], rel=1e-6)
    shares = [res.overall[p] for p in res.fractions]
    assert shares == sorted(shares) and 0 < shares[0] <= shares[-1] <= 1
    assert res.num_params == sq.numel()
    first = res.per_tensor[0]
    g = params[first["name"]].grad.reshape(-1) ** 2
    assert first["share"]["0.01"] == pytest.approx(topk_shares(g, [0.01])[0.01], rel=1e-6)
    assert {n: p.requires_grad for n, p in m.named_parameters()} == flags  # restored
    assert res.curve["share"] == sorted(res.curve["share"])
