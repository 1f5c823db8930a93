"""Attention sink share: the definition on planted attention, equality with an eager-attention reference on tiny
BERT and Llama (with padding on either side), and that it rides on the entropy's pass."""

import pytest
import torch

from tunescope.diagnostics import attention
from tunescope.diagnostics.attention import AttentionChunk, sink_share_sums
from tunescope.diagnostics.layerwise import layer_diagnostics
from tunescope.models.layers import model_layout
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment

pytestmark = pytest.mark.usefixtures("one_thread")


def _share(probs, allowed, valid=None) -> float:
    s, n = sink_share_sums(AttentionChunk.of(probs, allowed, valid))
    return float(s / n)


def test_uniform_attention_puts_one_over_n_on_the_first_valid_key():
    b, h, t = 2, 3, 6
    valid = torch.ones(b, t, dtype=torch.bool)
    valid[1, :2] = False  # second example left-padded: its first real token is position 2
    allowed = valid[:, None, None, :].expand(b, h, t, t)
    probs = allowed.float() / allowed.float().sum(-1, keepdim=True)
    # mean over heads and valid queries: (3*6 * 1/6 + 3*4 * 1/4) / (18 + 12)
    assert _share(probs, allowed, valid) == pytest.approx((h * t / t + h * 4 / 4) / (h * t + h * 4), abs=1e-7)


def test_causal_uniform_and_all_on_the_sink():
    t = 5
    allowed = torch.ones(t, t, dtype=torch.bool).tril()[None, None]
    uniform = allowed.float() / allowed.float().sum(-1, keepdim=True)
    # query i sees i + 1 keys: share 1 / (i + 1)
    assert _share(uniform, allowed) == pytest.approx(sum(1 / (i + 1) for i in range(t)) / t, abs=1e-7)
    sink = torch.zeros(1, 1, t, t)
    sink[..., 0] = 1.0
    assert _share(sink, allowed) == pytest.approx(1.0, abs=1e-7)
    diagonal = torch.eye(t)[None, None]  # every query on itself: only query 0 hits the sink
    assert _share(diagonal, allowed) == pytest.approx(1 / t, abs=1e-7)


def _sharpen(layout):
    """Scale the query/key projections so attention is far from uniform (as in test_attention_entropy)."""
    with torch.no_grad():
        for attn in layout.attentions:
            for name, p in attn.named_parameters():
                if any(k in name for k in ("query", "q_proj", "key", "k_proj")) and p.dim() == 2:
                    p.mul_(25.0)


def _reference_sink_share(model, enc, causal: bool) -> list[float]:
    """Eager attention with output_attentions=True; for each valid query, the weight on its first allowed key."""
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            attentions = model(**enc, output_attentions=True).attentions
    finally:
        model.set_attn_implementation("sdpa")
    valid = enc["attention_mask"].bool()
    out = []
    for a in attentions:  # [B, H, T, T]
        total, count = 0.0, 0
        for bi in range(a.shape[0]):
            keys = [j for j in range(a.shape[-1]) if valid[bi, j]]
            for qi in range(a.shape[-2]):
                if not valid[bi, qi]:
                    continue
                visible = [j for j in keys if j <= qi] if causal else keys
                for hi in range(a.shape[1]):
                    total += float(a[bi, hi, qi, visible[0]])
                    count += 1
        out.append(total / count)
    return out


@pytest.mark.parametrize("arch,padding_side", [("bert", "right"), ("llama", "right"), ("llama", "left")])
def test_sink_share_equals_eager_reference(arch, padding_side):
    texts, _ = toy_sentiment(6, seed=1)
    tok = tiny_tokenizer(texts)
    tok.padding_side = padding_side
    model = tiny_classifier(arch, tok)
    _sharpen(model_layout(model))
    enc = tok(texts, padding=True, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any()
    rows, _ = layer_diagnostics(model, [dict(enc)], metrics=["attn_sink_share"])  # forward only: no labels needed
    reference = _reference_sink_share(model, enc, causal=arch == "llama")
    assert max(reference) - min(reference) > 0.01 or max(reference) > 0.3  # really not uniform
    for row, ref in zip(rows, reference):
        assert set(row) == {"layer", "attn_sink_share"}
        assert row["attn_sink_share"] == pytest.approx(ref, abs=1e-5)


def test_recorded_in_the_entropy_pass_without_changing_the_entropy(monkeypatch):
    texts, _ = toy_sentiment(6, seed=2)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier("llama", tok)
    enc = dict(tok(texts, padding=True, return_tensors="pt"))
    alone, _ = layer_diagnostics(model, [enc], metrics=["attn_entropy"])
    calls = []
    original = attention.attention_chunks
    monkeypatch.setattr(attention, "attention_chunks", lambda *a, **k: calls.append(1) or original(*a, **k))
    both, _ = layer_diagnostics(model, [enc], metrics=["attn_sink_share", "attn_entropy"])
    assert len(calls) == model_layout(model).num_layers  # one recomputation per attention call, shared by both
    for a, b in zip(alone, both):
        assert b["attn_entropy"] == a["attn_entropy"] and b["attn_entropy_norm"] == a["attn_entropy_norm"]
        assert 0.0 <= b["attn_sink_share"] <= 1.0
    assert list(both[0]) == ["layer", "attn_entropy", "attn_entropy_norm", "attn_sink_share"]  # registry order
