"""One test per fault of the official SIFT code (METHODS.md section 2) showing tunescope does not have it.

(The "single device only" fault is covered by tests/unit/test_sift_distributed.py.)
"""

from __future__ import annotations

import pytest
import torch

from tests.unit._sift_helpers import (
    batch,
    dense_grads,
    engine,
    model,
    snapshot,
    tokenizer,
)
from tunescope.strategies.sift.optimizer import SiftAdamW, optimizer_state_bytes
from tunescope.strategies.sift.state import DELTA_FILE, save_delta

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


def test_update_is_merged_in_the_same_step_including_the_last(tok):
    """Fault: the update was merged one step late, so the last step never reached the weights."""
    b = batch(tok, 16, 0)
    m = model(tok=tok)
    e = engine(m, rate=0.05)
    e.select([b])
    names = list(e.slots)
    ref = {n: m.get_parameter(n).detach().clone() for n in names}
    opt = SiftAdamW(e, lr=0.1, kind="sgd")
    for _ in range(3):
        grads = dense_grads(m, [b], names)  # gradient at the current weights
        m(**b).loss.backward()
        opt.step()
        opt.zero_grad()
        for n in names:  # reference: dense SGD on the masked gradient, applied at this very step
            mask = torch.zeros(ref[n].numel())
            mask[e.slots[n].indices] = 1.0
            ref[n] = ref[n] - 0.1 * (grads[n].reshape(-1) * mask).view_as(ref[n])
            torch.testing.assert_close(m.get_parameter(n).detach(), ref[n], atol=1e-7, rtol=1e-6)


def test_weight_decay_acts_on_the_real_entries(tok):
    """Fault: weight decay was applied to a zero buffer (a no-op). Here w <- w (1 - lr wd) on selected entries."""
    b = batch(tok, 8, 0)
    m = model(tok=tok)
    e = engine(m, rate=0.05)
    e.select([b])
    before = snapshot(m)
    opt = SiftAdamW(e, lr=0.1, weight_decay=0.5)
    (m(**b).logits * 0.0).sum().backward()  # zero gradient: only the decay can move the weights
    opt.step()
    for n, s in e.slots.items():
        w0, w1 = before[n].reshape(-1), m.get_parameter(n).detach().reshape(-1)
        torch.testing.assert_close(w1[s.indices], w0[s.indices] * (1 - 0.1 * 0.5), atol=1e-7, rtol=1e-6)
        keep = torch.ones_like(w0, dtype=torch.bool)
        keep[s.indices] = False
        assert torch.equal(w1[keep], w0[keep])
        assert (w1[s.indices] != w0[s.indices]).any()


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_no_target_keeps_a_dense_gradient_after_backward(tok, arch):
    """Fault: the last tensor reached in backward kept its dense gradient."""
    b = batch(tok, 8, 0)
    m = model(arch, tok=tok)
    e = engine(m, rate=0.05)
    e.select([b])
    m(**b).loss.backward()
    for n, p in m.named_parameters():
        if n in e.dense:
            assert p.grad is not None
        else:
            assert p.grad is None, n  # targets freed by the hook, frozen tensors never get one
    assert all(s.grad is not None and s.grad.shape == (s.k,) for s in e.slots.values())


def test_hooks_do_not_scan_the_model_parameters(tok, monkeypatch):
    """Fault: an O(P^2) loop over all parameters inside every hook. Ours never looks at the parameter list."""
    b = batch(tok, 8, 0)
    m = model(tok=tok)
    e = engine(m, rate=0.05)
    e.select([b])
    calls = []
    for slot in e.slots.values():
        slot.weight.register_post_accumulate_grad_hook(lambda w: calls.append(1))

    def forbidden(*a, **k):
        raise AssertionError("a gradient hook iterated over the model's parameters")

    loss = m(**b).loss
    monkeypatch.setattr(type(m), "named_parameters", forbidden)
    monkeypatch.setattr(type(m), "parameters", forbidden)
    loss.backward()
    assert len(calls) == len(e.slots)  # each target's hook ran once


def _tensor_bytes(obj, seen=None) -> int:
    """Bytes of all tensors reachable through dicts/lists/dataclass fields of obj (no model walk)."""
    seen = seen if seen is not None else set()
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(_tensor_bytes(getattr(obj, f), seen) for f in obj.__dataclass_fields__ if f != "weight")
    return 0


def test_memory_does_not_grow_with_steps(tok):
    """Fault: gradients were logged every step without bound. Engine + optimizer state stay constant."""
    b = batch(tok, 8, 0)
    m = model(tok=tok)
    e = engine(m, rate=0.05)
    e.select([b])
    opt = SiftAdamW(e, lr=1e-3)

    def held():
        state = {k: v for k, v in vars(e).items() if k not in ("model", "dense")}
        return _tensor_bytes(state) + optimizer_state_bytes(opt), len(vars(e)), len(opt.state)

    sizes = []
    for step in range(12):
        m(**b).loss.backward()
        opt.step()
        opt.zero_grad()
        if step in (1, 11):
            sizes.append(held())
    assert sizes[0] == sizes[1]


def test_optimizer_state_is_fp32_for_a_bf16_model(tok):
    """Fault: optimizer state kept in bf16. Ours: fp32 moments and increments even for a bf16 model (the copy of
    the original entries stays bf16: it is exact in the weight's own dtype)."""
    b = batch(tok, 8, 0)
    m = model(tok=tok).to(torch.bfloat16)
    e = engine(m, rate=0.05)
    e.select([b])
    opt = SiftAdamW(e, lr=1e-6)  # steps far below bf16 resolution of the weights
    before = snapshot(m)
    for _ in range(2):
        m(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    assert opt.state and all(t.dtype == torch.float32 for st in opt.state.values() for t in st.values()
                             if torch.is_tensor(t))
    for n, s in e.slots.items():
        assert s.master.dtype == torch.float32 and s.base.dtype == torch.bfloat16
        assert s.increment() is s.master and s.master.abs().max() > 0  # the small updates accumulate in fp32 ...
        w = m.get_parameter(n).detach().reshape(-1)[s.indices]
        assert torch.equal(w, (s.base.float() + s.master).to(torch.bfloat16))  # ... and the weight is their rounding
        assert m.get_parameter(n).dtype == before[n].dtype


def test_saved_delta_holds_only_indices_and_values(tok, tmp_path):
    """Fault: the official code saved full dense weights. Ours: k indices + k values per tensor + the head."""
    from safetensors import safe_open

    b = batch(tok, 8, 0)
    m = model(tok=tok)
    e = engine(m, rate=0.01)
    e.select([b])
    save_delta(e, tmp_path)
    with safe_open(str(tmp_path / DELTA_FILE), "pt") as f:
        keys = list(f.keys())
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in keys}
    for n, s in e.slots.items():
        assert shapes[f"sparse/{n}/indices"] == (s.k,) and shapes[f"sparse/{n}/values"] == (s.k,)
    assert {k for k in keys if k.startswith("dense/")} == {f"dense/{n}" for n in e.dense}
    # payload = 8-byte index + 4-byte value per selected entry, plus the dense head; nothing else
    with safe_open(str(tmp_path / DELTA_FILE), "pt") as f:
        payload = sum(f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in keys)
    head_bytes = sum(p.numel() * p.element_size() for p in e.dense.values())
    assert payload == 12 * e.selected_params + head_bytes
    model_bytes = sum(p.numel() * p.element_size() for p in m.parameters())
    assert (tmp_path / DELTA_FILE).stat().st_size < 0.05 * model_bytes
