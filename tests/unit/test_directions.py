"""Directions: seeded random ones, SFT ones, and the worst case (its radius is at most the random ones')."""

from __future__ import annotations

import math

import pytest
import torch

from tunescope.errors import UserError
from tunescope.landscape.basin import score_threshold
from tunescope.landscape.directions import (
    global_norm,
    random_direction,
    select_scope,
    sft_direction,
)
from tunescope.landscape.measure import radius_along, worst_case_direction
from tunescope.landscape.scores import Scorer
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment


def toy_batches(tok, n: int, seed: int, batch_size: int = 32) -> list[dict]:
    texts, labels = toy_sentiment(n, seed)
    enc = tok(texts, padding=True, return_tensors="pt")
    enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    y = torch.tensor(labels)
    return [{**{k: v[i:i + batch_size] for k, v in enc.items()}, "labels": y[i:i + batch_size]}
            for i in range(0, n, batch_size)]


def trained_tiny_classifier(arch: str = "bert", steps: int = 60, seed: int = 0):
    """(model, tokenizer, eval batches): a tiny classifier that learned the toy task (accuracy ~1)."""
    texts, _ = toy_sentiment(256, 1)
    tok = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    model = tiny_classifier(arch, tok, seed=seed)
    train = toy_batches(tok, 256, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        out = model(**train[step % len(train)])
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, tok, toy_batches(tok, 128, 2, batch_size=64)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained():
    return trained_tiny_classifier("bert", steps=40)


def test_random_direction_is_seeded_gaussian_with_norm_sqrt_d(trained):
    model, _, _ = trained
    scope = select_scope(model, "all")
    d1 = random_direction(scope, seed=5, index=2)
    d2 = random_direction(scope, seed=5, index=2)
    d3 = random_direction(scope, seed=5, index=3)
    assert all(torch.equal(a, b) for a, b in zip(d1, d2, strict=True))
    assert not torch.equal(d1[0], d3[0])
    flat = torch.cat([d.flatten() for d in d1])
    assert flat.numel() == scope.dim
    assert global_norm(d1) == pytest.approx(math.sqrt(scope.dim), rel=0.02)
    assert float(flat.mean()) == pytest.approx(0.0, abs=0.02) and float(flat.std()) == pytest.approx(1.0, abs=0.02)
    tn = random_direction(scope, seed=5, index=2, normalization="tensor")
    for d, p in zip(tn, scope.params, strict=True):
        assert float(d.norm()) == pytest.approx(float(p.detach().norm()), rel=1e-4)


def test_scopes_select_the_right_parameters(trained):
    model, _, _ = trained
    layers = select_scope(model, "layers:1-2")
    assert layers.names and all(".layer.1." in n or ".layer.2." in n for n in layers.names)
    body = select_scope(model, "body")
    assert not any(n.startswith("classifier") for n in body.names)
    with pytest.raises(UserError):
        select_scope(model, "layers:3-9")
    with pytest.raises(UserError):
        select_scope(model, "adapters")
    with pytest.raises(UserError):
        select_scope(model, "everything")
    name = layers.names[0]
    mask = torch.zeros_like(layers.params[0], dtype=torch.bool)
    mask.view(-1)[:7] = True
    sparse = select_scope(model, "all", masks={name: mask})
    assert sparse.names == [name] and sparse.dim == 7
    d = random_direction(sparse, 0, 0)[0]
    assert int((d != 0).sum()) == 7


def test_sft_direction_is_the_rescaled_weight_difference(trained):
    model, _, _ = trained
    scope = select_scope(model, "layers:0-1")
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    step = random_direction(scope, 9, 0)
    for n, s in zip(scope.names, step, strict=True):
        base[n] = base[n] - 0.01 * s  # model = base + 0.01 * step
    d = sft_direction(scope, base)
    assert global_norm(d) == pytest.approx(math.sqrt(scope.dim), rel=1e-5)
    cos = sum(float((a * b).sum()) for a, b in zip(d, step, strict=True)) / (global_norm(d) * global_norm(step))
    assert cos == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(UserError):
        sft_direction(scope, {n: p.detach().clone() for n, p in model.named_parameters()})  # zero difference


def test_worst_case_radius_is_at_most_the_random_radius(trained):
    model, _, batches = trained
    scorer = Scorer("classification", batches)
    s0 = scorer.score(model)
    assert s0 >= 0.9  # the toy task was learned
    thr = score_threshold(s0, 0.05)
    scope = select_scope(model, "all")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    random_radii = []
    a_init = 0.05
    for i in range(3):
        r = radius_along(model, scorer, scope, random_direction(scope, 0, i), thr, a_init=a_init, rtol=0.05)
        random_radii.append(r.radius)
        a_init = r.radius
    median = sorted(random_radii)[1]
    worst, trace = worst_case_direction(model, scorer, scope, scale=median, seed=0, index=99, steps=8)
    assert trace[-1] > trace[0]  # the ascent raised the loss
    assert global_norm(worst) == pytest.approx(math.sqrt(scope.dim), rel=1e-5)
    w = radius_along(model, scorer, scope, worst, thr, a_init=median, rtol=0.05)
    assert w.radius <= min(random_radii)
    assert w.radius < 0.5 * median  # and clearly so
    after = {n: p.detach() for n, p in model.named_parameters()}
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(p.requires_grad for p in model.parameters())
