"""JREG: penalty forms, gradient vs finite differences, lambda = 0 is bit-for-bit the plain loss."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from tunescope.errors import UserError
from tunescope.experiments.pretrain import train_step
from tunescope.models.tiny import tiny_causal_lm, tiny_tokenizer, toy_sentiment
from tunescope.training.regularizers import JumpRegularizer, jreg_penalty


def test_penalty_forms_match_hand_computation():
    psi = torch.tensor([0.10, 0.05, 0.08, 0.30])
    assert jreg_penalty(psi, "jump").item() == pytest.approx(0.03 + 0.22)
    assert jreg_penalty(psi, "final").item() == pytest.approx(0.30)
    assert jreg_penalty(psi, "all").item() == pytest.approx(0.53 / 4)
    assert jreg_penalty(psi, "all", [0, 0, 1, 1]).item() == pytest.approx(0.38)
    with pytest.raises(UserError):
        jreg_penalty(psi, "all", [1, 1])
    with pytest.raises(UserError):
        JumpRegularizer(lam=0.1, form="nope")
    with pytest.raises(UserError):
        JumpRegularizer(lam=-1.0)


def _setup(arch="gpt2"):
    texts, _ = toy_sentiment(12, seed=3)
    tok = tiny_tokenizer(texts)
    batch = dict(tok(texts[:4], return_tensors="pt", padding=True))
    return tok, batch


def _ce(logits, batch):
    """Next-token cross-entropy over valid targets, computed in the logits' own dtype (fp64 here)."""
    targets = batch["input_ids"][:, 1:].masked_fill(batch["attention_mask"][:, 1:] == 0, -100)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


@pytest.mark.parametrize("form", ["jump", "final", "all"])
def test_gradient_matches_finite_differences(form):
    # GPT-2 in float64: its LayerNorm keeps fp64 (Llama's RMSNorm computes in fp32, too coarse for FD).
    tok, batch = _setup()
    model = tiny_causal_lm("gpt2", tok, seed=1).double().eval()  # eval: no dropout, deterministic
    reg = JumpRegularizer(lam=2.0, form=form)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}

    def loss_fn() -> torch.Tensor:
        with reg.track(model, batch["attention_mask"]) as tracked:
            return tracked.loss(_ce(model(**inputs).logits, batch))

    model.zero_grad()
    loss_fn().backward()
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(0)
    direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    analytic = sum((p.grad * d).sum() for p, d in zip(params, direction)).item()
    eps = 1e-5
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(eps * d)
        up = loss_fn().item()
        for p, d in zip(params, direction):
            p.add_(-2 * eps * d)
        down = loss_fn().item()
    numeric = (up - down) / (2 * eps)
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_regulariser_gradient_reaches_the_model_and_changes_it():
    tok, batch = _setup()
    model = tiny_causal_lm("llama", tok, seed=2).train()
    with JumpRegularizer(lam=1.0, form="all").track(model, batch["attention_mask"]) as tracked:
        model(**batch)
        total = tracked.loss(torch.zeros(()))  # only R carries a gradient here
    total.backward()
    grads = [p.grad for p in model.model.layers[0].parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert tracked.penalty == pytest.approx(float(torch.tensor(tracked.psi).mean()), rel=1e-6)


def test_lambda_zero_is_bit_for_bit_the_plain_loss():
    tok, batch = _setup()
    batch = {**batch, "labels": batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)}
    plain = tiny_causal_lm("llama", tok, seed=4).train()
    reg_model = copy.deepcopy(plain)
    opt_a = torch.optim.AdamW(plain.parameters(), lr=1e-2)
    opt_b = torch.optim.AdamW(reg_model.parameters(), lr=1e-2)
    reg = JumpRegularizer(lam=0.0)
    for _ in range(2):
        out = plain(**batch)
        out.loss.backward()
        opt_a.step()
        opt_a.zero_grad()
        total, lm_loss, penalty = train_step(reg_model, batch, reg)
        opt_b.step()
        opt_b.zero_grad()
        assert penalty is None
        assert torch.equal(total, out.loss.detach())
    for (na, a), (nb, b) in zip(plain.named_parameters(), reg_model.named_parameters()):
        assert na == nb and torch.equal(a, b), na


def test_minimising_the_penalty_lowers_the_final_displacement():
    tok, batch = _setup()
    model = tiny_causal_lm("llama", tok, seed=5).train()
    reg = JumpRegularizer(lam=1.0, form="final")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    values = []
    for _ in range(6):
        with reg.track(model, batch["attention_mask"]) as tracked:
            model(**batch)
            r = tracked.loss(torch.zeros(()))
        values.append(float(r.detach()))
        r.backward()
        opt.step()
        opt.zero_grad()
    assert values[-1] < values[0]
