"""Attention entropy: log n for uniform attention; equal to an eager-attention reference with padding."""

import math

import pytest
import torch

from tunescope.diagnostics.attention import (
    EntropyRecorder,
    masked_attention_entropy,
    record_attention_entropy,
)
from tunescope.models.layers import model_layout
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment


def test_uniform_attention_has_entropy_log_n():
    b, h, t = 2, 3, 7
    valid = torch.ones(b, t, dtype=torch.bool)
    valid[1, 4:] = False  # second example: 4 real tokens
    allowed = valid[:, None, None, :].expand(b, h, t, t)
    probs = allowed.float() / allowed.float().sum(-1, keepdim=True)
    s_h, n, s_hn, n_n = masked_attention_entropy(probs, allowed, valid)
    # mean over heads and valid queries: (3*7*log 7 + 3*4*log 4) / (21 + 12)
    expected = (h * t * math.log(t) + h * 4 * math.log(4)) / (h * t + h * 4)
    assert float(s_h / n) == pytest.approx(expected, abs=1e-6)
    assert float(s_hn / n_n) == pytest.approx(1.0, abs=1e-6)
    assert int(n) == h * (t + 4)


def test_one_hot_attention_has_zero_entropy_and_scores_path_matches_probs():
    torch.manual_seed(0)
    scores = torch.randn(2, 2, 5, 5) * 3
    allowed = torch.ones(5, 5, dtype=torch.bool).tril()[None, None]
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1)
    a = masked_attention_entropy(scores, allowed, are_scores=True)
    b = masked_attention_entropy(probs, allowed)
    assert float(a[0]) == pytest.approx(float(b[0]), rel=1e-5)
    one_hot = torch.eye(5)[None, None].expand(2, 2, 5, 5)
    assert float(masked_attention_entropy(one_hot, allowed)[0]) == pytest.approx(0.0, abs=1e-6)
    # causal: the first query has one key, so it is left out of the normalised mean
    assert int(a[3]) == 2 * 2 * 4


def _reference_entropy(model, enc, causal: bool) -> list[tuple[float, float]]:
    """Eager attention with output_attentions=True, entropy computed directly from the weights."""
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    model.set_attn_implementation("sdpa")
    valid = enc["attention_mask"].bool()
    res = []
    for a in out.attentions:  # [B, H, T, T]
        t = a.shape[-1]
        allowed = valid[:, None, None, :].expand_as(a)
        if causal:
            allowed = allowed & torch.ones(t, t, dtype=torch.bool).tril()
        h_sum, n, hn_sum, nn_ = 0.0, 0, 0.0, 0
        for bi in range(a.shape[0]):
            for hi in range(a.shape[1]):
                for qi in range(t):
                    if not valid[bi, qi]:
                        continue
                    p = a[bi, hi, qi][allowed[bi, hi, qi]].double()
                    ent = float(-(p * torch.log(p)).sum())
                    h_sum, n = h_sum + ent, n + 1
                    if p.numel() >= 2:
                        hn_sum, nn_ = hn_sum + ent / math.log(p.numel()), nn_ + 1
        res.append((h_sum / n, hn_sum / nn_))
    return res


@pytest.mark.parametrize("arch,padding_side", [("bert", "right"), ("gpt2", "right"), ("llama", "right"),
                                               ("llama", "left"), ("roberta", "right"), ("distilbert", "right"),
                                               ("qwen2", "left"), ("mistral", "right")])
def test_entropy_equals_eager_reference_with_padding(arch, padding_side):
    texts, _ = toy_sentiment(6, seed=1)
    tok = tiny_tokenizer(texts)
    tok.padding_side = padding_side
    model = tiny_classifier(arch, tok)
    layout = model_layout(model)
    with torch.no_grad():  # sharpen attention so the entropies are far from uniform
        for attn in layout.attentions:
            for name, p in attn.named_parameters():
                if any(k in name for k in ("query", "q_proj", "k_proj", "key", "c_attn", "q_lin", "k_lin")) \
                        and p.dim() == 2:
                    p.mul_(25.0)
    enc = tok(texts, padding=True, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any()
    recorder = EntropyRecorder(layout.num_layers, valid_tokens=enc["attention_mask"].bool())
    with torch.no_grad():
        plain = model(**enc).logits
        with record_attention_entropy(model, layout.attentions, recorder):
            recorded = model(**enc).logits
    assert torch.equal(plain, recorded)  # the output still comes from the SDPA kernel
    assert model.config._attn_implementation == "sdpa"  # restored
    assert not any(hasattr(a, "_tunescope_entropy_sink") for a in layout.attentions)
    reference = _reference_entropy(model, enc, causal=arch not in ("bert", "roberta", "distilbert"))
    table = recorder.table()
    assert min(r[0] for r in reference) < 0.8 * math.log(enc["input_ids"].shape[1])  # really not uniform
    for row, (h_ref, hn_ref) in zip(table, reference):
        assert row["attn_entropy"] == pytest.approx(h_ref, abs=1e-5)
        assert row["attn_entropy_norm"] == pytest.approx(hn_ref, abs=1e-5)
        assert 0.0 <= row["attn_entropy_norm"] <= 1.0


def test_config_restored_after_an_exception():
    texts, _ = toy_sentiment(4)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier("bert", tok)
    layout = model_layout(model)
    with pytest.raises(RuntimeError):
        with record_attention_entropy(model, layout.attentions, EntropyRecorder(layout.num_layers)):
            raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"
    assert not any(hasattr(a, "_tunescope_entropy_sink") for a in layout.attentions)
