"""SIFT core semantics: exact masked updates, the true top-k mask, accumulation, AdamW equivalence."""

from __future__ import annotations

import math

import pytest
import torch

from tests.unit._sift_helpers import (
    batch,
    dense_grads,
    engine,
    half,
    model,
    snapshot,
    tokenizer,
)
from tunescope.strategies.sift.config import SiftConfig, num_selected, resolve_targets
from tunescope.strategies.sift.optimizer import SiftAdamW

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


def test_k_is_floor_rate_numel_plus_one():
    assert num_selected(1000, 0.01) == 11
    assert num_selected(147456, 0.01) == math.floor(1474.56) + 1
    assert num_selected(10, 1.0) == 10  # capped at numel


@pytest.mark.parametrize("arch,expected", [("bert", 4), ("gpt2", 2), ("llama", 4)])
def test_default_targets_are_attention_qkvo(tok, arch, expected):
    m = model(arch, tok=tok)
    targets = resolve_targets(m, None)
    assert len(targets) == expected * 4  # 4 blocks
    assert all(("attn" in n or "attention" in n) and n.endswith(".weight") for n in targets)


def test_mask_is_true_topk_of_accumulated_gradient(tok):
    m = model(tok=tok)
    batches = [batch(tok, 8, 0), batch(tok, 8, 1)]
    e = engine(m, rate=0.03, selection_batches=2)
    names = list(e.slots)
    torch.manual_seed(5)
    e.select(iter(batches))
    torch.manual_seed(5)  # same dropout draws in train mode
    ref = dense_grads(m, batches, names, train=True)
    for n, s in e.slots.items():
        g = ref[n].reshape(-1).abs()
        assert s.indices.numel() == math.floor(0.03 * g.numel()) + 1
        chosen = torch.zeros_like(g, dtype=torch.bool)
        chosen[s.indices] = True
        assert g[chosen].min() >= g[~chosen].max()
        assert torch.equal(s.base, m.get_parameter(n).detach().reshape(-1)[s.indices])


def test_one_sgd_step_changes_exactly_the_selected_entries_by_minus_lr_grad(tok):
    m = model(tok=tok)
    b = batch(tok, 16, 0)
    e = engine(m, rate=0.05)
    e.select([b])
    before = snapshot(m)
    names = list(e.slots)
    ref = dense_grads(m, [b], names + list(e.dense))  # eval mode: deterministic
    lr = 0.05
    opt = SiftAdamW(e, lr=lr, kind="sgd")
    m(**b).loss.backward()
    opt.step()
    after = snapshot(m)
    for n, p0 in before.items():
        if n in e.slots:
            idx = e.slots[n].indices
            keep = torch.ones(p0.numel(), dtype=torch.bool)
            keep[idx] = False
            assert torch.equal(after[n].reshape(-1)[keep], p0.reshape(-1)[keep])  # bit-identical
            expected = p0.reshape(-1)[idx] - lr * ref[n].reshape(-1)[idx]
            assert torch.equal(after[n].reshape(-1)[idx], expected)  # exactly -lr x masked grad
            assert (after[n].reshape(-1)[idx] != p0.reshape(-1)[idx]).any()
        elif n in e.dense:
            torch.testing.assert_close(after[n], p0 - lr * ref[n], atol=1e-7, rtol=1e-6)  # dense head
        else:
            assert torch.equal(after[n], p0)  # frozen: untouched


def test_two_accumulated_micro_batches_equal_one_double_batch(tok):
    b = batch(tok, 16, 3)
    results = []
    for micro in (False, True):
        m = model(tok=tok)
        e = engine(m, rate=0.05, mask="random")
        e.select([])
        opt = SiftAdamW(e, lr=1e-2, weight_decay=0.01)
        if micro:  # two halves, each loss / 2: the mean over the double batch
            for part in (0, 1):
                (m(**half(b, part)).loss / 2).backward()
        else:
            m(**b).loss.backward()
        grads = [s.grad.clone() for s in e.slots.values()]
        opt.step()
        results.append((grads, snapshot(m)))
    (g_full, w_full), (g_acc, w_acc) = results
    for a, c in zip(g_full, g_acc):
        torch.testing.assert_close(a, c, atol=1e-6, rtol=1e-5)
    for n in w_full:
        torch.testing.assert_close(w_full[n], w_acc[n], atol=1e-6, rtol=1e-5)


def test_full_mask_sift_adamw_equals_torch_adamw_on_the_same_tensors(tok):
    """rate=1 selects every entry: SIFT must then be exactly AdamW (incl. decoupled decay on real weights)."""
    b = batch(tok, 16, 4)
    m = model(tok=tok)
    ref_model = model(tok=tok)
    e = engine(m, rate=1.0, mask="random")
    e.select([])
    opt = SiftAdamW(e, lr=1e-2, weight_decay=0.1)
    names = list(e.slots) + list(e.dense)
    ref_params = dict(ref_model.named_parameters())
    for p in ref_model.parameters():
        p.requires_grad_(False)
    for n in names:
        ref_params[n].requires_grad_(True)
    decay = [ref_params[n] for n in names if not n.endswith("bias")]
    no_decay = [ref_params[n] for n in names if n.endswith("bias")]
    ref_opt = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        m(**b).loss.backward()
        opt.step()
        opt.zero_grad()
        ref_model(**b).loss.backward()
        ref_opt.step()
        ref_opt.zero_grad()
    for n in names:
        torch.testing.assert_close(m.get_parameter(n), ref_params[n], atol=1e-6, rtol=1e-5)


def test_bad_options_raise_user_errors():
    from tunescope.errors import UserError

    for kw in ({"rate": 0.0}, {"rate": 1.5}, {"selection_batches": 0}, {"mask": "bottom"}, {"targets": []}):
        with pytest.raises(UserError):
            SiftConfig(**kw)


def test_unknown_target_pattern_is_a_user_error(tok):
    from tunescope.errors import UserError

    with pytest.raises(UserError, match="sift_targets"):
        resolve_targets(model(tok=tok), ["no_such_module"])


def test_step_consumes_sparse_grads_when_only_model_zero_grad_is_called(tok):
    """The HF Trainer calls model.zero_grad() only; the k-vectors are not model parameters, so the step must
    clear their gradients itself or every later step would apply the running sum of all past gradients."""
    b0, b1 = batch(tok, 16, 0), batch(tok, 16, 1)
    m = model(tok=tok)
    e = engine(m, rate=0.05)
    e.select([b0])
    opt = SiftAdamW(e, lr=0.05, kind="sgd")
    m(**b0).loss.backward()
    opt.step()
    m.zero_grad()
    assert all(s.grad is None for s in e.slots.values())
    before = {n: s.increment().clone() for n, s in e.slots.items()}
    g1 = dense_grads(m, [b1], list(e.slots))
    m(**b1).loss.backward()
    opt.step()
    m.zero_grad()
    for n, s in e.slots.items():
        torch.testing.assert_close(s.increment() - before[n], -0.05 * g1[n].reshape(-1)[s.indices], atol=1e-7,
                                   rtol=1e-5)
