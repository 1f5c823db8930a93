"""Gradient quasi-sparsity: top-p shares and entries_for_99 against direct computations."""

from __future__ import annotations

import math

import pytest
import torch

from tests.unit._sft_helpers import chat_tokenizer
from tests.unit._sift_helpers import batch, model, tokenizer
from tunescope.diagnostics.sparsity import (
    block_weight_names,
    entries_for_share,
    gradient_sparsity,
    sparsity_per_kind,
    tensor_kinds,
    topk_shares,
)
from tunescope.models.layers import model_layout
from tunescope.models.tiny import tiny_causal_lm

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


def _kinds(m) -> dict[str, str]:
    return tensor_kinds(block_weight_names(m), model_layout(m).block_prefixes)


def test_tensor_kinds_of_real_module_names():
    bert = _kinds(model())  # 4 blocks, 6 weights each
    assert bert["bert.encoder.layer.2.attention.self.query.weight"] == "query"
    assert bert["bert.encoder.layer.0.attention.output.dense.weight"] == "attention.output.dense"
    assert bert["bert.encoder.layer.3.intermediate.dense.weight"] == "intermediate.dense"
    assert bert["bert.encoder.layer.1.output.dense.weight"] == "output.dense"  # BERT's two dense kinds stay apart
    assert sorted(set(bert.values())) == sorted(["query", "key", "value", "attention.output.dense",
                                                 "intermediate.dense", "output.dense"])
    assert all(list(bert.values()).count(k) == 4 for k in bert.values())  # one per block
    tok = chat_tokenizer()
    llama = _kinds(tiny_causal_lm("llama", tok, num_layers=2))
    assert llama["model.layers.1.self_attn.q_proj.weight"] == "q_proj"
    assert llama["model.layers.0.mlp.gate_proj.weight"] == "gate_proj"
    assert sorted(set(llama.values())) == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj"])
    gpt2 = _kinds(tiny_causal_lm("gpt2", tok, num_layers=2))  # c_proj in both attention and MLP
    assert sorted(set(gpt2.values())) == sorted(["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"])
    # A weight outside the blocks: its module path, shortened the same way.
    assert tensor_kinds(["bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.output.dense.weight"],
                        ["bert.encoder.layer.0."]) == {"bert.embeddings.word_embeddings.weight": "word_embeddings",
                                                       "bert.encoder.layer.0.output.dense.weight": "dense"}


def test_per_kind_shares_pool_each_kind_across_blocks():
    m = model()
    gen = torch.Generator().manual_seed(1)
    grads = {n: torch.randn(p.shape, generator=gen) ** 3 for n, p in m.named_parameters()
             if n in set(block_weight_names(m))}  # fixed, heavy-tailed "gradients"
    kinds = _kinds(m)
    fractions = [0.001, 0.01, 0.1, 1.0]
    per = sparsity_per_kind(grads, kinds, fractions)
    assert list(per) == ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
    assert sum(v["num_params"] for v in per.values()) == sum(g.numel() for g in grads.values())
    for kind, got in per.items():
        # By hand: the kind's entries of all 4 blocks, squared, sorted descending; share at k = floor(p n) + 1.
        sq = torch.cat([g.reshape(-1) ** 2 for n, g in grads.items() if kinds[n] == kind]).double()
        srt = torch.sort(sq, descending=True).values
        cum, n = srt.cumsum(0), sq.numel()
        assert got["num_params"] == n == 4 * grads[next(x for x in grads if kinds[x] == kind)].numel()
        for p in fractions:
            k = min(math.floor(p * n) + 1, n)
            assert got["overall"][str(p)] == pytest.approx(float(cum[k - 1] / cum[-1]), rel=1e-6), (kind, p)
        k99 = int((cum < 0.99 * cum[-1]).sum()) + 1  # first k whose top-k sum reaches 99%
        assert got["entries_for_99"] == pytest.approx(k99 / n, rel=1e-9)
        assert got["overall"]["1.0"] == pytest.approx(1.0)
    # Pooling is not averaging: the query kind's share differs from the mean of its tensors' shares.
    q = [n for n in grads if kinds[n] == "query"]
    per_tensor = [topk_shares(grads[n].reshape(-1) ** 2, [0.01])[0.01] for n in q]
    assert per["query"]["overall"]["0.01"] != pytest.approx(sum(per_tensor) / len(per_tensor), rel=1e-6)
