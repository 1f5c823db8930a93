"""The jump metric: Psi, zeta, J against hand computations; masks; hooks vs HF hidden states."""

from __future__ import annotations

import math

import pytest
import torch

from tunescope.diagnostics.jump import (
    DisplacementCapture,
    JumpProfile,
    jump_profile,
    jump_ratio,
    masked_sum,
    token_displacement,
    zeta_profile,
)
from tunescope.models.tiny import (
    tiny_causal_lm,
    tiny_classifier,
    tiny_tokenizer,
    toy_sentiment,
)


def test_identical_states_have_zero_displacement_and_opposite_ones_one():
    h = torch.randn(2, 5, 16)
    assert torch.allclose(token_displacement(h, h), torch.zeros(2, 5), atol=1e-6)
    assert torch.allclose(token_displacement(h, -h), torch.ones(2, 5), atol=1e-6)
    # Scaling does not move a state's direction: displacement 0.
    assert torch.allclose(token_displacement(h, 3.0 * h), torch.zeros(2, 5), atol=1e-6)


def test_orthogonal_states_have_displacement_one_half():
    a = torch.tensor([[1.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 2.0, 0.0]])
    assert token_displacement(a, b).item() == pytest.approx(0.5)


def test_masked_mean_ignores_padding():
    values = torch.tensor([[0.2, 0.4, 9.0], [0.6, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    total, count = masked_sum(values, mask)
    assert count.item() == 3
    assert (total / count).item() == pytest.approx((0.2 + 0.4 + 0.6) / 3)


def test_zeta_of_a_planted_profile_matches_hand_computation():
    psi = [0.10, 0.05, 0.08, 0.07, 0.30]
    # upward steps: l=3: +0.03, l=5: +0.23 (l=2 and l=4 go down)
    expected = [100 * (0.03 + 0.23), 100 * (0.03 + 0.23), 100 * (0.03 + 0.23), 100 * 0.23, 100 * 0.23]
    assert zeta_profile(psi) == pytest.approx(expected)
    assert jump_ratio(psi) == pytest.approx(0.30 / ((0.10 + 0.05 + 0.08 + 0.07) / 4))
    prof = JumpProfile.from_psi(psi, tokens=10)
    assert prof.zeta_last == pytest.approx(23.0)
    assert set(prof.as_dict()) >= {"psi", "zeta", "J"}


def test_flat_or_falling_profile_has_no_jump():
    assert zeta_profile([0.3, 0.2, 0.1]) == [0.0, 0.0, 0.0]
    assert math.isnan(jump_ratio([0.5]))


def _tok():
    texts, _ = toy_sentiment(16, seed=1)
    return tiny_tokenizer(texts), texts


def _reference_psi(model, batch):
    """Independent computation: HF hidden_states (h_0 .. h_{L-1}); h_L before the final norm via a hook."""
    from tunescope.models.layers import model_layout

    layout = model_layout(model)
    last = {}
    handle = layout.blocks[-1].register_forward_hook(lambda m, a, o: last.setdefault("h", o))
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    handle.remove()
    states = list(out.hidden_states[:-1]) + [last["h"]]
    mask = batch["attention_mask"].double()
    psi = []
    for prev, cur in zip(states[:-1], states[1:]):
        cos = (prev * cur).sum(-1) / (prev.norm(dim=-1) * cur.norm(dim=-1))
        per_token = torch.where(mask.bool(), (1 - cos) / 2, torch.zeros_like(cos))  # pads may be 0/0
        psi.append(float(per_token.sum() / mask.sum()))
    return psi


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_hooks_match_hidden_states_with_padding(arch):
    tok, texts = _tok()
    model = (tiny_classifier(arch, tok) if arch == "bert" else tiny_causal_lm(arch, tok)).double()
    batch = dict(tok(texts[:6], return_tensors="pt", padding=True))
    assert (batch["attention_mask"] == 0).any()  # the test needs padding to be meaningful
    prof = jump_profile(model, [batch])
    assert prof.psi == pytest.approx(_reference_psi(model, batch), rel=1e-6, abs=1e-9)
    assert prof.tokens == int(batch["attention_mask"].sum())


def test_padding_does_not_change_the_profile():
    """The same texts alone (no padding) or padded in a batch give the same token-weighted profile."""
    tok, texts = _tok()
    model = tiny_causal_lm("llama", tok).double()
    batched = jump_profile(model, [dict(tok(texts[:4], return_tensors="pt", padding=True))])
    singles = jump_profile(model, [dict(tok([t], return_tensors="pt")) for t in texts[:4]])
    assert batched.psi == pytest.approx(singles.psi, rel=1e-6)
    assert batched.tokens == singles.tokens


def test_capture_removes_its_hooks():
    tok, texts = _tok()
    model = tiny_causal_lm("gpt2", tok)
    before = sum(len(b._forward_hooks) + len(b._forward_pre_hooks) for b in model.transformer.h)
    with DisplacementCapture(model):
        pass
    after = sum(len(b._forward_hooks) + len(b._forward_pre_hooks) for b in model.transformer.h)
    assert before == after == 0
