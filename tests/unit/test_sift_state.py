"""Save -> load -> merge reproduces the trained model exactly; unmerge restores the base exactly."""

from __future__ import annotations

import pytest
import torch

from tests.unit._sift_helpers import batch, engine, model, snapshot, tokenizer
from tunescope.errors import UserError
from tunescope.strategies.sift.optimizer import SiftAdamW
from tunescope.strategies.sift.state import load_delta, restore_engine, save_delta

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_save_load_merge_is_exact_and_unmerge_restores_base(arch, tmp_path):
    tok = tokenizer()
    b = batch(tok, 16, 0)
    m = model(arch, tok=tok)
    e = engine(m, rate=0.05)
    e.select([b])
    opt = SiftAdamW(e, lr=1e-2, weight_decay=0.01)
    for _ in range(3):
        m(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        trained_logits = m(**b).logits
    save_delta(e, tmp_path)

    fresh = model(arch, tok=tok)
    base = snapshot(fresh)
    delta = load_delta(tmp_path)
    assert delta.num_values() == e.selected_params + e.dense_params()
    delta.merge(fresh)
    with torch.no_grad():
        assert torch.equal(fresh(**b).logits, trained_logits)
    for n, p in m.named_parameters():
        assert torch.equal(fresh.get_parameter(n), p), n
    delta.unmerge(fresh)
    for n, p in fresh.named_parameters():
        assert torch.equal(p, base[n]), n


def test_restore_engine_resumes_the_trained_state(tmp_path):
    tok = tokenizer()
    b = batch(tok, 16, 0)
    m = model(tok=tok)
    e = engine(m, rate=0.05)
    e.select([b])
    opt = SiftAdamW(e, lr=1e-2)
    m(**b).loss.backward()
    opt.step()
    save_delta(e, tmp_path)
    m2 = model(tok=tok)
    e2 = engine(m2, rate=0.05)
    restore_engine(e2, load_delta(tmp_path))
    for n, p in m.named_parameters():
        assert torch.equal(m2.get_parameter(n), p)
    assert e2.selected and all(torch.equal(a.indices, c.indices) for a, c in zip(e.slots.values(), e2.slots.values()))


def test_delta_for_another_model_is_a_user_error(tmp_path):
    tok = tokenizer()
    m = model("bert", tok=tok)
    e = engine(m, rate=0.05, mask="random")
    e.select([])
    save_delta(e, tmp_path)
    with pytest.raises(UserError):
        load_delta(tmp_path).merge(model("llama", tok=tok))
    with pytest.raises(UserError):
        load_delta(tmp_path / "missing")
