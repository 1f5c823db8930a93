"""perturb.perturbed: theta + a delta is what the model computes with, and theta comes back bit-exactly."""

from __future__ import annotations

import copy

import pytest
import torch

from tunescope.landscape.directions import random_direction, select_scope
from tunescope.landscape.perturb import perturbed
from tunescope.models.tiny import (
    tiny_causal_lm,
    tiny_classifier,
    tiny_tokenizer,
    toy_sentiment,
)


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}, {n: id(p) for n, p in model.named_parameters()}


@pytest.mark.parametrize("arch,kind", [("bert", "cls"), ("gpt2", "lm"), ("llama", "cls")])
def test_perturbation_is_exact_and_restored_bit_identically(arch, kind):
    texts, _ = toy_sentiment(32, 0)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier(arch, tok) if kind == "cls" else tiny_causal_lm(arch, tok)
    enc = tok(texts[:8], padding=True, return_tensors="pt")
    inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    before, ids = _snapshot(model)
    scope = select_scope(model, "all")
    delta = random_direction(scope, seed=3, index=0)
    a = 0.05
    # Independent reference: a deep copy whose weights were moved by hand.
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for (n, p), d in zip(ref.named_parameters(), delta, strict=True):
            p.add_(a * d)
        expected = ref(**inputs).logits
    with perturbed(model, scope.params, delta) as pert:
        for scale in (0.3, -0.2, a):  # several moves, then the one we check
            pert.set_scale(scale)
            with torch.no_grad():
                got = model(**inputs).logits
        # a gradient pass through the perturbation must not touch the weights either
        model(**inputs).logits.sum().backward()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    after, ids_after = _snapshot(model)
    assert ids_after == ids  # the very same Parameter objects are back
    for n in before:
        assert torch.equal(before[n], after[n]), n  # bit-identical
    assert not any("parametrizations" in n for n, _ in model.named_parameters())
    model.zero_grad()

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tied_weights_move_together():
    texts, _ = toy_sentiment(32, 0)
    tok = tiny_tokenizer(texts)
    model = tiny_causal_lm("gpt2", tok)
    assert model.lm_head.weight is model.transformer.wte.weight
    scope = select_scope(model, "all")
    delta = random_direction(scope, seed=0, index=0)
    with perturbed(model, scope.params, delta, scale=0.1):
        torch.testing.assert_close(model.lm_head.weight, model.transformer.wte.weight)
        i = scope.names.index("transformer.wte.weight")
        torch.testing.assert_close(model.lm_head.weight - scope.params[i], 0.1 * delta[i])
    assert model.lm_head.weight is model.transformer.wte.weight


def test_restored_even_when_the_body_raises():
    texts, _ = toy_sentiment(16, 0)
    model = tiny_classifier("bert", tiny_tokenizer(texts))
    before, _ = _snapshot(model)
    scope = select_scope(model, "layers:1-2")
    with pytest.raises(RuntimeError):
        with perturbed(model, scope.params, random_direction(scope, 0, 0), scale=1.0):
            raise RuntimeError("boom")
    after, _ = _snapshot(model)
    assert all(torch.equal(before[n], after[n]) for n in before)
